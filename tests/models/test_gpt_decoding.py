"""``GPT.decode_step``'s two paths — the C step (``attnlab.kernels.native.gpt_decode``) and
the functional PyTorch path — against each other, ``GPT.forward`` with the same caches,
the uncached forward and HF ``generate`` (fp32; logits atol 1e-5 at unit scale, cached
keys atol 1e-6); the greedy loop in C against the plain loop and HF; beams reordered by the
lineage table against copied caches."""

import copy
import pickle
import shutil
import threading

import pytest
import torch
import transformers

from attnlab.evaluation.decoding import beam_search
from attnlab.kernels.native import gpt_decode
from attnlab.models import GPT, GPTConfig
from attnlab.models.gpt_decoding import greedy

transformers.logging.set_verbosity_error()
ATOL = 1e-5

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="the C step needs a C compiler")

SHAPES = [  # one that fills 64-byte column blocks, one that cuts them anywhere, and heads of 64
    dict(vocab_size=71, context_length=48, num_layers=2, num_heads=4, d_model=64),
    dict(vocab_size=37, context_length=40, num_layers=1, num_heads=3, d_model=36, d_ff=100),
    dict(vocab_size=50, context_length=40, num_layers=1, num_heads=2, d_model=128),
]
SHAPE_IDS = ["4x64", "3x36-ff100", "2x128"]  # heads of 16, 12 (the C step's scalar attention) and 64


def model(shape: dict, sharpen: float = 1.0) -> GPT:
    gpt = GPT(GPTConfig(**shape, dropout=0.0, attention_dropout=0.0)).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            if p.dim() > 1:
                p.mul_(sharpen)
    return gpt


@torch.inference_mode()
def decode(gpt: GPT, prompt: torch.Tensor, tokens: torch.Tensor, capacity: int):
    """Prefill ``prompt (1, L)``, then feed ``tokens`` one by one: logits, hidden, caches, choice."""
    caches = gpt.make_caches(capacity=capacity)
    gpt(prompt, caches=caches)
    steps = [gpt.decode_step(t.view(1, 1), caches) for t in tokens]
    logits = torch.cat([s.logits for s in steps], dim=1)  # (1, N, V)
    hidden = torch.cat([s.last_hidden_state for s in steps], dim=1)  # (1, N, D)
    return logits, hidden, caches, caches.choice


@pytest.fixture(params=[1, 2])
def threads(request):
    """Torch's CPU threads for one test (1 and 2: the C step splits rows and columns over them)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(previous)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_native_step_equals_pytorch_path_and_uncached_forward(shape, threads, monkeypatch):
    gpt = model(shape)
    ids = torch.randint(0, shape["vocab_size"], (1, 30))
    prompt, tokens = ids[:, :5], ids[0, 5:]
    logits, hidden, caches, choice = decode(gpt, prompt, tokens, capacity=4)  # the cache grows, too
    assert choice.native is not None  # the C step ran
    monkeypatch.setenv("ATTNLAB_NATIVE", "0")
    ref_logits, ref_hidden, ref_caches, ref_choice = decode(gpt, prompt, tokens, capacity=4)
    assert ref_choice.native is None
    torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(hidden, ref_hidden, atol=ATOL, rtol=0)
    for cache, ref in zip(caches, ref_caches):
        torch.testing.assert_close(cache.key, ref.key, atol=1e-6, rtol=0)
        torch.testing.assert_close(cache.value, ref.value, atol=1e-6, rtol=0)
    with torch.no_grad():
        full = gpt(ids).logits[:, 5:]  # the uncached logits at the fed tokens' positions
    torch.testing.assert_close(logits, full, atol=ATOL, rtol=0)


@pytest.mark.parametrize("batch", [1, 3])
def test_greedy_equals_hf_generate(batch):
    config = transformers.GPT2Config(
        vocab_size=61, n_positions=64, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() > 1:
                p.mul_(4.0)  # no near-ties between the top two logits
    gpt = GPT.from_hf(hf).eval()
    ids = torch.randint(1, 61, (batch, 6))
    ref = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False, pad_token_id=0,
                      eos_token_id=None)
    assert torch.equal(gpt.generate(ids, 40), ref)


def test_new_weights_are_used_by_the_next_sequence(monkeypatch):
    gpt = model(SHAPES[0], sharpen=4.0)
    prompt = torch.randint(0, 71, (1, 4))
    before = gpt.generate(prompt, 20)
    with torch.no_grad():
        gpt.blocks[0].ffn.linear1.weight.mul_(-1.0)  # in place: same address, new version
        gpt.final_norm.bias.add_(0.5)
    after = gpt.generate(prompt, 20)
    monkeypatch.setenv("ATTNLAB_NATIVE", "0")
    assert torch.equal(after, gpt.generate(prompt, 20))
    assert not torch.equal(after, before)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_batched_native_step_equals_pytorch_path_and_uncached_forward(shape, threads, monkeypatch):
    """B rows at one position (a batch; beams reordered between steps): 9 rows are a tile of
    8 and one of 1 (two panels at a time, then up to eight); 3x36-ff100 cuts the panels."""
    gpt = model(shape)
    ids = torch.randint(0, shape["vocab_size"], (9, 14))
    reorder = torch.tensor([2, 2, 0, 8, 1, 3, 3, 7, 5])  # beam search keeps some rows twice
    runs = []
    for native in ("1", "0"):
        monkeypatch.setenv("ATTNLAB_NATIVE", native)
        caches = gpt.make_caches(4)
        with torch.inference_mode():
            gpt(ids[:, :5], caches=caches)
            steps = [gpt.decode_step(ids[:, t : t + 1], caches).logits for t in range(5, 9)]
            assert (caches.choice.native is not None) == (native == "1")
            for cache in caches:
                cache.reorder(reorder)
            steps += [gpt.decode_step(ids[:, t : t + 1], caches).logits for t in range(9, 14)]
        runs.append((torch.cat(steps, dim=1), caches))
    (logits, caches), (ref_logits, ref_caches) = runs
    torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=0)
    for cache, ref in zip(caches, ref_caches):
        torch.testing.assert_close(cache.key, ref.key, atol=1e-6, rtol=0)
        torch.testing.assert_close(cache.value, ref.value, atol=1e-6, rtol=0)
    with torch.no_grad():  # uncached: the reordered rows' histories, then their own tokens
        history = torch.cat([ids[reorder, :9], ids[:, 9:]], dim=1)
        full = torch.cat([gpt(ids[:, :9]).logits[:, 5:], gpt(history).logits[:, 9:]], dim=1)
    torch.testing.assert_close(logits, full, atol=ATOL, rtol=0)


def test_padded_bf16_and_autocast_use_the_pytorch_path(monkeypatch):
    gpt = model(SHAPES[0])
    ids = torch.randint(0, 71, (2, 5))
    *_, choice = decode(gpt, ids[:1], ids[1], capacity=8)
    assert choice.native is not None
    called = []
    with torch.inference_mode():
        caches = gpt.make_caches(8)
        gpt(ids, caches=caches)
        gpt.decode_step(ids[:, :1], caches)
        native = caches.choice.native
        assert native is not None  # an unpadded batch of 2: the C step
        monkeypatch.setattr(native, "run", lambda *a, run=native.run: called.append(1) or run(*a))
        gpt.decode_step(ids[:, 1:2], caches, attention_mask=torch.ones(2, 7, dtype=torch.long))  # a mask: PyTorch
        assert called == []
        gpt.decode_step(ids[:, 2:3], caches)
        assert called == [1]
    bf16 = copy.deepcopy(gpt).to(torch.bfloat16)
    *_, choice = decode(bf16, ids[:1], ids[1], capacity=8)
    assert choice.native is None


def test_decoded_model_can_be_copied_and_pickled():
    gpt = model(SHAPES[0])
    prompt = torch.randint(0, 71, (1, 4))
    out = gpt.generate(prompt, 10)
    for clone in (copy.deepcopy(gpt), pickle.loads(pickle.dumps(gpt))):
        assert torch.equal(clone.generate(prompt, 10), out)


def test_available_follows_the_switch(monkeypatch):
    assert gpt_decode.available()
    monkeypatch.setenv("ATTNLAB_NATIVE", "0")
    assert not gpt_decode.available()


def test_concurrent_generation_from_threads_equals_sequential():
    gpt = model(SHAPES[0], sharpen=4.0)
    prompts = [torch.randint(0, 71, (1, 4)) for _ in range(6)]
    expected = [gpt.generate(p, 40) for p in prompts]
    results = [None] * len(prompts)

    def work(i):  # ctypes releases the GIL during the C step: the calls overlap
        results[i] = gpt.generate(prompts[i], 40)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(r, e) for r, e in zip(results, expected))


def test_a_non_contiguous_weight_takes_the_pytorch_path(monkeypatch):
    gpt = model(SHAPES[0])
    with torch.no_grad():
        gpt.token_embedding.weight = torch.nn.Parameter(gpt.token_embedding.weight.t().contiguous().t())
    ids = torch.randint(0, 71, (1, 6))
    *_, choice = decode(gpt, ids[:, :3], ids[0, 3:], capacity=8)
    assert choice.native is None
    out = gpt.generate(ids, 10)
    monkeypatch.setenv("ATTNLAB_NATIVE", "0")
    assert torch.equal(out, gpt.generate(ids, 10))


@pytest.mark.parametrize("native", ["1", "0"])
def test_decode_step_equals_forward_with_the_same_caches(native, monkeypatch):
    """decode_step is forward made fast: the same logits and caches, padded batches too."""
    monkeypatch.setenv("ATTNLAB_NATIVE", native)
    gpt = model(SHAPES[0])
    for batch, padded in ((1, False), (3, True)):
        ids = torch.randint(0, 71, (batch, 12))
        mask = torch.ones_like(ids)
        if padded:
            mask[1, :3] = 0  # left padding
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        fast, slow = gpt.make_caches(4), gpt.make_caches(4)
        with torch.inference_mode():
            for caches in (fast, slow):
                gpt(ids[:, :5], mask[:, :5], position_ids=positions[:, :5] if padded else None, caches=caches)
            for t in range(5, 12):
                kwargs = dict(attention_mask=mask[:, : t + 1], position_ids=positions[:, t : t + 1]) if padded else {}
                a = gpt.decode_step(ids[:, t : t + 1], fast, **kwargs)
                b = gpt(ids[:, t : t + 1], kwargs.get("attention_mask"), position_ids=kwargs.get("position_ids"), caches=slow)
                torch.testing.assert_close(a.logits, b.logits, atol=ATOL, rtol=0)
        for c, d in zip(fast, slow):
            torch.testing.assert_close(c.key, d.key, atol=1e-6, rtol=0)


def test_decode_step_needs_a_filled_cache_and_one_token():
    gpt = model(SHAPES[0])
    with pytest.raises(ValueError, match="filled by"):
        gpt.decode_step(torch.tensor([[1]]), gpt.make_caches())
    caches = gpt.make_caches()
    gpt(torch.tensor([[1, 2]]), caches=caches)
    with pytest.raises(ValueError, match="input_ids"):
        gpt.decode_step(torch.tensor([[1, 2]]), caches)


def test_forward_has_no_hidden_decoding_path(monkeypatch):
    """forward with caches and one token in inference runs the blocks, never the decoding step."""
    gpt = model(SHAPES[0])
    called = []
    monkeypatch.setattr("attnlab.models.gpt.decode_blocks", lambda *a, **k: called.append(1))
    caches = gpt.make_caches()
    with torch.inference_mode():
        gpt(torch.tensor([[1, 2, 3]]), caches=caches)
        gpt(torch.tensor([[4]]), caches=caches)
    assert not called and caches.choice is None


@pytest.mark.parametrize("batch", [1, 3])
def test_greedy_loop_in_c_equals_the_plain_loop(batch, threads, monkeypatch):
    """GPT.generate's C loop (argmax, end token, padding in C) against the PyTorch step loop:
    the same tokens, with and without an end token (a row that ends gets the pad id; the
    loop stops when every row has ended)."""
    gpt = model(SHAPES[0], sharpen=4.0)
    ids = torch.randint(1, 71, (batch, 5))
    assert greedy(gpt, ids, 30) is not None  # the C loop applies
    fast = gpt.generate(ids, 30)
    eos = int(fast[0, 5 + 4])  # row 0 ends at its fifth new token (or before)
    fast_eos = gpt.generate(ids, 30, eos_token_id=eos, pad_token_id=3)
    monkeypatch.setenv("ATTNLAB_NATIVE", "0")
    assert greedy(gpt, ids, 30) is None
    assert torch.equal(fast, gpt.generate(ids, 30))
    assert torch.equal(fast_eos, gpt.generate(ids, 30, eos_token_id=eos, pad_token_id=3))
    assert (fast_eos[0, 5:] == eos).any() and fast_eos.shape[1] <= 35
    if batch == 1:
        assert fast_eos.shape[1] < 35 and fast_eos[0, -1] == eos


def test_beam_reorder_by_lineage_equals_copying_the_caches(threads, monkeypatch):
    """DecodingCaches.reorder on the C step rewrites a table of rows, not the caches: the
    logits of the steps after it equal the PyTorch path's with copied caches and the uncached
    forward of the reordered histories; reading a cache afterwards sees the copied rows."""
    gpt = model(SHAPES[0])
    ids = torch.randint(0, 71, (4, 16))
    orders = [torch.tensor([1, 1, 0, 3]), torch.tensor([2, 0, 0, 2]), torch.tensor([3, 2, 1, 0])]
    runs = []
    for native in ("1", "0"):
        monkeypatch.setenv("ATTNLAB_NATIVE", native)
        caches = gpt.make_caches(6)  # grows past 6 while a reorder is pending
        history = ids[:, :5]
        with torch.inference_mode():
            gpt(history, caches=caches)
            steps = []
            for t in range(5, 16):
                steps.append(gpt.decode_step(ids[:, t : t + 1], caches).logits)
                history = torch.cat([history, ids[:, t : t + 1]], dim=1)
                if t in (6, 9, 12):
                    order = orders[(t - 6) // 3]
                    caches.reorder(order)
                    history = history[order]
                    assert (caches.lineage is not None) == (native == "1")
        runs.append((torch.cat(steps, dim=1), caches, history))
    (logits, caches, history), (ref_logits, ref_caches, _) = runs
    torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=0)
    for cache, ref in zip(caches, ref_caches):  # iterating settles the lineage
        torch.testing.assert_close(cache.key, ref.key, atol=1e-6, rtol=0)
        torch.testing.assert_close(cache.value, ref.value, atol=1e-6, rtol=0)
    assert caches.lineage is None
    with torch.no_grad():  # the last step's logits: the uncached forward of each row's history
        full = gpt(history).logits[:, -1]
    torch.testing.assert_close(logits[:, -1], full, atol=ATOL, rtol=0)


def test_beam_search_on_the_c_step_equals_the_pytorch_path(monkeypatch):
    gpt = model(SHAPES[0], sharpen=2.0)
    prompt = torch.randint(1, 71, (1, 6))

    class Steps:
        def start(self, src):
            caches = gpt.make_caches(40)
            gpt(src[:, :-1], caches=caches)
            return caches

        def step(self, tokens, caches):
            return gpt.decode_step(tokens[:, None], caches).logits[:, 0].log_softmax(-1), caches

        def reorder(self, caches, index):
            caches.reorder(index)
            return caches

    runs = []
    for native in ("1", "0"):
        monkeypatch.setenv("ATTNLAB_NATIVE", native)
        runs.append(beam_search(Steps(), prompt, bos_id=int(prompt[0, -1]), eos_id=0, max_len=25, beam_size=4))
    assert runs[0].tokens == runs[1].tokens
    torch.testing.assert_close(runs[0].scores, runs[1].scores, atol=1e-4, rtol=0)
