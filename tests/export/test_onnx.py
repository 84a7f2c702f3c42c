"""ONNX export: every model in ONNX Runtime equals attnlab's PyTorch model (fp32, 1e-4
absolute, Optimum's validation tolerance), at batch sizes and lengths the export never
saw; generation gives the same tokens; cached decoding equals uncached in ONNX too.

Exports are slow (seconds each), so each model is exported once per module.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from attnlab.errors import AttnlabError  # noqa: E402
from attnlab.evaluation.decoding import decode  # noqa: E402
from attnlab.export import export_onnx, load_runtime, read_manifest  # noqa: E402
from attnlab.export.onnx import FORMAT_VERSION, MANIFEST  # noqa: E402
from attnlab.io import read_json, write_json  # noqa: E402
from attnlab.models import BERT, GAT, GPT, Seq2Seq, Transformer, ViT  # noqa: E402
from attnlab.models.bert import bert_config  # noqa: E402
from attnlab.models.gat import GATConfig  # noqa: E402
from attnlab.models.gpt import gpt_config  # noqa: E402
from attnlab.models.seq2seq import SEQ2SEQ_PRESETS  # noqa: E402
from attnlab.models.transformer import TRANSFORMER_PRESETS  # noqa: E402
from attnlab.models.vit import ViTConfig  # noqa: E402

ATOL = 1e-4  # fp32, as Optimum validates its exports


def _export(model, tmp_path_factory, name: str):
    ckpt = tmp_path_factory.mktemp(f"{name}_ckpt")
    model.save_pretrained(ckpt)
    out = export_onnx(ckpt, tmp_path_factory.mktemp(name) / "onnx")
    rt = load_runtime(out)
    for graph_name, graph in rt.manifest["graphs"].items():  # no silent fallback to TorchScript
        if name.startswith("seq2seq") and graph_name == "encoder":  # ONNX's GRU: stated in the manifest
            assert graph["exporter"] == "torchscript" and "nn.GRU" in graph["fallback_reason"]
        else:
            assert graph["exporter"] == "dynamo", graph.get("fallback_reason")
    return model.eval(), out, rt


def _close(onnx_value, torch_value) -> None:
    onnx_value = torch.as_tensor(onnx_value)
    assert onnx_value.shape == torch_value.shape
    assert (onnx_value - torch_value).abs().max().item() < ATOL


# --- GPT --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    torch.manual_seed(0)
    return _export(GPT(gpt_config("tiny", num_layers=2)), tmp_path_factory, "gpt")


def test_gpt_manifest_says_what_was_exported(gpt):
    _, out, _ = gpt
    manifest = read_manifest(out)
    assert manifest["format_version"] == FORMAT_VERSION and manifest["model_type"] == "gpt2"
    assert manifest["opset"] == 18
    assert {name: g["exporter"] for name, g in manifest["graphs"].items()} == {"prefill": "dynamo", "decode": "dynamo"}
    decode_inputs = {i["name"]: i["shape"] for i in manifest["graphs"]["decode"]["inputs"]}
    assert decode_inputs["past.0.key"] == ["batch", 2, "past", 16]
    assert decode_inputs["attention_mask"] == ["batch", "past + length"]


@pytest.mark.parametrize("batch, length", [(1, 3), (3, 11), (4, 1)])
def test_gpt_prefill_equals_pytorch(gpt, batch, length):
    model, _, rt = gpt
    ids = torch.randint(0, model.config.vocab_size, (batch, length))
    with torch.no_grad():
        expected = model(ids).logits
    _close(rt(ids).logits, expected)


def test_gpt_left_padded_prefill_equals_pytorch(gpt):
    model, _, rt = gpt
    ids = torch.randint(0, model.config.vocab_size, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    mask[2, :1] = 0
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        expected = model(ids, mask, position_ids=positions).logits
    real = mask.bool()
    _close(rt(ids, mask).logits[real], expected[real])  # pad positions predict nothing


@pytest.mark.parametrize("batch", [1, 5])
def test_gpt_cached_decoding_equals_uncached_in_onnx(gpt, batch):
    model, _, rt = gpt
    ids = torch.randint(0, model.config.vocab_size, (batch, 13))
    whole = rt(ids).logits  # one prefill, no cache
    caches = rt.make_caches()
    rt(ids[:, :4], caches=caches)  # prompt of 4, then one token at a time
    for t in range(4, 13):
        step = rt(ids[:, t : t + 1], caches=caches).logits
        _close(step[:, 0], whole[:, t])
    assert caches[0].length == 13
    with torch.no_grad():
        _close(whole, model(ids).logits)


def test_gpt_decode_several_tokens_at_once(gpt):
    _, _, rt = gpt
    ids = torch.randint(0, 64, (2, 10))
    caches = rt.make_caches()
    rt(ids[:, :3], caches=caches)
    _close(rt(ids[:, 3:], caches=caches).logits, rt(ids).logits[:, 3:])


@pytest.mark.parametrize("padded", [False, True])
def test_gpt_greedy_generation_gives_the_same_tokens(gpt, padded):
    model, _, rt = gpt
    torch.manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (3, 5))
    mask = None
    if padded:
        mask = torch.ones_like(ids)
        mask[1, :2] = 0
    from attnlab.evaluation.sampling import generate

    expected = generate(model, ids, 12, attention_mask=mask)
    assert torch.equal(generate(rt, ids, 12, attention_mask=mask), expected)


def test_gpt_sampling_with_one_seed_gives_the_same_tokens(gpt):
    model, _, rt = gpt
    ids = torch.randint(0, model.config.vocab_size, (2, 4))
    a = model.generate(ids, 8, do_sample=True, top_k=10, generator=torch.Generator().manual_seed(3))
    b = rt.generate(ids, 8, do_sample=True, top_k=10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# --- Transformer translator -------------------------------------------------------------
@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    torch.manual_seed(0)
    config = dataclasses.replace(TRANSFORMER_PRESETS["tiny"], src_vocab_size=37, tgt_vocab_size=41, num_decoder_layers=2)
    return _export(Transformer(config), tmp_path_factory, "transformer")


def _sources(batch: int, length: int, vocab: int) -> torch.Tensor:
    src = torch.randint(4, vocab, (batch, length))
    for row in range(1, batch, 2):
        src[row, length // 2 + 1 :] = 0  # padded rows
    return src


@pytest.mark.parametrize("batch, src_len, tgt_len", [(1, 3, 2), (4, 10, 7)])
def test_transformer_encoder_and_decoder_equal_pytorch(transformer, batch, src_len, tgt_len):
    model, _, rt = transformer
    src = _sources(batch, src_len, 37)
    tgt = torch.randint(4, 41, (batch, tgt_len))
    with torch.no_grad():
        expected = model(src, tgt).logits.log_softmax(-1)
        memory, _, _ = model.encode(src)
    state = rt.start(src)
    encoded = rt.sessions["encoder"].run(src_ids=src)
    _close(encoded["memory"], memory)
    out = rt.sessions["decoder"].run(input_ids=tgt, **state.arrays)  # the whole target at once, P = 0
    _close(out["log_probs"], expected)
    for t in range(tgt_len):  # and one token at a time with the cache
        log_probs, state = rt.step(tgt[:, t], state)
        _close(log_probs, expected[:, t])


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("batch", [1, 5])
def test_transformer_search_gives_the_same_tokens(transformer, beam_size, batch):
    model, _, rt = transformer
    src = _sources(batch, 8, 37)
    expected = decode(model, src, bos_id=2, eos_id=3, max_len=14, beam_size=beam_size)
    got = decode(rt, src, bos_id=2, eos_id=3, max_len=14, beam_size=beam_size)
    assert got.tokens == expected.tokens
    assert (got.scores - expected.scores).abs().max() < ATOL


# --- RNN translator ---------------------------------------------------------------------
@pytest.fixture(scope="module", params=["bahdanau", "luong-general"])
def seq2seq(request, tmp_path_factory):
    torch.manual_seed(0)
    config = dataclasses.replace(
        SEQ2SEQ_PRESETS["tiny"], src_vocab_size=37, tgt_vocab_size=41, attention=request.param,
        num_layers=2 if request.param == "bahdanau" else 1, bos_id=2, eos_id=3,
    )
    return _export(Seq2Seq(config), tmp_path_factory, f"seq2seq_{request.param}")


def test_seq2seq_encoder_equals_pytorch_at_unseen_lengths(seq2seq):
    model, _, rt = seq2seq
    for batch, length in ((1, 2), (5, 13)):
        src = _sources(batch, length, 37)
        with torch.no_grad():
            memory, _, s0 = model.encode(src)
        out = rt.sessions["encoder"].run(src_ids=src)
        _close(out["memory"], memory)
        _close(out["h"], s0)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_seq2seq_search_gives_the_same_tokens(seq2seq, beam_size):
    model, _, rt = seq2seq
    src = _sources(4, 9, 37)
    expected = decode(model, src, bos_id=2, eos_id=3, max_len=12, beam_size=beam_size)
    got = decode(rt, src, bos_id=2, eos_id=3, max_len=12, beam_size=beam_size)
    assert got.tokens == expected.tokens
    assert (got.scores - expected.scores).abs().max() < ATOL


# --- BERT -------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[("pretraining", "absolute"), ("classifier", "absolute"),
                                        ("mlm", "relative_key"), ("classifier", "relative_key_query")])
def bert(request, tmp_path_factory):
    torch.manual_seed(0)
    head, positions = request.param
    labels = ["a", "b", "c"] if head == "classifier" else []
    config = bert_config("tiny", vocab_size=97, head=head, labels=labels, dropout=0.0, attention_dropout=0.0,
                         position_embedding_type=positions)
    return _export(BERT(config), tmp_path_factory, f"bert_{head}_{positions}")


@pytest.mark.parametrize("batch, length", [(1, 4), (3, 13)])
def test_bert_every_output_equals_pytorch(bert, batch, length):
    model, _, rt = bert
    ids = torch.randint(1, 97, (batch, length))
    types = torch.randint(0, 2, (batch, length))
    mask = torch.ones_like(ids)
    mask[-1, length // 2 :] = 0
    with torch.no_grad():
        expected = model(ids, types, mask)
    got = rt(ids, types, mask)
    names = [o["name"] for o in rt.manifest["graphs"]["model"]["outputs"]]
    assert len(names) >= 3
    for name in names:
        _close(getattr(got, name), getattr(expected, name))


# --- ViT, GAT ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    torch.manual_seed(0)
    config = ViTConfig(image_size=8, patch_size=2, num_channels=1, hidden_size=32, num_layers=2, num_heads=2,
                       intermediate_size=64, labels=["x", "y"], dropout=0.0, attention_dropout=0.0)
    return _export(ViT(config), tmp_path_factory, "vit")


@pytest.mark.parametrize("batch", [1, 5])
def test_vit_equals_pytorch(vit, batch):
    model, _, rt = vit
    pixels = torch.randn(batch, 1, 8, 8)
    with torch.no_grad():
        expected = model(pixels)
    got = rt(pixels)
    _close(got.last_hidden_state, expected.last_hidden_state)
    _close(got.logits, expected.logits)
    assert rt.config.labels == ["x", "y"] and rt.config.num_labels == 2  # what the ViT app's classify reads


def test_other_opsets_export_the_same_function(vit, tmp_path):
    model, out, _ = vit
    model.save_pretrained(tmp_path / "ckpt")
    rt = load_runtime(export_onnx(tmp_path / "ckpt", tmp_path / "opset23", opset=23))
    assert rt.manifest["opset"] == 23 and rt.manifest["graphs"]["model"]["exporter"] == "dynamo"
    pixels = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        _close(rt(pixels).logits, model(pixels).logits)


def test_vit_other_image_size_is_a_clear_error(vit):
    with pytest.raises(AttnlabError, match=r"pixel_values: this export takes \(\*, 1, 8, 8\) \(\* any size\), got \(1, 1, 16, 16\)"):
        vit[2](torch.randn(1, 1, 16, 16))


@pytest.fixture(scope="module")
def gat(tmp_path_factory):
    torch.manual_seed(0)
    return _export(GAT(GATConfig(in_dim=6, hidden_dim=4, heads=3, num_classes=3, dropout=0.0)), tmp_path_factory, "gat")


@pytest.mark.parametrize("nodes, edges", [(5, 9), (23, 60)])
def test_gat_equals_pytorch_on_graphs_of_other_sizes(gat, nodes, edges):
    model, _, rt = gat
    x = torch.randn(nodes, 6)
    edge_index = torch.randint(0, nodes, (2, edges))  # repeated edges and self-loops too
    with torch.no_grad():
        expected = model(x, edge_index).logits
    _close(rt(x, edge_index).logits, expected)


# --- the folder -------------------------------------------------------------------------
def test_folder_of_another_format_version_is_a_clear_error(gpt, tmp_path):
    import shutil

    _, out, _ = gpt
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    manifest = read_json(copy / MANIFEST)
    manifest["format_version"] = FORMAT_VERSION + 1
    write_json(copy / MANIFEST, manifest)
    with pytest.raises(AttnlabError, match=f"export format version {FORMAT_VERSION + 1}.*export the checkpoint again"):
        load_runtime(copy)
    with pytest.raises(AttnlabError, match="not an attnlab ONNX export"):
        load_runtime(tmp_path)


def test_existing_output_folder_is_not_replaced(gpt, tmp_path):
    ckpt = tmp_path / "ckpt"
    gpt[0].save_pretrained(ckpt)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(AttnlabError, match="exists and is not empty"):
        export_onnx(ckpt, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_model_types_without_export_say_so(tmp_path):
    (tmp_path / "other").mkdir()
    write_json(tmp_path / "other" / "config.json", {"model_type": "mamba"})
    with pytest.raises(AttnlabError, match="'mamba' model cannot be exported to ONNX"):
        export_onnx(tmp_path / "other", tmp_path / "out")
    with pytest.raises(AttnlabError, match="opset"):
        export_onnx(tmp_path / "other", tmp_path / "out", opset=9)


def test_onnx_files_are_plain_onnx(gpt):
    onnx = pytest.importorskip("onnx")
    _, out, _ = gpt
    for name in ("prefill", "decode"):
        model = onnx.load(str(out / f"{name}.onnx"))
        onnx.checker.check_model(model)
        assert any(o.domain in ("", "ai.onnx") and o.version == 18 for o in model.opset_import)
    assert np.isfinite(load_runtime(out)(torch.zeros(1, 1, dtype=torch.long)).logits.numpy()).all()
