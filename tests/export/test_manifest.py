"""An export folder is checked before use: every file export.json lists resolves inside the
folder and has the recorded size and SHA-256 (weights and graphs), export.json's schema holds,
and its config agrees with the graphs -- each failure one line, before ONNX Runtime gets a
file and before anything is allocated from the config."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

from attnlab.errors import AttnlabError  # noqa: E402
from attnlab.export import export_onnx, load_runtime  # noqa: E402
from attnlab.export.manifest import check_manifest  # noqa: E402
from attnlab.export.onnx import MANIFEST  # noqa: E402
from attnlab.export.weights import WEIGHTS_FILE, file_digest  # noqa: E402
from attnlab.io import read_json, write_json  # noqa: E402
from attnlab.models import GPT, Transformer  # noqa: E402
from attnlab.models.gpt import gpt_config  # noqa: E402
from attnlab.models.transformer import TRANSFORMER_PRESETS  # noqa: E402


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    """A tiny Transformer translator's export (1 decoder layer, 2 heads of 16, 19 target tokens)."""
    torch.manual_seed(0)
    config = dataclasses.replace(TRANSFORMER_PRESETS["tiny"], src_vocab_size=17, tgt_vocab_size=19)
    ckpt = tmp_path_factory.mktemp("mt")
    Transformer(config).save_pretrained(ckpt)
    return export_onnx(ckpt, tmp_path_factory.mktemp("mt") / "onnx")


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    torch.manual_seed(0)
    ckpt = tmp_path_factory.mktemp("lm")
    GPT(gpt_config("tiny", vocab_size=23)).save_pretrained(ckpt)
    return export_onnx(ckpt, tmp_path_factory.mktemp("lm") / "onnx")


@pytest.fixture
def no_ort(monkeypatch):
    """Records every file handed to ONNX Runtime (the refusals below must hand it none)."""
    import onnxruntime

    opened = []
    real = onnxruntime.InferenceSession

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    return opened


def _copy(folder, tmp_path, edit=None):
    copy = shutil.copytree(folder, tmp_path / "copy", symlinks=True)
    if edit is not None:
        manifest = read_json(copy / MANIFEST)
        edit(manifest)
        write_json(copy / MANIFEST, manifest)
    return copy


def _refused(folder, words: str, no_ort: list) -> str:
    with pytest.raises(AttnlabError, match=words) as error:
        load_runtime(folder)
    message = str(error.value)
    assert "\n" not in message
    assert no_ort == []  # ONNX Runtime got no file
    return message


def test_the_export_loads_and_hands_each_graph_to_onnx_runtime_once(translator, no_ort):
    load_runtime(translator)
    assert sorted(os.path.basename(p) for p in no_ort) == ["decoder.onnx", "encoder.onnx"]


# --- every file inside the folder -----------------------------------------------------
@pytest.mark.parametrize("field", ["weights", "decoder"])
@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "sub/../weights.data", "..", ""])
def test_a_file_field_outside_the_folder_is_refused_before_opening(translator, tmp_path, no_ort, field, name):
    def edit(m):
        (m["weights"] if field == "weights" else m["graphs"]["decoder"])["file"] = name

    message = _refused(_copy(translator, tmp_path, edit), "file: expected a file name inside the export folder", no_ort)
    assert "bytes" not in message  # nothing about the file named (its size, whether it exists)


@pytest.mark.parametrize("target_exists", [True, False])
@pytest.mark.parametrize("file", [WEIGHTS_FILE, "decoder.onnx"])
def test_a_link_out_of_the_folder_is_refused_saying_nothing_of_its_target(translator, tmp_path, no_ort, file, target_exists):
    outside = tmp_path / "outside.bin"
    if target_exists:
        outside.write_bytes(b"x" * 1294)
    copy = _copy(translator, tmp_path)
    (copy / file).unlink()
    (copy / file).symlink_to(outside)
    message = _refused(copy, "a link that leads out of it", no_ort)
    assert "1294" not in message and "outside" not in message and "bytes" not in message
    assert str(copy / file) in message


def test_a_link_inside_the_folder_is_followed(translator, tmp_path, no_ort):
    copy = _copy(translator, tmp_path)
    (copy / "moved.data").write_bytes((copy / WEIGHTS_FILE).read_bytes())
    (copy / WEIGHTS_FILE).unlink()
    (copy / WEIGHTS_FILE).symlink_to("moved.data")
    load_runtime(copy)


@pytest.mark.parametrize("graph", ["decoder", "encoder"])
def test_four_zeroed_bytes_in_a_graph_are_refused_before_onnx_runtime(translator, tmp_path, no_ort, graph):
    copy = _copy(translator, tmp_path)
    path = copy / f"{graph}.onnx"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    assert data[middle : middle + 4] != b"\0\0\0\0"
    data[middle : middle + 4] = b"\0\0\0\0"
    path.write_bytes(data)
    _refused(copy, f"{graph}.onnx: contents differ from what the export wrote", no_ort)


def test_a_graph_pointing_to_another_data_file_is_refused(translator, tmp_path, no_ort):
    """A folder whose manifest agrees with a changed graph (as a crafted folder would) still
    cannot send ONNX Runtime to a file other than the checked weights."""
    copy = _copy(translator, tmp_path)
    path = copy / "decoder.onnx"
    model = onnx.load(str(path), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.external_data)
    next(e for e in tensor.external_data if e.key == "location").value = "../../secret.bin"
    onnx.save_model(model, str(path))
    manifest = read_json(copy / MANIFEST)
    manifest["graphs"]["decoder"].update(file_digest(path))
    write_json(copy / MANIFEST, manifest)
    _refused(copy, "reads its data from '../../secret.bin'; an export's graphs read only 'weights.data'", no_ort)


# --- the schema: one line naming the field and what was expected ------------------------
def _without(key):
    return lambda m: m.pop(key)


def _set(path, value):
    def edit(m):
        *parents, last = path.split(".")
        for p in parents:
            m = m[p]
        m[last] = value

    return edit


SCHEMA_CASES = [
    (_set("weights", "weights.data"), "weights: expected an object {file, bytes, sha256}, got 'weights.data'"),
    (_without("graphs"), "graphs: expected an object {encoder, decoder} of graph entries, got nothing"),
    (_without("weights"), "weights: expected an object {file, bytes, sha256}, got nothing"),
    (_without("config"), "config: expected an object of the model's settings, got nothing"),
    (_set("graphs", ["encoder.onnx", "decoder.onnx"]), "graphs: expected an object {encoder, decoder} of graph entries, got a list"),
    (_set("graphs.decoder", "decoder.onnx"), "graphs.decoder: expected an object"),
    (_set("graphs.decoder.bytes", "86730"), "graphs.decoder.bytes: expected an integer in"),
    (_set("graphs.decoder.sha256", "abc"), "graphs.decoder.sha256: expected 64 hex digits, got 'abc'"),
    (_set("config.num_heads", -4), r"config.num_heads: expected an integer in \[1, 2147483647\], got -4"),
    (_set("config.head_dim", "x"), r"config.head_dim: expected an integer in \[1, 2147483647\], got 'x'"),
    (_set("config.num_layers", 10**12), r"config.num_layers: expected an integer in \[1, 2147483647\], got 1000000000000"),
    (_set("config.num_layers", True), "config.num_layers: expected an integer in .*, got True"),
    (_set("config.bos_id", -5), r"config.bos_id: expected an integer in \[0, 2147483646\], got -5"),
    (_set("config.eos_id", 1e12), r"config.eos_id: expected an integer in .*, got 1000000000000.0"),
    (_set("config.max_len", 1e18), r"config.max_len: expected an integer in \[1, 1048576\], got 1e\+18"),
    (_set("config.max_len", 10**18), r"config.max_len: expected an integer in \[1, 1048576\], got 1000000000000000000"),
    (lambda m: m["config"].pop("pad_id"), "config.pad_id: expected an integer .*, got nothing"),
    (_set("model_type", "rnn"), "model_type: expected one of 'gpt2', .*, got 'rnn'"),
]


@pytest.mark.parametrize("edit, words", SCHEMA_CASES)
def test_a_wrong_field_is_one_line_naming_it(translator, tmp_path, no_ort, edit, words):
    message = _refused(_copy(translator, tmp_path, edit), words, no_ort)
    assert message.startswith(str(tmp_path / "copy" / MANIFEST))


def test_the_schema_check_runs_on_the_manifest_alone(translator):
    manifest = read_json(translator / MANIFEST)
    assert check_manifest(translator / MANIFEST, manifest) is manifest
    manifest["config"]["num_heads"] = -4
    with pytest.raises(AttnlabError, match="config.num_heads: expected an integer"):
        check_manifest(translator / MANIFEST, manifest)


# --- the config against the graphs --------------------------------------------------
GRAPH_CASES = [
    ("num_layers", 7, "config.num_layers: expected 1 \\(the decoder graph's past.i.key inputs\\), got 7"),
    ("num_heads", 4, "config.num_heads: expected 2 \\(axis 1 of past.0.key \\(B, H, P, Dh\\)\\), got 4"),
    ("head_dim", 8, "config.head_dim: expected 16 \\(axis 3 of past.0.key"),
    ("tgt_vocab_size", 1000, "config.tgt_vocab_size: expected 19 \\(the last axis of the decoder's log_probs\\)"),
    ("bos_id", 19, "config.bos_id: expected an id in \\[0, 19\\) \\(config.tgt_vocab_size\\), got 19"),
    ("eos_id", 2**31 - 2, "config.eos_id: expected an id in \\[0, 19\\)"),
    ("pad_id", 17, "config.pad_id: expected an id in \\[0, 17\\) \\(config.src_vocab_size\\), got 17"),
]


@pytest.mark.parametrize("field, value, words", GRAPH_CASES)
def test_a_config_the_graphs_contradict_is_refused_before_allocating(translator, tmp_path, no_ort, field, value, words):
    _refused(_copy(translator, tmp_path, _set(f"config.{field}", value)), words, no_ort)


@pytest.mark.parametrize("field, value, words", [
    ("num_layers", 10**6, "config.num_layers: expected 2 \\(the decode graph's past.i.key inputs\\), got 1000000"),
    ("vocab_size", 50257, "config.vocab_size: expected 23 \\(the last axis of decode's logits\\)"),
    ("eos_token_id", 23, "config.eos_token_id: expected an id in \\[0, 23\\)"),
    ("context_length", 1e18, "config.context_length: expected an integer in \\[1, 1048576\\]"),
])
def test_a_gpt_config_the_graphs_contradict_is_refused(lm, tmp_path, no_ort, field, value, words):
    _refused(_copy(lm, tmp_path, _set(f"config.{field}", value)), words, no_ort)


def test_a_gpt_without_eos_loads(lm, tmp_path):
    rt = load_runtime(_copy(lm, tmp_path, _set("config.eos_token_id", None)))
    assert rt.generate(torch.tensor([[1, 2]]), 3).shape == (1, 5)
