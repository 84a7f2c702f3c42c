"""The export folder holds the weights once: one ``weights.data`` every graph points into
(tensors matched by content), small graph files, and a weights file that is checked
before ONNX Runtime reads it."""

from __future__ import annotations

import shutil

import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from attnlab.errors import AttnlabError  # noqa: E402
from attnlab.export import export_onnx, load_runtime, read_manifest  # noqa: E402
from attnlab.export.weights import MIN_BYTES, WEIGHTS_FILE  # noqa: E402
from attnlab.models import GPT  # noqa: E402
from attnlab.models.gpt import gpt_config  # noqa: E402


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    torch.manual_seed(0)
    model = GPT(gpt_config("tiny", num_layers=2, d_model=128, num_heads=4, vocab_size=300)).eval()
    ckpt = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(ckpt)
    return model, export_onnx(ckpt, tmp_path_factory.mktemp("gpt") / "onnx")


def _param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_weights_are_written_once_for_both_graphs(gpt):
    model, out = gpt
    weights = (out / WEIGHTS_FILE).stat().st_size
    graphs = sum(p.stat().st_size for p in out.glob("*.onnx"))
    params = _param_bytes(model)
    # every parameter once (the tied embedding too: one layout serves lookup and output),
    # give or take the small tensors left in the graphs and the alignment padding
    assert 0.9 * params < weights < 1.1 * params
    assert graphs < 0.2 * params  # each graph file: its ops and small constants (0.75 MiB for GPT-2 124M)
    assert not list(out.glob("*.onnx.data"))
    assert read_manifest(out)["weights"]["bytes"] == weights


def test_both_graphs_point_into_the_one_file(gpt):
    _, out = gpt
    regions = {}
    for name in ("prefill", "decode"):
        graph = onnx.load(str(out / f"{name}.onnx"), load_external_data=False).graph
        for tensor in graph.initializer:
            fields = {e.key: e.value for e in tensor.external_data}
            if fields:
                assert fields["location"] == WEIGHTS_FILE
                regions.setdefault(name, set()).add((int(fields["offset"]), int(fields["length"])))
            else:
                assert len(tensor.raw_data) < MIN_BYTES
    assert regions["prefill"] == regions["decode"]  # the same parameters, named differently, one region each
    onnx.checker.check_model(str(out / "decode.onnx"))  # plain ONNX external data


def test_plain_onnxruntime_loads_the_graphs_from_their_own_folder(gpt, tmp_path):
    import numpy as np
    import onnxruntime as ort

    model, out = gpt
    moved = shutil.copytree(out, tmp_path / "elsewhere")  # external data resolves next to the .onnx
    session = ort.InferenceSession(str(moved / "prefill.onnx"), providers=["CPUExecutionProvider"])
    ids = torch.randint(0, 300, (2, 6))
    logits = session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": np.ones((2, 6), dtype=np.int64)})[0]
    with torch.no_grad():
        assert (torch.from_numpy(logits) - model(ids).logits).abs().max() < 1e-4


@pytest.mark.parametrize("damage, words", [
    ("truncate", "bytes, the export wrote"),
    ("flip", "contents differ from what the export wrote"),
    ("remove", "weights file is missing"),
])
def test_damaged_weights_file_is_one_line_naming_it(gpt, tmp_path, damage, words):
    _, out = gpt
    copy = shutil.copytree(out, tmp_path / "copy")
    path = copy / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data[len(data) // 3] ^= 0xFF
        path.write_bytes(data)
    else:
        path.unlink()
    with pytest.raises(AttnlabError, match=words) as error:
        load_runtime(copy)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_unreadable_graph_file_is_one_line_naming_it(gpt, tmp_path):
    from attnlab.export.onnx import MANIFEST
    from attnlab.export.weights import file_digest
    from attnlab.io import read_json, write_json

    _, out = gpt
    copy = shutil.copytree(out, tmp_path / "copy")
    (copy / "decode.onnx").write_bytes(b"not a graph")
    with pytest.raises(AttnlabError, match="decode.onnx: 11 bytes, the export wrote") as error:
        load_runtime(copy)
    assert "\n" not in str(error.value)
    manifest = read_json(copy / MANIFEST)  # the manifest made to agree: the parser refuses it
    manifest["graphs"]["decode"].update(file_digest(copy / "decode.onnx"))
    write_json(copy / MANIFEST, manifest)
    with pytest.raises(AttnlabError, match="decode.onnx: not a readable ONNX graph") as error:
        load_runtime(copy)
    assert "\n" not in str(error.value)


def test_sessions_of_a_several_graph_folder_do_not_repack_the_weights(gpt):
    rt = load_runtime(gpt[1])
    for session in rt.sessions.values():
        assert session.session.get_session_options().get_session_config_entry("session.disable_prepacking") == "1"


def test_folder_of_format_1_is_refused_with_the_versions(gpt, tmp_path):
    from attnlab.export.onnx import FORMAT_VERSION, MANIFEST
    from attnlab.io import read_json, write_json

    copy = shutil.copytree(gpt[1], tmp_path / "v1")
    manifest = read_json(copy / MANIFEST)
    manifest["format_version"] = 1  # weights inside each .onnx, no "weights" entry
    del manifest["weights"]
    write_json(copy / MANIFEST, manifest)
    with pytest.raises(AttnlabError, match=f"export format version 1 .* reads version {FORMAT_VERSION}: export"):
        load_runtime(copy)
