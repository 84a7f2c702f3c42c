"""``attnlab export`` and ``--runtime onnx``: the same command on the export prints what the
PyTorch checkpoint prints (translate greedy and beam, generate, fill-mask, classify)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytestmark = pytest.mark.slow  # four exports and eight CLI runs

from attnlab.cli.main import main  # noqa: E402
from attnlab.data.tokenizer import SpecialTokens, WordTokenizer  # noqa: E402
from attnlab.models import BERT, GPT, Seq2Seq, Transformer, ViT  # noqa: E402
from attnlab.models.bert import bert_config  # noqa: E402
from attnlab.models.gpt import gpt_config  # noqa: E402
from attnlab.models.seq2seq import SEQ2SEQ_PRESETS  # noqa: E402
from attnlab.models.transformer import TRANSFORMER_PRESETS  # noqa: E402
from attnlab.models.vit import ViTConfig  # noqa: E402

WORDS = "a small house the big cat sat on mat red blue green one two three"


def _run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def _export(capsys, ckpt, out) -> str:
    printed = _run(capsys, "export", "--ckpt", str(ckpt), "--format", "onnx", "--out", str(out))
    assert "opset 18" in printed and "export.json" in printed
    return str(out)


@pytest.mark.parametrize("kind", ["transformer", "seq2seq"])
def test_translate_with_onnx_runtime_prints_the_same(tmp_path, capsys, kind):
    torch.manual_seed(0)
    src_tok, tgt_tok = WordTokenizer.train([WORDS]), WordTokenizer.train([WORDS.upper()])
    sizes = dict(src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size)
    if kind == "transformer":
        model = Transformer(dataclasses.replace(TRANSFORMER_PRESETS["tiny"], **sizes))
    else:
        model = Seq2Seq(dataclasses.replace(SEQ2SEQ_PRESETS["tiny"], **sizes, bos_id=tgt_tok.bos_id, eos_id=tgt_tok.eos_id,
                                            cell="lstm", attention="location"))  # (h, c) and attention state
    ckpt = tmp_path / "mt"
    with torch.no_grad():  # peaked distributions: no near-ties for 1e-6 differences to flip
        model.output_proj.weight.mul_(8)
    model.save_pretrained(ckpt)
    src_tok.save(ckpt / "src_tokenizer")
    tgt_tok.save(ckpt / "tgt_tokenizer")
    onnx = _export(capsys, ckpt, tmp_path / "mt-onnx")
    for beam in ("1", "3"):
        sentences = ["a small house", "the big cat sat on the mat", "red"]
        expected = _run(capsys, "translate", *sentences, "--ckpt", str(ckpt), "--beam", beam)
        assert _run(capsys, "translate", *sentences, "--ckpt", onnx, "--beam", beam, "--runtime", "onnx") == expected


def test_generate_with_onnx_runtime_prints_the_same(tmp_path, capsys):
    torch.manual_seed(0)
    tokenizer = WordTokenizer.train([WORDS])
    ckpt = tmp_path / "lm"
    GPT(gpt_config("tiny", vocab_size=tokenizer.vocab_size)).save_pretrained(ckpt)
    tokenizer.save(ckpt)
    onnx = _export(capsys, ckpt, tmp_path / "lm-onnx")
    for extra in ([], ["--top-k", "5", "--seed", "3"]):
        args = ["generate", "--prompt", "the big", "--max-new-tokens", "12", *extra]
        expected = _run(capsys, *args, "--ckpt", str(ckpt))
        assert _run(capsys, *args, "--ckpt", onnx, "--runtime", "onnx") == expected


def test_fill_mask_with_onnx_runtime_prints_the_same(tmp_path, capsys):
    torch.manual_seed(0)
    specials = SpecialTokens(pad="[PAD]", unk="[UNK]", bos="[CLS]", eos="[SEP]", mask="[MASK]", cls="[CLS]", sep="[SEP]")
    tokenizer = WordTokenizer.train([WORDS], special_tokens=specials)
    ckpt = tmp_path / "mlm"
    BERT(bert_config("tiny", vocab_size=tokenizer.vocab_size, head="mlm", add_pooler=False)).save_pretrained(ckpt)
    tokenizer.save(ckpt)
    onnx = _export(capsys, ckpt, tmp_path / "mlm-onnx")
    expected = _run(capsys, "fill-mask", "the [MASK] sat on [MASK] mat", "--ckpt", str(ckpt))
    got = _run(capsys, "fill-mask", "the [MASK] sat on [MASK] mat", "--ckpt", onnx, "--runtime", "onnx")
    assert got.splitlines()[0].split()[:3] == expected.splitlines()[0].split()[:3]
    assert len(got.splitlines()) == len(expected.splitlines()) == 2


def test_classify_with_onnx_runtime_prints_the_same(tmp_path, capsys):
    from PIL import Image

    torch.manual_seed(0)
    ckpt = tmp_path / "vit"
    config = ViTConfig(image_size=8, patch_size=2, num_channels=1, hidden_size=32, num_layers=1, num_heads=2,
                       intermediate_size=64, labels=["zero", "one", "two"])
    ViT(config).save_pretrained(ckpt)
    onnx = _export(capsys, ckpt, tmp_path / "vit-onnx")
    images = []
    for n in range(2):
        path = tmp_path / f"img{n}.png"
        Image.fromarray((torch.rand(8, 8) * 255).byte().numpy(), mode="L").save(path)
        images.append(str(path))
    expected = _run(capsys, "classify", *images, "--ckpt", str(ckpt))
    assert _run(capsys, "classify", *images, "--ckpt", onnx, "--runtime", "onnx") == expected


def test_wrong_folder_for_the_runtime_is_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "vit"
    ViT(ViTConfig(image_size=4, patch_size=2, num_channels=1, hidden_size=16, num_layers=1, num_heads=2,
                  intermediate_size=32, labels=["a", "b"])).save_pretrained(ckpt)
    onnx = _export(capsys, ckpt, tmp_path / "vit-onnx")
    assert main(["translate", "a", "--ckpt", onnx, "--runtime", "onnx"]) == 2
    assert "an ONNX export of a 'vit' model, not a translator" in capsys.readouterr().err
    assert main(["generate", "--prompt", "a", "--ckpt", str(ckpt), "--runtime", "onnx"]) == 2
    assert "not an attnlab ONNX export" in capsys.readouterr().err
    assert main(["export", "--ckpt", str(ckpt), "--out", onnx]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
