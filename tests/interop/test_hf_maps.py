"""The HF weight maps on their own: dicts in, dicts out, both directions inverse to each
other, config fields round trip, HF's defaults (two labels, activation names) understood,
and no model imported (the maps work on plain dicts and tensors)."""

import subprocess
import sys

import pytest
import torch

from attnlab.config import config_to_dict
from attnlab.errors import AttnlabError
from attnlab.interop import hf_bert, hf_common, hf_gpt2, hf_vit
from attnlab.models import BERT, GPT, ViT
from attnlab.models.bert import bert_config
from attnlab.models.gpt import gpt_config
from attnlab.models.vit import vit_config


def same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("head", ["base", "pretraining", "mlm", "lm", "nsp", "classifier"])
def test_bert_maps_are_inverse(head):
    model = BERT(bert_config("tiny", head=head, labels=["a", "b", "c"] if head == "classifier" else [],
                             add_pooler=head not in ("mlm", "lm")))
    state = dict(model.state_dict())
    hf = hf_bert.weights_to_hf(state, head)
    assert all(k.startswith(("bert.", "cls.", "classifier.")) for k in hf) or head == "base"
    same(hf_bert.weights_from_hf(hf), state)
    assert hf_bert.has_pooler(hf) == (head not in ("mlm", "lm"))
    fields = hf_bert.config_from_hf(hf_bert.config_to_hf(config_to_dict(model.config)), hf_bert.has_pooler(hf))
    assert fields == config_to_dict(model.config)


@pytest.mark.parametrize("labels", [[], ["cat", "dog"]])
def test_vit_maps_are_inverse(labels):
    model = ViT(vit_config("digits", labels=labels, add_pooler=not labels))
    state = dict(model.state_dict())
    hf = hf_vit.weights_to_hf(state, classifier=bool(labels))
    same(hf_vit.weights_from_hf(hf), state)
    fields = hf_vit.config_from_hf(hf_vit.config_to_hf(config_to_dict(model.config)), hf_vit.has_pooler(hf))
    assert fields == config_to_dict(model.config)


def test_vit_in_memory_names_of_transformers_5_map_too():
    state = dict(ViT(vit_config("digits", labels=[])).state_dict())
    on_disk = hf_vit.weights_to_hf(state, classifier=False)
    in_memory = hf_common.rename(on_disk, hf_vit.MEMORY_ALIASES)
    assert any(k.startswith("layers.0.attention.q_proj") for k in in_memory)
    same(hf_vit.weights_from_hf(in_memory), state)


@pytest.mark.parametrize("overrides", [{}, dict(activation="relu", scale_attn_by_inverse_layer_idx=True)])
def test_gpt2_maps_are_inverse(overrides):
    model = GPT(gpt_config("tiny", **overrides))
    state = dict(model.state_dict())
    hf = hf_gpt2.weights_to_hf(state, model.config.num_layers)
    assert "transformer.h.0.attn.c_attn.weight" in hf and "lm_head.weight" not in hf
    same(hf_gpt2.weights_from_hf(hf, model.config.num_layers), state)
    assert hf_gpt2.config_from_hf(hf_gpt2.config_to_hf(config_to_dict(model.config))) == config_to_dict(model.config)


def test_hf_defaults_and_names():
    assert hf_common.labels_from_hf({}) == ["LABEL_0", "LABEL_1"]  # HF leaves its default two labels out
    assert hf_common.labels_from_hf({"num_labels": 3}) == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert hf_common.labels_from_hf({"id2label": {"1": "pos", "0": "neg"}}) == ["neg", "pos"]
    with pytest.raises(AttnlabError, match="id2label"):
        hf_common.labels_from_hf({"id2label": {"x": "pos"}})
    for hf_name, ours in [("gelu_new", "gelu_tanh"), ("gelu_pytorch_tanh", "gelu_tanh"), ("swish", "silu"), ("gelu", "gelu")]:
        assert hf_common.activation_from_hf(hf_name, "hidden_act") == ours
    with pytest.raises(AttnlabError, match="hidden_act 'laplace'"):
        hf_common.activation_from_hf("laplace", "hidden_act")
    with pytest.raises(AttnlabError, match="missing field 'hidden_size'"):
        hf_bert.config_from_hf({"model_type": "bert"}, has_pooler=True)
    with pytest.raises(AttnlabError, match="position_embedding_type"):
        hf_bert.config_from_hf({**hf_bert.config_to_hf(config_to_dict(bert_config("tiny"))),
                                "position_embedding_type": "rotary"}, has_pooler=True)


def test_interop_imports_no_model():
    code = ("import sys; import attnlab.interop.hf_bert, attnlab.interop.hf_vit, attnlab.interop.hf_gpt2; "
            "print(sorted(m for m in sys.modules if m.startswith('attnlab.models')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
