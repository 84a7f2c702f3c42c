"""The explorer's payload: quantization error, per-head statistics, blobs and the written file."""

from __future__ import annotations

import base64
import json
import math
import re
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from attnlab.attention.maps import Attentions, Explained
from attnlab.errors import AttnlabError
from attnlab.viz.explorer import write_page
from attnlab.viz.explorer.pack import Blobs, quantize_rows
from attnlab.viz.explorer.stats import graph_statistics, head_statistics

sys.path.insert(0, str(Path(__file__).parent))
from browser import CASES, gpt_case, translator_case  # noqa: E402


def _meta(path: Path) -> tuple[dict, dict[str, bytes]]:
    text = path.read_text(encoding="utf-8")
    meta = json.loads(re.search(r'<script type="application/json" id="attnlab-meta">(.*?)</script>', text, re.S).group(1))
    blobs = {k: zlib.decompress(base64.b64decode(v)) for k, v in
             re.findall(r'<script type="application/octet-stream" id="attnlab-([\w]+)">([^<]*)</script>', text)}
    return meta, blobs


def test_row_quantization_error_is_within_half_a_step_of_the_row_maximum():
    a = torch.randn(3, 50, 70).mul(3).softmax(-1)
    q, rowmax = quantize_rows(a)
    back = torch.from_numpy(q).float() / 255 * torch.from_numpy(rowmax)[..., None]
    assert (back - a).abs().le(torch.from_numpy(rowmax)[..., None] / 510 + 1e-7).all()
    assert q.max() == 255  # every row uses the whole range


def test_long_uniform_rows_survive_quantization():
    a = torch.full((1, 4, 1024), 1 / 1024)
    q, rowmax = quantize_rows(a)
    assert (q == 255).all() and rowmax == pytest.approx(1 / 1024)


def test_blobs_round_trip():
    blobs = Blobs("x")
    raw = bytes(range(256)) * 100
    key = blobs.add(raw)
    assert key == "x0" and zlib.decompress(base64.b64decode(blobs.items[key])) == raw


def test_statistics_find_the_diagonal_and_previous_token_heads():
    n = 6
    diag = torch.eye(n)
    prev = torch.zeros(n, n)
    prev[0, 0] = 1
    prev[torch.arange(1, n), torch.arange(n - 1)] = 1
    uniform = torch.ones(n, n).tril()
    uniform = uniform / uniform.sum(-1, keepdim=True)
    labels = ["[CLS]", "a", "b", ",", "c", "[SEP]"]
    st = head_statistics(torch.stack([diag, prev, uniform]), same_axes=True, key_labels=labels)
    assert st["self"][0] == pytest.approx(1) and st["entropy"][0] == pytest.approx(0, abs=1e-6)
    assert st["prev"][1] == pytest.approx((n - 1) / n) and st["distance"][1] == pytest.approx((n - 1) / n)
    assert st["entropy"][2] == pytest.approx(sum(math.log(i + 1) for i in range(n)) / n, rel=1e-5)
    assert st["special"][0] == pytest.approx(3 / n)  # [CLS], "," and [SEP] attend to themselves
    assert st["aer"] == [None] * 3


def test_aer_per_head_against_gold_links():
    gold = {(0, 1), (1, 0), (2, 2)}
    perfect = torch.zeros(3, 3)
    for t, s in gold:
        perfect[t, s] = 1
    wrong = torch.eye(3)  # one of three links right
    st = head_statistics(torch.stack([perfect, wrong]), same_axes=False, key_labels=["x"] * 3, gold=gold)
    assert st["aer"][0] == pytest.approx(0) and st["aer"][1] == pytest.approx(1 - 2 / 6)
    assert st["self"] == [None, None]  # cross attention has no diagonal


def test_vit_distance_is_measured_in_patches():
    grid, n = (2, 2), 5
    a = torch.zeros(1, n, n)
    a[0, :, 4] = 1  # everyone attends to the bottom-right patch
    st = head_statistics(a, same_axes=True, key_labels=["[CLS]"] + ["p"] * 4, grid=grid)
    # patches (0,0) (0,1) (1,0) (1,1) -> distances sqrt2, 1, 1, 0; [CLS] counts 0
    assert st["distance"][0] == pytest.approx((math.sqrt(2) + 2) / 5)


def test_graph_statistics_of_self_loops():
    edge_index = torch.tensor([[0, 1, 2], [0, 1, 2]])
    st = graph_statistics(edge_index, torch.ones(3, 2), 3)
    assert st["self"] == pytest.approx([1, 1]) and st["entropy"] == pytest.approx([0, 0], abs=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_model_type_packs_into_one_offline_file(tmp_path, name):
    ex = CASES[name]()
    out = write_page([ex], tmp_path / f"{name}.html", title=f"{name} <test>")
    text = out.read_text(encoding="utf-8")
    assert f"<title>{name} &lt;test&gt;</title>" in text and f"<h1>{name} &lt;test&gt;</h1>" in text
    # no address outside the page: the only URL is the SVG namespace inside the export code
    assert set(re.findall(r"https?://[^\s\"'`<>]+", text)) <= {"http://www.w3.org/2000/svg"}
    meta, blobs = _meta(out)
    examples = meta["sets"][0]["examples"]
    assert len(examples) == max(v.shape[0] if isinstance(v, torch.Tensor) else 1 for v in ex.attentions.values())
    for entry, d in zip(ex.attentions.entries(), examples[0]["maps"]):
        assert d["name"] == entry.name and d["kind"] == entry.kind
        if d.get("graph"):
            alpha = torch.frombuffer(bytearray(blobs[d["alpha"]]), dtype=torch.int16).view(torch.uint16).to(torch.int32)
            assert torch.allclose(alpha.view(-1, d["heads"]).float() / 65535, entry.value.alpha, atol=1e-5)
        else:
            h = d["heads"] - 1  # the last head, element 0
            q = torch.frombuffer(bytearray(blobs[d["data"][h]]), dtype=torch.uint8).view(d["lq"], d["lk"]).float()
            scale = torch.frombuffer(bytearray(blobs[d["scale"]]), dtype=torch.float32).view(d["heads"], d["lq"])
            assert torch.allclose(q / 255 * scale[h][:, None], entry.value[0, h].float(), atol=scale.max().item() / 500)
    if name == "vit":
        assert examples[0]["image"].startswith("data:image/png;base64,") and "rollout" in examples[0]
    if name in ("transformer", "seq2seq"):
        cross = [k for k, d in enumerate(examples[0]["maps"]) if d["kind"] == "cross"]
        assert all(v is not None for k in cross for v in examples[0]["stats"][k]["aer"])
    if name == "han":
        assert examples[0]["metapath_weights"] == pytest.approx([0.7, 0.3])
    if name in ("gat", "han"):
        assert len(examples[0]["layout"]) == 2 * 34


HOSTILE = ["</script><script>alert(1)</script>", "<!--<script", "a & b > c", "line\u2028sep\u2029"]


class _Scripts(HTMLParser):
    """The text of every <script> element, as an HTML parser splits the file."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append((dict(attrs), ""))

    def handle_data(self, data):
        if self.scripts and self.lasttag == "script":
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


def test_labels_titles_and_paths_cannot_escape_the_data_script(tmp_path):
    """A label, title or compare path holding ``</script>`` or ``<!--<script`` (which would put the
    parser into its double-escaped state and blank the page) stays data: the embedded JSON holds no
    ``<``, ``>`` or ``&`` at all, and reads back as given (the browser test opens such a page)."""
    a = Attentions()
    a.add("layers.0.self", torch.ones(1, 1, 4, 4) / 4, kind="self", axes=("tokens", "tokens"))
    ex = Explained("bert", a, {"tokens": [HOSTILE]})
    path = write_page([ex], tmp_path / "x.html", title="runs/<!--<script", compare=[ex], compare_title="</script>")
    parser = _Scripts()
    parser.feed(path.read_text(encoding="utf-8"))
    data = [text for attrs, text in parser.scripts if attrs.get("id") == "attnlab-meta"]
    assert len(data) == 1 and not set("<>&\u2028\u2029") & set(data[0])
    meta = json.loads(data[0])
    assert meta["title"] == "runs/<!--<script" and meta["sets"][1]["title"] == "</script>"
    assert [s["examples"][0]["labels"]["tokens"] for s in meta["sets"]] == [HOSTILE, HOSTILE]
    assert [attrs.get("id", "") for attrs, _ in parser.scripts][-1] == ""  # the page's code is still its own element


def test_compare_adds_a_second_set(tmp_path):
    meta, _ = _meta(write_page([gpt_case(0)], tmp_path / "c.html", title="early", compare=[gpt_case(1)],
                               compare_title="late"))
    assert [s["title"] for s in meta["sets"]] == ["early", "late"]


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(AttnlabError, match="HTML file"):
        write_page([translator_case()], tmp_path / "x.png", title="t")
    with pytest.raises(AttnlabError, match="list of Explained"):
        write_page([object()], tmp_path / "x.html", title="t")
    with pytest.raises(AttnlabError, match="at least one"):
        write_page([], tmp_path / "x.html", title="t")
    with pytest.raises(AttnlabError, match="no attention maps"):
        write_page([Explained("gpt", Attentions(), {})], tmp_path / "x.html", title="t")


def test_nan_weights_are_drawn_as_zero(tmp_path):
    a = torch.rand(1, 1, 3, 3).softmax(-1)
    a[0, 0, 1, 2] = float("nan")
    maps = Attentions()
    maps.add("layers.0.self", a, kind="self", axes=("tokens", "tokens"))
    meta, blobs = _meta(write_page([Explained("bert", maps, {"tokens": [["a", "b", "c"]]})], tmp_path / "n.html", title="t"))
    d = meta["sets"][0]["examples"][0]["maps"][0]
    assert blobs[d["data"][0]][5] == 0 and meta["sets"][0]["examples"][0]["stats"][0]["entropy"] == [None]


def test_dense_attention_is_quantized_coarser_to_fit_the_size_budget(tmp_path):
    from attnlab.viz.explorer.pack import choose_levels

    a = Attentions()
    g = torch.Generator().manual_seed(0)
    for i in range(4):  # dense noise: every weight within a few x of its row's maximum
        a.add(f"layers.{i}.self", (torch.randn(1, 4, 256, 256, generator=g) * 0.5).softmax(-1), kind="self",
              axes=("tokens", "tokens"))
    ex = Explained("bert", a, {"tokens": [[f"t{i}" for i in range(256)]]})
    assert choose_levels([ex], None) == 255 and choose_levels([ex], 100) == 255
    levels = choose_levels([ex], 1.8)
    assert levels < 255
    out = write_page([ex], tmp_path / "dense.html", title="t", max_mb=1.8)
    assert out.stat().st_size < 1.8e6
    meta, blobs = _meta(out)
    d = meta["sets"][0]["examples"][0]["maps"][2]
    q = torch.frombuffer(bytearray(blobs[d["data"][1]]), dtype=torch.uint8).view(256, 256).float()
    scale = torch.frombuffer(bytearray(blobs[d["scale"]]), dtype=torch.float32).view(4, 256)[1]
    want = a["layers.2.self"][0, 1]
    assert d["levels"] == levels and q.max() <= levels
    assert (q / levels * scale[:, None] - want).abs().le(scale[:, None] / (2 * levels) + 1e-7).all()


def test_padded_batches_grey_images_and_node_predictions(tmp_path):
    a = Attentions()
    a.add("layers.0.self", torch.rand(2, 2, 5, 5).softmax(-1), kind="self", axes=("tokens", "tokens"))
    ex = Explained("bert", a, {"tokens": [list("abcde"), list("xyz")]})  # the second is padded to 5
    meta, blobs = _meta(write_page([ex], tmp_path / "p.html", title="t"))
    short = meta["sets"][0]["examples"][1]["maps"][0]
    assert (short["lq"], short["lk"]) == (3, 3) and len(blobs[short["data"][0]]) == 9
    padded = Explained("bert", a, {"tokens": [list("abcde"), list("xy") + ["[PAD]"] * 3]}, {"lengths": [5, 2]})
    meta, _ = _meta(write_page([padded], tmp_path / "q.html", title="t"))  # labels padded, true lengths given
    assert meta["sets"][0]["examples"][1]["labels"]["tokens"] == ["x", "y"]
    assert meta["sets"][0]["examples"][1]["maps"][0]["lq"] == 2
    from browser import gat_case, vit_case

    vit = vit_case()
    vit.extras["image"] = vit.extras["image"][:, :1]  # (1, 1, H, W): a grey image
    meta, _ = _meta(write_page([vit], tmp_path / "v.html", title="t"))
    assert meta["sets"][0]["examples"][0]["image"].startswith("data:image/png;base64,")
    gat = gat_case()
    gat.extras.update(predictions=[["Mr. Hi"] * 34], class_names=["Mr. Hi", "Officer"])
    meta, _ = _meta(write_page([gat], tmp_path / "g.html", title="t"))
    example = meta["sets"][0]["examples"][0]
    assert example["node_predictions"] == ["Mr. Hi"] * 34 and example["class_names"] == ["Mr. Hi", "Officer"]
    assert "prediction" not in example


def test_graph_nodes_without_labels_are_named_by_index(tmp_path):
    from attnlab.attention.maps import GraphAttention

    maps = Attentions()
    maps.add("layers.0.graph", GraphAttention(torch.tensor([[0, 1, 4], [1, 0, 2]]), torch.ones(3, 1)), kind="graph",
             axes=("nodes", "nodes"))
    meta, _ = _meta(write_page([Explained("gat", maps, {"nodes": [["a", "b"]]})], tmp_path / "g.html", title="t"))
    example = meta["sets"][0]["examples"][0]
    assert example["labels"]["nodes"] == ["a", "b", "2", "3", "4"] and len(example["layout"]) == 10
