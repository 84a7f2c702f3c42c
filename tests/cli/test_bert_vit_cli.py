"""The BERT and ViT commands end to end on tiny data, and their answers to bad input."""

import numpy as np
import pytest
import torch
import transformers as T
from PIL import Image

from attnlab.apps import bert as bert_app
from attnlab.cli.main import main
from attnlab.data import Tokenizer
from attnlab.models import BERT, ViT

DOCS = "\n\n".join(
    "\n".join(f"{w} number {i} reads the {w} file line by line" for i in range(4))
    for w in ("alpha", "beta", "gamma", "delta", "omega")
)
TINY = ["--steps", "4", "--batch-size", "8", "--warmup", "1", "--quiet"]


@pytest.fixture(scope="module")
def mlm_ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlm")
    (folder / "docs.txt").write_text(DOCS)
    args = ["train", "mlm", "--data", str(folder / "docs.txt"), "--out", str(folder / "ckpt"),
            "--preset", "tiny", "--vocab-size", "60", "--max-len", "24", *TINY]
    assert main(args) == 0
    return folder / "ckpt"


def test_mlm_checkpoint_is_read_by_huggingface(mlm_ckpt):
    ours = BERT.from_pretrained(mlm_ckpt)
    hf = T.BertForPreTraining.from_pretrained(mlm_ckpt).eval()
    ids = torch.tensor([[2, 10, 11, 4, 12, 3]])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).mlm_logits, hf(input_ids=ids).prediction_logits, atol=1e-5, rtol=0)
    assert T.BertTokenizer.from_pretrained(mlm_ckpt)("alpha file")["input_ids"][0] == 2


def test_fill_mask_prints_the_models_top_tokens(mlm_ckpt, capsys):
    assert main(["fill-mask", "--ckpt", str(mlm_ckpt), "--top-k", "3", "alpha [MASK] file"]) == 0
    line = capsys.readouterr().out.strip()
    tokenizer = Tokenizer.load(mlm_ckpt)
    hf = T.BertForPreTraining.from_pretrained(mlm_ckpt).eval()
    ids = [tokenizer.cls_id, *tokenizer.encode("alpha [MASK] file"), tokenizer.sep_id]
    with torch.no_grad():
        probs = hf(input_ids=torch.tensor([ids])).prediction_logits[0, ids.index(tokenizer.mask_id)].softmax(-1)
    p, top = probs.topk(3)
    expected = "  ".join(f"{tokenizer.id_to_token(int(t))} {float(q):.3f}" for t, q in zip(top, p))
    assert line == f"[MASK] 1: {expected}"


def test_train_classify_from_the_pretrained_encoder(mlm_ckpt, tmp_path, capsys):
    tsv = tmp_path / "data.tsv"
    tsv.write_text("".join(f"{w} number {i} reads\t{'greek' if w != 'x' else 'x'}{i % 2}\n"
                           for i in range(12) for w in ("alpha", "beta")))
    assert main(["train", "classify", "--ckpt", str(mlm_ckpt), "--data", str(tsv), "--out", str(tmp_path / "cls"), *TINY]) == 0
    assert "test accuracy" in capsys.readouterr().out
    ours = BERT.from_pretrained(tmp_path / "cls")
    assert ours.config.labels == ["greek0", "greek1"]
    pretrained = BERT.from_pretrained(mlm_ckpt)
    hf = T.BertForSequenceClassification.from_pretrained(tmp_path / "cls").eval()
    ids = torch.tensor([[2, 9, 8, 3]])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf(input_ids=ids).logits, atol=1e-5, rtol=0)
    assert not torch.equal(ours.layers[0].ffn.linear1.weight, pretrained.layers[0].ffn.linear1.weight)  # fine-tuned
    # the classifier a user trained is usable: `attnlab classify` takes its texts
    assert main(["classify", "--ckpt", str(tmp_path / "cls"), "--top-k", "2", "alpha number 3 reads", "beta"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("alpha number 3 reads: greek")
    loaded = bert_app.load(tmp_path / "cls")
    text = "alpha number 3 reads"
    ids = [loaded.tokenizer.cls_id, *loaded.tokenizer.encode(text), loaded.tokenizer.sep_id]
    with torch.no_grad():
        reference = hf(input_ids=torch.tensor([ids])).logits.softmax(-1)[0]  # HF on the same ids, fp32
    both = bert_app.classify(loaded, [text, "beta"], top_k=2)  # "beta" padded in the batch
    assert {label: pytest.approx(float(reference[n]), abs=1e-5) for n, label in enumerate(ours.config.labels)} == \
        dict(both[0])
    alone = dict(bert_app.classify(loaded, ["beta"], top_k=2)[0])
    assert {k: pytest.approx(v, abs=1e-5) for k, v in alone.items()} == dict(both[1])


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, base in (("dark", 30), ("light", 220)):
        (folder / name).mkdir()
        for k in range(6):
            pixels = np.clip(base + rng.normal(0, 10, (12, 12)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{k}.png")
    return folder


def test_train_vit_classify_and_viz(image_folder, tmp_path, capsys):
    out = tmp_path / "vit"
    args = ["train", "vit", "--data", str(image_folder), "--image-size", "8", "--channels", "1", "--out", str(out), *TINY]
    assert main(args) == 0
    assert "test accuracy" in capsys.readouterr().out
    model = ViT.from_pretrained(out)
    assert model.config.labels == ["dark", "light"] and T.ViTForImageClassification.from_pretrained(out) is not None
    image = image_folder / "light" / "0.png"
    assert main(["classify", "--ckpt", str(out), "--top-k", "2", str(image)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: ") and len(line.split()) == 5
    assert main(["viz", "--ckpt", str(out), str(image), "--out", str(tmp_path / "viz")]) == 0
    png = tmp_path / "viz" / "vit_attention.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_input_is_one_line_and_exit_2(mlm_ckpt, image_folder, tmp_path, capsys):
    cases = [
        (["fill-mask", "--ckpt", str(mlm_ckpt), "no mask here"], "no [MASK] token"),
        (["fill-mask", "--ckpt", str(tmp_path / "missing"), "a [MASK]"], "checkpoint folder not found"),
        (["classify", "--ckpt", str(mlm_ckpt), str(tmp_path / "x.png")], "not a classifier"),
        (["train", "vit", "--data", str(image_folder), "--image-size", "1", "--out", str(tmp_path / "v"), *TINY],
         "must not exceed image_size"),  # a patch larger than the image (a non-multiple size is legal, as in HF)
        (["train", "mlm", "--out", str(tmp_path / "none"), "--resume", *TINY], "--resume: no run in --out"),
    ]
    bad_tsv = tmp_path / "bad.tsv"
    bad_tsv.write_text("only text, no label\n")
    cases.append((["train", "classify", "--ckpt", str(mlm_ckpt), "--data", str(bad_tsv), "--out", str(tmp_path / "c"), *TINY],
                  "expected 'text<TAB>label'"))
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_fill_mask_on_a_huggingface_folder(mlm_ckpt, tmp_path, capsys):
    hf = T.BertForMaskedLM(T.BertConfig(vocab_size=Tokenizer.load(mlm_ckpt).vocab_size, hidden_size=16,
                                        num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    hf.save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text((mlm_ckpt / "vocab.txt").read_text())  # only a vocab.txt, as HF folders
    assert main(["fill-mask", "--ckpt", str(tmp_path), "--top-k", "2", "alpha [MASK] file"]) == 0
    assert capsys.readouterr().out.startswith("[MASK] 1: ")
