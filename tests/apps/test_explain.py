"""The seam every picture reads: ``attnlab.apps.attentions_for(ckpt, inputs)`` on a checkpoint of
each model type gives one ``Explained`` whose maps are the model's own weights, labelled
on every axis, and ``attnlab viz`` draws a PNG of each (GPT included)."""

from __future__ import annotations

import pytest
import torch

from attnlab.apps import attentions_for
from attnlab.attention.maps import GraphAttention
from attnlab.cli.main import main

TINY_TRAIN = ["--steps", "2", "--quiet"]


def _train(args: list[str], out) -> None:
    assert main(["train", *args, "--out", str(out), *TINY_TRAIN]) == 0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    text = root / "code.py"
    text.write_text("".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(300)))
    docs = root / "docs.txt"
    docs.write_text("\n\n".join(f"alpha beta {i} gamma.\ndelta file {i} open.\nthe list {i} sorts." for i in range(40)))
    runs = {
        "transformer": ["translate", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8"],
        "seq2seq": ["seq2seq", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8", "--attention", "location"],
        "gpt2": ["lm", "--data", str(text), "--preset", "tiny", "--context", "32", "--batch-size", "2",
                 "--final-eval", "none", "--eval-every", "0"],
        "bert": ["mlm", "--data", str(docs), "--preset", "tiny", "--vocab-size", "60", "--batch-size", "4",
                 "--max-len", "16"],
        "vit": ["vit", "--batch-size", "8"],
        "gat": ["gat", "--seeds", "1"],
        "han": ["han", "--seeds", "1"],
    }
    out = {}
    for name, args in runs.items():
        _train(args, root / name)
        out[name] = root / name
    return out


def _check_token_maps(explained, expected_kinds: set[str]) -> None:
    kinds = {e.kind for e in explained.attentions.entries()}
    assert kinds == expected_kinds
    for e in explained.attentions.entries():
        w = e.value
        q, k = (explained.labels[axis] for axis in e.axes)
        assert w.dim() == 4 and w.shape[0] == len(q) == len(k)
        assert w.shape[2] == len(q[0]) and w.shape[3] == len(k[0])
        rows = w.sum(-1)  # every row a distribution (or zero when it may attend to nothing)
        assert torch.all(((rows - 1).abs() < 1e-4) | (rows.abs() < 1e-6))


@pytest.mark.parametrize(
    ("name", "inputs", "kinds"),
    [
        ("transformer", ["the small cat sees a dog .", "a dog ."], {"self", "causal", "cross"}),
        ("seq2seq", ["the small cat sees a dog ."], {"cross"}),
        ("gpt2", ["def f1(x):", "return"], {"causal"}),
        ("bert", ["alpha beta file", "the list"], {"self"}),
    ],
)
def test_token_models(checkpoints, name, inputs, kinds):
    explained = attentions_for(checkpoints[name], inputs)
    assert explained.model_type == name
    _check_token_maps(explained, kinds)
    assert len(next(iter(explained.labels.values()))) == len(inputs)


def test_gpt_maps_are_causal_and_equal_the_models_own(checkpoints):
    from attnlab.apps import lm

    loaded = lm.load(checkpoints["gpt2"])
    explained = lm.attentions(loaded, ["def f1(x):"])
    ids = torch.tensor([loaded.tokenizer.encode("def f1(x):")])
    with torch.no_grad():
        direct = loaded.model(ids, need_weights=True).attentions
    for name in explained.attentions:
        torch.testing.assert_close(explained.attentions[name], direct[name], atol=1e-6, rtol=0)
        assert torch.all(explained.attentions[name].triu(1) == 0)  # nothing from the future


def test_vit_image_and_patches(checkpoints):
    explained = attentions_for(checkpoints["vit"], [])
    _check_token_maps(explained, {"self"})
    rows, cols = explained.extras["grid"]
    assert len(explained.labels["patches"][0]) == 1 + rows * cols
    assert explained.extras["image"].min() >= 0 and explained.extras["image"].max() <= 1


@pytest.mark.parametrize("name", ["gat", "han"])
def test_graph_models(checkpoints, name):
    explained = attentions_for(checkpoints[name], [])
    nodes = explained.labels["nodes"][0]
    for e in explained.attentions.entries():
        assert isinstance(e.value, GraphAttention) and e.kind == ("metapath" if name == "han" else "graph")
        edge_index, alpha = e.value
        assert int(edge_index.max()) < len(nodes)
        incoming = torch.zeros(len(nodes), alpha.shape[1]).index_add_(0, edge_index[1], alpha)
        torch.testing.assert_close(incoming, torch.ones_like(incoming), atol=1e-5, rtol=0)  # softmax per target
    if name == "han":
        assert abs(float(explained.extras["metapath_weights"].sum()) - 1) < 1e-5


@pytest.mark.parametrize("name", ["transformer", "seq2seq", "gpt2", "bert", "vit", "gat", "han"])
def test_viz_draws_every_model_type(checkpoints, name, tmp_path, capsys):
    out = tmp_path / f"{name}.png"
    assert main(["viz", "--ckpt", str(checkpoints[name]), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert str(out) in capsys.readouterr().out


def test_a_checkpoint_never_names_files_for_the_tool_to_read(checkpoints, tmp_path, capsys):
    """A metrics.json pointing elsewhere is ignored: viz reads only the folder and its inputs."""
    import json
    import shutil

    ckpt = tmp_path / "gat"
    shutil.copytree(checkpoints["gat"], ckpt)
    (ckpt / "metrics.json").write_text(json.dumps({"source": {"data": "csv", "edges": "/etc/passwd",
                                                              "nodes": "/etc/passwd"}}))
    assert main(["viz", "--ckpt", str(ckpt), "--out", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err
    assert "passwd" not in err and "edges and nodes CSV" in err


def test_viz_draws_element_0_without_the_batchs_padding(checkpoints):
    from attnlab.viz.figures import layer_grid

    explained = attentions_for(checkpoints["transformer"], ["a dog .", "the small cat sees a dog that sleeps ."])
    figure = layer_grid(explained)
    keys = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert keys and "<pad>" not in keys and len(keys) == explained.extras["src_lengths"][0]
