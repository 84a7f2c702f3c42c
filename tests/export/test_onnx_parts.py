"""The export traces the models' own forward, so what the attention layer can do exports:
grouped-query heads and rotary positions in GPT's graphs equal the PyTorch model in ONNX
Runtime (fp32, 1e-4 absolute), prompt and cached steps, at lengths the export never saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from attnlab.attention import MultiHeadAttention, RotaryEmbedding  # noqa: E402
from attnlab.export.graphs import gpt_graphs  # noqa: E402
from attnlab.export.onnx import _export_graph  # noqa: E402
from attnlab.models import GPT  # noqa: E402
from attnlab.models.gpt import gpt_config  # noqa: E402

ATOL = 1e-4


def test_grouped_query_heads_and_rotary_positions_export(tmp_path):
    torch.manual_seed(0)
    model = GPT(gpt_config("tiny", num_layers=2, num_heads=4)).eval()  # D 32, Dh 8
    for block in model.blocks:  # 4 query heads share 2 key/value heads; rotary positions in every layer
        block.self_attn = MultiHeadAttention(32, 4, num_kv_heads=2, rotary=RotaryEmbedding(8)).eval()
    graphs, info = gpt_graphs(model)
    assert info["config"]["num_heads"] == 2  # the cache's heads
    sessions = {}
    for graph in graphs:
        entry = _export_graph(graph, tmp_path / f"{graph.name}.onnx", 18)
        assert entry["exporter"] == "dynamo", entry.get("fallback_reason")
        sessions[graph.name] = ort.InferenceSession(str(tmp_path / f"{graph.name}.onnx"), providers=["CPUExecutionProvider"])
    ids = torch.randint(0, 64, (3, 11))
    with torch.no_grad():
        expected = model(ids).logits
    prompt = 7
    logits, *past = sessions["prefill"].run(None, {"input_ids": ids[:, :prompt].numpy(),
                                                   "attention_mask": np.ones((3, prompt), dtype=np.int64)})
    assert np.abs(logits - expected[:, :prompt].numpy()).max() < ATOL
    names = [f"past.{i}.{x}" for i in range(2) for x in ("key", "value")]
    for t in range(prompt, 11):
        feeds = {"input_ids": ids[:, t : t + 1].numpy(), "position_ids": np.full((3, 1), t, dtype=np.int64),
                 "attention_mask": np.ones((3, t + 1), dtype=np.int64), **dict(zip(names, past))}
        logits, *past = sessions["decode"].run(None, feeds)
        assert np.abs(logits[:, 0] - expected[:, t].numpy()).max() < ATOL
    assert past[0].shape == (3, 2, 11, 8)
