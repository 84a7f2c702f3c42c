"""``attnlab export`` and ``--runtime onnx``: the same command on the export prints what the
PyTorch checkpoint prints (translate greedy and beam, generate, fill-mask, classify)."""

from __future__ import annotations

import dataclasses
import re

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


def _damage(folder, how: str, tmp_path) -> None:
    """Edit an export folder as a hostile or broken one would be."""
    import json

    manifest = json.loads((folder / "export.json").read_text())
    if how == "zeroed decoder.onnx":
        data = bytearray((folder / "decoder.onnx").read_bytes())
        data[len(data) // 2 : len(data) // 2 + 4] = b"\0\0\0\0"
        (folder / "decoder.onnx").write_bytes(data)
    elif how == "weights link out":
        (tmp_path / "outside.bin").write_bytes(b"x" * 1294)
        (folder / "weights.data").unlink()
        (folder / "weights.data").symlink_to(tmp_path / "outside.bin")
    elif how == "weights ../":
        manifest["weights"]["file"] = "../../../../etc/passwd"
    elif how == "graph absolute":
        manifest["graphs"]["decoder"]["file"] = str(tmp_path / "elsewhere.onnx")
    else:  # "config.FIELD=VALUE"
        field, value = how.removeprefix("config.").split("=")
        manifest["config"][field] = json.loads(value)
    (folder / "export.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A Transformer translator's and a GPT's export folders (copied by each case)."""
    from attnlab.export import export_onnx

    torch.manual_seed(0)
    tokenizer = WordTokenizer.train([WORDS])
    mt, lm = tmp_path_factory.mktemp("mt"), tmp_path_factory.mktemp("lm")
    sizes = dict(src_vocab_size=tokenizer.vocab_size, tgt_vocab_size=tokenizer.vocab_size)
    Transformer(dataclasses.replace(TRANSFORMER_PRESETS["tiny"], **sizes)).save_pretrained(mt)
    tokenizer.save(mt / "src_tokenizer")
    tokenizer.save(mt / "tgt_tokenizer")
    GPT(gpt_config("tiny", vocab_size=tokenizer.vocab_size)).save_pretrained(lm)
    tokenizer.save(lm)
    return {"translate": export_onnx(mt, mt / "onnx"), "generate": export_onnx(lm, lm / "onnx")}


@pytest.mark.parametrize("command, how, words", [
    ("translate", "zeroed decoder.onnx", "decoder.onnx: contents differ from what the export wrote"),
    ("translate", "weights link out", "weights.data: weights.file must name a file inside the export folder"),
    ("translate", "weights ../", "weights.file: expected a file name inside the export folder"),
    ("translate", "graph absolute", "graphs.decoder.file: expected a file name inside the export folder"),
    ("translate", "config.bos_id=-5", r"config.bos_id: expected an integer in \[0, 2147483646\], got -5"),
    ("translate", "config.num_heads=4", r"config.num_heads: expected 2 \(axis 1 of past.0.key"),
    ("translate", "config.max_len=1e18", r"config.max_len: expected an integer in \[1, 1048576\], got 1e\+18"),
    ("generate", "config.num_layers=1000000000000", r"config.num_layers: expected an integer in \[1, 2147483647\]"),
    ("generate", "config.num_layers=3", r"config.num_layers: expected 2 \(the decode graph's past.i.key inputs\), got 3"),
    ("generate", "config.eos_token_id=1000000000000.0", "config.eos_token_id: expected an integer"),
])
def test_a_damaged_export_folder_is_one_line_before_onnx_runtime_opens_a_file(
    exports, tmp_path, capsys, monkeypatch, command, how, words
):
    import shutil

    import onnxruntime

    folder = shutil.copytree(exports[command], tmp_path / "onnx")
    if how == "graph absolute":
        shutil.copy(folder / "decoder.onnx", tmp_path / "elsewhere.onnx")
    _damage(folder, how, tmp_path)
    opened = []
    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda path, *a, **k: opened.append(path))
    argv = ["translate", "a small house"] if command == "translate" else ["generate", "--prompt", "the big"]
    assert main([*argv, "--ckpt", str(folder), "--runtime", "onnx"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(words, err), err
    assert "1294" not in err  # nothing about a file outside the folder
    assert opened == []  # ONNX Runtime got no file


def test_the_undamaged_copies_run(exports, tmp_path, capsys):
    import shutil

    for command, argv in (("translate", ["translate", "a small house"]), ("generate", ["generate", "--prompt", "the big"])):
        folder = shutil.copytree(exports[command], tmp_path / command)
        assert main([*argv, "--ckpt", str(folder), "--runtime", "onnx", "--max-new-tokens" if command == "generate" else "--beam", "2"]) == 0
