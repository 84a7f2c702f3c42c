"""attnlab.validation: the checks each loader calls (the fuzz test runs them through the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from attnlab import validation
from attnlab.config import config_from_dict
from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.models import GPT
from attnlab.models.gpt import gpt_config


@dataclass
class Shape:
    vocab_size: int = 10
    num_layers: int = 2
    hidden_size: int = 8
    dropout: float = 0.1
    norm_eps: float = 1e-5
    pad_id: int = 0
    d_ff: int | None = None
    labels: list[str] | None = None
    tie: bool = True


@pytest.mark.parametrize("field, value, message", [
    ("vocab_size", "10", r"vocab_size: expected an integer, got '10'"),
    ("vocab_size", 10.0, r"vocab_size: expected an integer, got 10.0"),
    ("vocab_size", True, r"vocab_size: expected an integer, got True"),
    ("vocab_size", 0, r"vocab_size: expected an integer in \[1, 2147483647\], got 0"),
    ("vocab_size", 10**12, r"vocab_size: expected an integer in \[1, 2147483647\]"),
    ("num_layers", 10**9, r"n_layer: expected an integer in \[1, 1024\], got 1000000000"),  # the file's name
    ("dropout", 1.5, r"dropout: expected a probability in \[0, 1\], got 1.5"),
    ("dropout", float("nan"), r"dropout: expected a finite number"),
    ("norm_eps", -1.0, r"norm_eps: expected a positive number, got -1.0"),
    ("norm_eps", 0.0, r"norm_eps: expected a positive number, got 0.0"),
    ("norm_eps", float("inf"), r"norm_eps: expected a finite number"),
    ("norm_eps", "1e-5", r"norm_eps: expected a finite number, got '1e-5'"),
    ("pad_id", 10, r"pad_id: expected a token id below the vocabulary size 10, got 10"),
    ("d_ff", "x", r"d_ff: expected an integer or null, got 'x'"),
    ("labels", [1], r"labels: expected a list of str values or null"),
    ("tie", 1, r"tie: expected true or false, got 1"),
])
def test_config_types_and_ranges(field, value, message):
    with pytest.raises(AttnlabError, match=message):
        config_from_dict(Shape, {field: value}, names={"num_layers": "n_layer"})


def test_config_own_checks_and_missing_fields_use_the_files_names():
    from attnlab.interop.hf_gpt2 import CONFIG_NAMES, config_from_hf
    from attnlab.models.gpt import GPTConfig

    with pytest.raises(AttnlabError, match=r"^n_embd \(32\) must be divisible by n_head \(3\)$"):
        config_from_dict(GPTConfig, config_from_hf({"vocab_size": 10, "n_embd": 32, "n_head": 3}), CONFIG_NAMES)
    from attnlab.models import GATConfig

    with pytest.raises(AttnlabError, match=r"missing field\(s\) \['in_dim'\]"):
        config_from_dict(GATConfig, {"num_classes": 2})


def test_valid_config_and_unknown_fields():
    assert config_from_dict(Shape, {"vocab_size": 5, "d_ff": None, "labels": ["a"]}).vocab_size == 5
    with pytest.raises(AttnlabError, match=r"unknown field\(s\) \['colour'\]"):
        config_from_dict(Shape, {"colour": 1})
    with pytest.raises(AttnlabError, match="expected a JSON object of fields, got list"):
        config_from_dict(Shape, [])


def test_a_model_too_big_for_memory_is_refused_before_allocating(tmp_path, monkeypatch):
    GPT(gpt_config("tiny")).save_pretrained(tmp_path)
    monkeypatch.setattr(validation, "available_memory", lambda: 10_000)  # bytes
    with pytest.raises(AttnlabError, match=r"config.json: a gpt2 model of this config needs .* more than the"):
        GPT.from_pretrained(tmp_path)
    monkeypatch.undo()
    assert GPT.from_pretrained(tmp_path).config.num_layers == 2
    assert validation.available_memory() > 0


def test_weights_dtype_and_values():
    expected = {"w": torch.zeros(2)}
    validation.check_tensors({"w": torch.ones(2, dtype=torch.float16)}, "f", expected)  # converted as usual
    with pytest.raises(AttnlabError, match=r"f: tensor 'w' is torch.int32; expected a floating-point tensor"):
        validation.check_tensors({"w": torch.ones(2, dtype=torch.int32)}, "f", expected)
    with pytest.raises(AttnlabError, match=r"f: tensor 'w' holds 1 NaN or infinite value"):
        validation.check_tensors({"w": torch.tensor([0.0, float("inf")])}, "f", expected)


def test_text_checks():
    assert validation.decode_text("héllo\n".encode(), "t") == "héllo\n"
    assert validation.decode_text(b"caf\xe9 " + b"x" * 200, "t").startswith("caf")  # one odd byte: replaced
    with pytest.raises(AttnlabError, match=r"t:2: NUL byte"):
        validation.decode_text(b"a\nb\x00", "t")
    with pytest.raises(AttnlabError, match=r"t: 3 of 3 characters are not UTF-8"):
        validation.decode_text(b"\xe9\xe8\xff", "t")
    with pytest.raises(AttnlabError, match=r"t:3: not valid UTF-8"):
        validation.decode_text(b"a\nb\n\xe9", "t", strict=True)


def test_json_files_hold_objects(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("[1, 2]")
    with pytest.raises(AttnlabError, match=r"c.json: expected a JSON object \{...\}, got \[1, 2\]"):
        read_json(path)
    assert read_json(path, kind=None) == [1, 2]
    with pytest.raises(AttnlabError, match=r"tmp.*: is a folder, expected a file"):
        read_json(tmp_path)


SMALL = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)


def _hf_folder(kind: str, path, **overrides):
    """A tiny random HF model of ``kind`` saved in ``path``, and an input for it."""
    import transformers as T

    if kind == "gpt2":
        hf = T.GPT2LMHeadModel(T.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2, **overrides))
        inputs = {"input_ids": torch.randint(0, 50, (2, 7))}
    elif kind == "bert":
        hf = T.BertModel(T.BertConfig(**SMALL, **overrides))
        inputs = {"input_ids": torch.randint(0, 50, (2, 7))}
    else:
        config = {k: v for k, v in SMALL.items() if k != "vocab_size"}
        hf = T.ViTModel(T.ViTConfig(**config, image_size=8, patch_size=4, num_channels=1, **overrides))
        inputs = {"pixel_values": torch.randn(2, 1, 8, 8)}
    hf.eval().save_pretrained(path)
    return hf, inputs


@pytest.mark.parametrize("kind, field", [("gpt2", "layer_norm_epsilon"), ("bert", "layer_norm_eps"), ("vit", "layer_norm_eps")])
def test_legal_but_unusual_eps_is_accepted_and_matches_hf(tmp_path, kind, field):
    """eps = 1.0 is legal (HF's own batching-equivalence tests use it): loaded, same outputs
    as transformers (fp32, atol 1e-5); what is wrong (<= 0, NaN, infinite) is refused."""
    from attnlab.models import BERT, ViT

    torch.manual_seed(0)
    hf, inputs = _hf_folder(kind, tmp_path, **{field: 1.0})
    model = {"gpt2": GPT, "bert": BERT, "vit": ViT}[kind].from_pretrained(tmp_path)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1.0 for m in norms)
    with torch.no_grad():
        theirs = hf(**inputs)
        ours = model(**inputs)
    if kind == "gpt2":
        torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(ours.last_hidden_state, theirs.last_hidden_state, atol=1e-5, rtol=0)
    config = read_json(tmp_path / "config.json")
    for wrong in (0.0, -1e-5):
        (tmp_path / "config.json").write_text(__import__("json").dumps({**config, field: wrong}))
        with pytest.raises(AttnlabError, match=rf"{field}: expected a positive number, got {wrong}"):
            type(model).from_pretrained(tmp_path)


@pytest.mark.parametrize("kind, field", [("gpt2", "n_embd"), ("bert", "hidden_size"), ("vit", "hidden_size"),
                                         ("transformer", "d_model")])
def test_a_size_no_tensor_can_have_is_named_before_any_model_is_built(tmp_path, kind, field):
    """``n_embd: 10**9``: torch's storage size overflows even on the meta device; the
    config is named with the weights' real sizes, not a raw RuntimeError."""
    import json

    from attnlab.models import BERT, Transformer, ViT
    from attnlab.models.transformer import TransformerConfig

    if kind == "transformer":
        model = Transformer(TransformerConfig(src_vocab_size=20, tgt_vocab_size=20, d_model=16, num_heads=2,
                                              num_encoder_layers=1, num_decoder_layers=1, d_ff=32))
        model.save_pretrained(tmp_path)
    else:
        _hf_folder(kind, tmp_path)
        model = {"gpt2": GPT, "bert": BERT, "vit": ViT}[kind]
    config = read_json(tmp_path / "config.json")
    heads = "n_head" if kind == "gpt2" else "num_heads" if kind == "transformer" else "num_attention_heads"
    (tmp_path / "config.json").write_text(json.dumps({**config, field: 2 * 10**9, heads: 2}))
    with pytest.raises(AttnlabError, match=r"config.json: a \w+ model of these sizes cannot be built .*"
                                           r"model.safetensors are at most \d+ wide"):
        type(model).from_pretrained(tmp_path) if kind == "transformer" else model.from_pretrained(tmp_path)


def test_constructors_accept_the_legal_extremes_and_refuse_nan():
    """What torch accepts is legal (label smoothing 1, dropout 1, a constant baseline);
    NaN is never a weight of a loss."""
    from attnlab.attention import GATConv
    from attnlab.attention.hard import ReinforceBaseline
    from attnlab.models.seq2seq import Seq2SeqConfig
    from attnlab.models.transformer import TransformerConfig

    assert TransformerConfig(label_smoothing=1.0).label_smoothing == 1.0
    assert GATConv(4, 2, dropout=1.0).dropout == 1.0
    assert ReinforceBaseline(1.0).decay == 1.0
    with pytest.raises(AttnlabError, match=r"alignment_weight = nan: expected >= 0"):
        TransformerConfig(alignment_weight=float("nan"))
    with pytest.raises(AttnlabError, match=r"alignment_weight: expected >= 0 .* got nan"):
        Seq2SeqConfig(alignment_weight=float("nan"))
    with pytest.raises(AttnlabError, match=r"label_smoothing = 1.5: expected a value in \[0, 1\]"):
        TransformerConfig(label_smoothing=1.5)
