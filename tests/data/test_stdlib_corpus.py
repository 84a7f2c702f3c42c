"""The stdlib corpus split, the char / byte-level BPE tokenizers and LM batches, each
checked against an independent computation (backend encodings, explicit windows, fp64 sums)."""

import math

import pytest
import torch

from attnlab.data.char_tokenizer import CharTokenizer
from attnlab.data.lm_batches import LMBatches
from attnlab.data.stdlib_corpus import (
    is_validation,
    stdlib_corpus,
    stdlib_files,
    stdlib_root,
    text_corpus,
)
from attnlab.data.tokenizer import ByteLevelBPETokenizer, Tokenizer
from attnlab.errors import AttnlabError
from attnlab.evaluation.lm import evaluate_lm
from attnlab.models import GPT
from attnlab.models.gpt import gpt_config

SAMPLE = "def fib(n):\n\tif n < 2:\n        return n  # é ünïcode → ok\n    return fib(n - 1) + fib(n - 2)\n"


@pytest.fixture(scope="module")
def corpus():
    return stdlib_corpus(max_chars=400_000)


def test_split_is_by_file_deterministic_and_disjoint():
    root = stdlib_root()
    names = [p.relative_to(root).as_posix() for p in stdlib_files(root)]
    assert len(names) > 500 and "os.py" in names and not any("site-packages" in n for n in names)
    validation = [n for n in names if is_validation(n, 0.05)]
    assert 0.02 < len(validation) / len(names) < 0.09  # a hash split of ~5%
    assert validation == [n for n in names if is_validation(n, 0.05)]  # same answer every time
    a, b = stdlib_corpus(max_chars=50_000), stdlib_corpus(max_chars=50_000)
    assert a.train == b.train and a.validation == b.validation
    assert not set(a.train_files) & set(a.validation_files)
    assert set(a.validation_files) <= set(validation)


def test_corpus_text_is_the_files(corpus):
    root = stdlib_root()
    first = (root / corpus.train_files[0]).read_text(encoding="utf-8", errors="replace")
    assert corpus.train.startswith(first) and len(corpus.train) == 400_000


def test_user_file_and_folder(tmp_path):
    text = "".join(f"line {i}\n" for i in range(200))
    (tmp_path / "one.txt").write_text(text)
    single = text_corpus(tmp_path / "one.txt", val_fraction=0.1)
    assert single.train + single.validation == text and single.validation.startswith("line ")
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        (folder / f"f{i}.txt").write_text(f"file {i}\n")
    split = text_corpus(folder, val_fraction=0.2)
    assert len(split.train_files) + len(split.validation_files) == 40 and split.validation_files
    with pytest.raises(AttnlabError, match="no such file"):
        text_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AttnlabError, match="no text files"):
        text_corpus(tmp_path / "empty")


def test_char_tokenizer_fast_path_equals_backend(tmp_path, corpus):
    tok = CharTokenizer.train([corpus.train])
    text = corpus.validation[:3000] + SAMPLE + "\U0001f600"  # an emoji the training text lacks
    ids = tok.encode(text)
    assert ids == tok.backend.encode(text).ids
    assert ids[-1] == tok.unk_id and len(ids) == len(text)
    vocab = tok.backend.get_vocab()
    assert tok.decode(tok.encode(SAMPLE)) == "".join(c for c in SAMPLE if c in vocab)  # unknowns dropped
    tok.save(tmp_path)
    again = Tokenizer.load(tmp_path)
    assert isinstance(again, CharTokenizer) and again.encode(text) == ids


def test_byte_level_bpe_round_trip(tmp_path, corpus):
    tok = ByteLevelBPETokenizer.train([corpus.train[:200_000]], vocab_size=600)
    assert tok.vocab_size == 600
    ids = tok.encode(SAMPLE + "\U0001f600")
    assert tok.decode(ids) == SAMPLE + "\U0001f600"  # bytes: nothing is unknown
    assert len(ids) < len(SAMPLE)
    tok.save(tmp_path)
    assert Tokenizer.load(tmp_path).encode(SAMPLE) == tok.encode(SAMPLE)
    again = ByteLevelBPETokenizer.train([corpus.train[:200_000]], vocab_size=600)
    assert again.backend.get_vocab() == tok.backend.get_vocab()  # deterministic ids


def test_lm_batches_are_windows_of_the_stream_and_deterministic():
    stream = torch.arange(1000)
    batches = LMBatches(stream, batch_size=4, context=16, seed=3)
    first = batches.batch(7)
    assert torch.equal(first["input_ids"], LMBatches(stream, 4, 16, seed=3).batch(7)["input_ids"])
    assert not torch.equal(first["input_ids"], batches.batch(8)["input_ids"])
    windows = first["input_ids"]
    assert windows.shape == (4, 16) and torch.equal(windows, first["labels"])
    assert torch.equal(windows - windows[:, :1], torch.arange(16).expand(4, 16))  # contiguous
    with pytest.raises(AttnlabError, match="fewer than one window"):
        LMBatches(torch.arange(10), 2, 16)


def test_evaluate_lm_against_fp64_sum():
    model = GPT(gpt_config("tiny")).eval()
    stream = torch.randint(0, 64, (5 * 16 + 3,))
    metrics = evaluate_lm(model, stream, 16, batch_size=2, chars_per_token=2.0)
    windows = stream[:80].view(5, 16)
    with torch.no_grad():
        logp = model(windows).logits[:, :-1].double().log_softmax(-1)  # (5, 15, V)
    nll = -logp.gather(-1, windows[:, 1:, None]).sum().item()
    assert metrics["val_loss"] == pytest.approx(nll / 75, rel=1e-5)
    assert metrics["bits_per_char"] == pytest.approx(nll / (math.log(2) * 150), rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(nll / 75), rel=1e-5)


def test_evaluate_lm_samples_windows_from_the_whole_stream():
    """max_windows picks windows evenly over the stream (first, last and between), not its start."""
    model = GPT(gpt_config("tiny")).eval()
    stream = torch.randint(0, 64, (9 * 16,))
    windows = stream.view(9, 16)[torch.tensor([0, 4, 8])]  # 3 of 9: the first, the middle, the last
    with torch.no_grad():
        expected = model(windows, labels=windows).loss.item()
    sampled = evaluate_lm(model, stream, 16, max_windows=3)
    assert sampled["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert evaluate_lm(model, stream, 16, max_windows=100)["val_loss"] == pytest.approx(
        evaluate_lm(model, stream, 16, max_windows=None)["val_loss"], rel=1e-6
    )


def test_sliding_window_evaluation_scores_each_token_once_with_long_context():
    """stride s: windows every s tokens; after the first, a window scores its last s predictions."""
    model = GPT(gpt_config("tiny")).eval()
    stream = torch.randint(0, 64, (5 * 16 + 3,))
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(stream) - 16 + 1, 8):  # 0, 8, ..., 64
            window = stream[start : start + 16]
            logp = model(window[None]).logits[0, :-1].double().log_softmax(-1)  # (15, V)
            nll = -logp.gather(-1, window[1:, None])[:, 0]  # (15,): position j predicts j + 1
            scored = nll if start == 0 else nll[-8:]  # new tokens only, each with >= 8 before it
            total, count = total + scored.sum().item(), count + len(scored)
    metrics = evaluate_lm(model, stream, 16, stride=8, max_windows=None, batch_size=3)
    assert count == 15 + 8 * 8  # every token of the first 80 but the very first, once
    assert metrics["val_loss"] == pytest.approx(total / count, rel=1e-5)
    assert evaluate_lm(model, stream, 16, stride=16, max_windows=None) == evaluate_lm(model, stream, 16, max_windows=None)
    with pytest.raises(AttnlabError, match="stride"):
        evaluate_lm(model, stream, 16, stride=17)
