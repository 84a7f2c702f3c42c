"""GPT against HuggingFace's GPT2LMHeadModel holding the same weights (fp32, atol 1e-5 on
logits of unit scale), plus cache, generation and error checks."""

import pytest
import torch
import transformers

from attnlab.errors import AttnlabError
from attnlab.evaluation.sampling import filter_logits
from attnlab.interop.hf_gpt2 import weights_from_hf
from attnlab.models import GPT, GPTConfig
from attnlab.models.gpt import gpt_config

transformers.logging.set_verbosity_error()
ATOL = 1e-5

CONFIGS = [
    dict(vocab_size=61, n_positions=32, n_embd=32, n_layer=2, n_head=2),
    dict(vocab_size=50, n_positions=24, n_embd=48, n_layer=3, n_head=4, n_inner=80, layer_norm_epsilon=1e-6),
    dict(vocab_size=33, n_positions=40, n_embd=16, n_layer=1, n_head=1, activation_function="gelu_pytorch_tanh"),
]


def make_hf(sharpen: float = 1.0, attn="sdpa", **overrides) -> transformers.GPT2LMHeadModel:
    """A random HF GPT-2; ``sharpen`` scales the matrices so greedy choices are not near-ties."""
    config = transformers.GPT2Config(
        **{**CONFIGS[0], **overrides}, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=0, eos_token_id=0,
    )
    config._attn_implementation = attn
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() > 1:
                p.mul_(sharpen)
    return hf


def pair(**kw):
    hf = make_hf(**kw)
    return hf, GPT.from_hf(hf).eval()


@pytest.mark.parametrize("cfg", CONFIGS, ids=["2x32", "3x48-ninner", "1x16"])
def test_against_hf_logits_and_loss(cfg):
    hf, gpt = pair(**cfg)
    ids = torch.randint(0, cfg["vocab_size"], (3, 17))
    labels = ids.clone()
    labels[0, 5:9] = -100
    with torch.no_grad():
        ref, ours = hf(ids, labels=labels), gpt(ids, labels=labels)
    torch.testing.assert_close(ours.logits, ref.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.loss, ref.loss, atol=ATOL, rtol=0)


@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=["2x32", "3x48-ninner"])
def test_against_hf_padded(cfg):
    hf, gpt = pair(**cfg)
    ids = torch.randint(0, cfg["vocab_size"], (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 8:] = 0  # right padding
    mask[2, :4] = 0  # left padding, with the positions generate() uses
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask, position_ids=positions).logits
        ours = gpt(ids, mask, position_ids=positions).logits
    # every position, padding included: a padding query sees the real tokens before it
    # (right padding) or none (left padding: zero attention output), as HF's SDPA GPT-2
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


def test_against_hf_padded_query_rows_and_their_weights():
    """The padded-row handling itself: a right-padding query must not see its own (padding)
    key, a left-padding query sees no key at all (weights 0), as HF computes."""
    hf, gpt = pair(attn="eager")
    ids = torch.randint(0, 61, (2, 7))
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        ours = gpt(ids, mask, need_weights=True)
        sdpa = make_hf()
        sdpa.load_state_dict(hf.state_dict())
        torch.testing.assert_close(ours.logits, sdpa(ids, attention_mask=mask).logits, atol=ATOL, rtol=0)
        ref = hf(ids, attention_mask=mask, output_attentions=True).attentions
    weights = ours.attentions["layers.0.causal"]  # (B, H, L, L)
    assert (weights[0, :, 5:, 5:] == 0).all()  # right padding: no padding key, not even its own
    torch.testing.assert_close(weights[0], ref[0][0], atol=ATOL, rtol=0)
    assert (weights[1, :, :2] == 0).all()  # left padding: no key at all (HF eager: uniform, SDPA: zero output)
    torch.testing.assert_close(weights[1, :, 2:], ref[0][1, :, 2:], atol=ATOL, rtol=0)


VARIANTS = [
    dict(activation_function="gelu"), dict(activation_function="relu"), dict(activation_function="silu"),
    dict(activation_function="swish"), dict(activation_function="gelu_fast"), dict(activation_function="quick_gelu"),
    dict(activation_function="tanh"), dict(scale_attn_by_inverse_layer_idx=True), dict(scale_attn_weights=False),
    dict(reorder_and_upcast_attn=True, attn="eager"),
    dict(scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True, activation_function="relu", attn="eager"),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_against_hf_config_variants(variant, tmp_path):
    """GPT-2 configs beyond the default: logits, loss, gradients, cached generation and
    save/load both ways equal HF's."""
    hf, gpt = pair(**variant)
    ids = torch.randint(0, 61, (2, 11))
    hf.train(), gpt.train()  # no dropout in these configs: train mode for the gradients
    ref, ours = hf(ids, labels=ids), gpt(ids, labels=ids)
    torch.testing.assert_close(ours.logits, ref.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.loss, ref.loss, atol=ATOL, rtol=0)
    ref.loss.backward(), ours.loss.backward()
    torch.testing.assert_close(gpt.blocks[1].self_attn.q_proj.weight.grad,
                               hf.transformer.h[1].attn.c_attn.weight.grad[:, :32].t(), atol=ATOL, rtol=0)
    hf.eval(), gpt.eval()
    prompt = ids[:1, :4]
    expected = hf.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(gpt.generate(prompt, 8), expected)  # decode_step with the variant
    gpt.save_pretrained(tmp_path / "ours")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    for key in ("activation_function", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "scale_attn_weights"):
        assert getattr(theirs.config, key) == getattr(hf.config, key) or key == "activation_function"
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ref.logits, atol=ATOL, rtol=0)
        hf.save_pretrained(tmp_path / "hf")
        torch.testing.assert_close(GPT.from_pretrained(tmp_path / "hf")(ids).logits, ref.logits, atol=ATOL, rtol=0)


def test_attentions_match_hf_eager():
    hf, gpt = pair(attn="eager")
    ids = torch.randint(0, 61, (2, 10))
    with torch.no_grad():
        ref = hf(ids, output_attentions=True).attentions
        ours = gpt(ids, need_weights=True).attentions
    assert list(ours) == ["layers.0.causal", "layers.1.causal"] and len(ref) == 2
    assert {e.kind for e in ours.entries()} == {"causal"} and ours.entry("layers.0.causal").axes == ("tokens", "tokens")
    for a, b in zip(ours.values(), ref):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    assert gpt(ids).attentions is None


def test_save_pretrained_loads_in_transformers(tmp_path):
    gpt = GPT(gpt_config("tiny")).eval()
    gpt.save_pretrained(tmp_path)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, gpt(ids).logits, atol=ATOL, rtol=0)
    again = GPT.from_pretrained(tmp_path)
    assert again.config == gpt.config
    for (name, a), b in zip(gpt.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_from_pretrained_reads_hf_folder(tmp_path):
    hf, _ = pair(**CONFIGS[1])
    hf.save_pretrained(tmp_path)
    gpt = GPT.from_pretrained(tmp_path)
    ids = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(gpt(ids).logits, hf(ids).logits, atol=ATOL, rtol=0)


def test_hub_style_keys_without_prefix_and_with_mask_buffers():
    hf, gpt = pair()
    tensors = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    tensors["h.0.attn.bias"] = torch.ones(1, 1, 32, 32)  # the causal-mask buffer of old checkpoints
    converted = weights_from_hf(tensors, num_layers=2)
    for name, value in gpt.state_dict().items():
        assert torch.equal(converted[name], value), name


def test_unsupported_hf_variant_is_refused():
    hf = make_hf(add_cross_attention=True)
    with pytest.raises(AttnlabError, match="add_cross_attention"):
        GPT.from_hf(hf)


def test_cached_equals_uncached():
    gpt = GPT(gpt_config("tiny")).eval()
    ids = torch.randint(0, 64, (2, 15))
    with torch.no_grad():
        full = gpt(ids).logits
        caches = gpt.make_caches(capacity=4)  # small, so the cache also has to grow
        parts = [gpt(ids[:, a:b], caches=caches).logits for a, b in ((0, 6), (6, 7), (7, 12), (12, 15))]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=ATOL, rtol=0)


def test_greedy_equals_hf_generate():
    hf, gpt = pair(sharpen=4.0)
    ids = torch.randint(1, 61, (2, 6))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    ref = hf.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(gpt.generate(ids, 12, attention_mask=mask), ref)


def test_batched_and_left_padded_generation_equal_one_by_one():
    _, gpt = pair(sharpen=4.0)
    prompts = [torch.randint(1, 61, (n,)) for n in (7, 3, 5)]
    width = max(len(p) for p in prompts)
    ids = torch.zeros(3, width, dtype=torch.long)
    mask = torch.zeros(3, width, dtype=torch.long)
    for i, p in enumerate(prompts):  # left padding
        ids[i, width - len(p):], mask[i, width - len(p):] = p, 1
    batched = gpt.generate(ids, 10, attention_mask=mask)
    for i, p in enumerate(prompts):
        alone = gpt.generate(p[None], 10)
        assert torch.equal(batched[i, width:], alone[0, len(p):]), i


def test_eos_stops_and_pads():
    _, gpt = pair(sharpen=4.0)
    ids = torch.randint(1, 61, (1, 4))
    free = gpt.generate(ids, 8)
    eos = int(free[0, 6])  # the third generated token
    out = gpt.generate(ids, 8, eos_token_id=eos)
    stop = (out[0, 4:] == eos).nonzero()[0, 0] + 5
    assert out.shape[1] == stop and torch.equal(out[0, :stop], free[0, :stop])


@pytest.mark.parametrize("top_k, top_p", [(3, None), (None, 0.5), (5, 0.3)])
def test_sampling_stays_in_the_allowed_set(top_k, top_p):
    _, gpt = pair()
    ids = torch.randint(0, 61, (4, 3))
    g = torch.Generator().manual_seed(1)
    out = gpt.generate(ids, 12, do_sample=True, temperature=0.7, top_k=top_k, top_p=top_p, generator=g)
    with torch.no_grad():
        logits = gpt(out).logits[:, 2:-1] / 0.7  # (B, 12, V): the logits each new token was drawn from
    allowed = filter_logits(logits.reshape(-1, 61), top_k, top_p) > float("-inf")
    chosen = out[:, 3:].reshape(-1)
    assert allowed[torch.arange(len(chosen)), chosen].all()
    if top_k is not None:
        assert (allowed.sum(-1) <= top_k).all()


def test_filter_logits_against_explicit_sets():
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.1, 0.3, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[False, True, False, True, False]]
    # nucleus 0.7: 0.5 alone is not enough, 0.5 + 0.3 is
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [[False, True, False, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.4)).tolist() == [[False, True, False, False, False]]


def test_clear_errors():
    gpt = GPT(gpt_config("tiny")).eval()
    with pytest.raises(AttnlabError, match=r"ids in \[0, 63\]"):
        gpt(torch.tensor([[1, 64]]))
    with pytest.raises(AttnlabError, match="input_ids"):
        gpt(torch.tensor([[-1, 2]]))
    with pytest.raises(AttnlabError, match="exceeds the model's limit of 32"):
        gpt(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(AttnlabError, match="context of 32 tokens"):
        gpt.generate(torch.zeros(1, 30, dtype=torch.long), 5)
    caches = gpt.make_caches(capacity=32)
    with torch.no_grad():
        gpt(torch.zeros(1, 32, dtype=torch.long), caches=caches)
        with pytest.raises(AttnlabError, match="position 32 exceeds the model's limit of 32"):
            gpt(torch.zeros(1, 1, dtype=torch.long), caches=caches)  # the one-token decoding path
    with pytest.raises(AttnlabError, match="attention_mask"):
        gpt(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 4))
    with pytest.raises(AttnlabError, match="d_model"):
        GPTConfig(d_model=30, num_heads=4)


def test_training_step_matches_hf_gradients():
    hf, gpt = pair()
    hf.train(), gpt.train()
    ids = torch.randint(0, 61, (2, 12))
    hf(ids, labels=ids).loss.backward()
    gpt(ids, labels=ids).loss.backward()
    torch.testing.assert_close(gpt.token_embedding.weight.grad, hf.transformer.wte.weight.grad, atol=ATOL, rtol=0)
    ref_fc = hf.transformer.h[1].mlp.c_fc.weight.grad.t()  # Conv1D stores (in, out)
    torch.testing.assert_close(gpt.blocks[1].ffn.linear1.weight.grad, ref_fc, atol=ATOL, rtol=0)


def test_bf16_training_path_matches_fp64_reference():
    """bf16 autocast with gradients takes the causal_bmm attention path on the CPU; logits
    and gradients stay within bf16 tolerance of the fp64 model."""
    gpt = GPT(gpt_config("tiny")).train()
    assert gpt.config.attention_dropout == 0  # the path needs no attention dropout
    reference = GPT(gpt_config("tiny")).double().train()
    reference.load_state_dict(gpt.state_dict())
    ids = torch.randint(0, 64, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = gpt(ids, labels=ids)
    out.loss.backward()
    ref = reference(ids, labels=ids)
    ref.loss.backward()
    torch.testing.assert_close(out.logits.double(), ref.logits, atol=5e-2, rtol=0)
    grad, ref_grad = gpt.blocks[0].self_attn.q_proj.weight.grad, reference.blocks[0].self_attn.q_proj.weight.grad
    assert (grad.double() - ref_grad).norm() / ref_grad.norm() < 5e-2


def test_training_forward_compiles_as_one_graph():
    """torch.compile (the GPU MFU benchmark's --compile) traces the whole training forward:
    the id and position checks, which read values, are skipped there. The eager backend
    checks the tracing only (no code generation), with fullgraph=True failing on any break."""
    torch._dynamo.reset()
    gpt = GPT(gpt_config("tiny")).train()
    ids = torch.randint(0, 64, (2, 16))
    compiled = torch.compile(gpt, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(ids, labels=ids).loss, gpt(ids, labels=ids).loss, atol=1e-6, rtol=0)


def test_tokenizer_from_hf_folder_files(tmp_path):
    """A HF GPT-2 folder's tokenizer: tokenizer.json, or vocab.json + merges.txt."""
    from attnlab.data.tokenizer import ByteLevelBPETokenizer
    from attnlab.interop.hf_gpt2 import tokenizer_from_hf_folder

    text = "def add(a, b):\n    return a + b\n" * 50
    trained = ByteLevelBPETokenizer.train([text], vocab_size=300)
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    fast.mkdir(), slow.mkdir()
    (fast / "tokenizer.json").write_text(trained.backend.to_str())
    (fast / "tokenizer_config.json").write_text('{"tokenizer_class": "GPT2Tokenizer"}')
    trained.backend.model.save(str(slow))  # vocab.json + merges.txt
    for folder in (fast, slow):
        tokenizer = tokenizer_from_hf_folder(folder)
        assert tokenizer.encode(text[:40]) == trained.encode(text[:40])
        assert tokenizer.decode(tokenizer.encode(text[:40])) == text[:40]
    with pytest.raises(AttnlabError, match="no tokenizer files"):
        tokenizer_from_hf_folder(tmp_path)


def test_raw_torch_errors_become_clear_errors():
    """What used to surface as an index error, a CUDA-style assert or a shape mismatch deep
    inside torch is one ValueError naming the argument."""
    gpt = GPT(gpt_config("tiny")).eval()
    ids = torch.randint(0, 64, (2, 5))
    with pytest.raises(AttnlabError, match=r"labels holds values in \[64, 64\]"):
        gpt(ids, labels=torch.full((2, 5), 64))
    with pytest.raises(AttnlabError, match=r"labels must be an integer tensor of shape \(2, 5\)"):
        gpt(ids, labels=ids[:1])
    with pytest.raises(AttnlabError, match="position_ids must be >= 0"):
        gpt(ids, position_ids=torch.tensor([[-1, 0, 1, 2, 3]] * 2))
    with pytest.raises(AttnlabError, match="position_ids must be an integer tensor of shape"):
        gpt(ids, position_ids=torch.arange(4))
    with pytest.raises(AttnlabError, match="empty"):
        gpt(torch.zeros(0, 5, dtype=torch.long))
    with pytest.raises(AttnlabError, match="empty"):
        gpt(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(AttnlabError, match=r"attention_mask must have shape \(B, P \+ L\)"):
        gpt(ids, torch.ones(3, 5))
    caches = gpt.make_caches()
    gpt(ids, caches=caches)
    with pytest.raises(AttnlabError, match=r"input_ids must be an integer tensor of shape \(2, 1\)"):
        gpt.decode_step(ids[:1, :1], caches)  # a batch of 1 against caches of 2
    for bad in (float("nan"), 0.0, -1.0, float("inf")):
        with pytest.raises(AttnlabError, match="temperature"):
            gpt.generate(ids, 3, do_sample=True, temperature=bad)
    with pytest.raises(AttnlabError, match="top_p"):
        gpt.generate(ids, 3, do_sample=True, top_p=float("nan"))
