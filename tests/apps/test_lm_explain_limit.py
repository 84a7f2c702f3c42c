"""``lm.attentions`` (what ``attnlab explore`` and ``viz`` show for a GPT) refuses a prompt longer
than the model's context with one line naming the limit, as the translator does, instead of
silently showing the map of its first ``context_length`` tokens."""

from __future__ import annotations

import pytest
import torch

from attnlab.apps import lm
from attnlab.data.char_tokenizer import CharTokenizer
from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPT, GPTConfig

CONTEXT = 16


@pytest.fixture(scope="module")
def loaded():
    tokenizer = CharTokenizer.train(["abcdefgh xyz"])
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=CONTEXT, num_layers=1, num_heads=2,
                          d_model=8, dropout=0.0, attention_dropout=0.0))
    return lm.LoadedLM(model, tokenizer)


def test_a_prompt_that_fills_the_context_is_explained_whole(loaded):
    explained = lm.attentions(loaded, ["abcdefgh" * 2])
    assert len(explained.labels["tokens"][0]) == CONTEXT


def test_a_longer_prompt_is_refused_naming_the_limit(loaded):
    with pytest.raises(AttnlabError, match=rf"input 2 has {CONTEXT + 1} tokens; .*at most context_length={CONTEXT}$"):
        lm.attentions(loaded, ["abc", "a" * (CONTEXT + 1)])


def test_the_built_in_example_fits_a_small_context(loaded):
    explained = lm.attentions(loaded, [])
    assert len(explained.labels["tokens"][0]) == min(CONTEXT, len(loaded.tokenizer.encode(lm.DEFAULT_PROMPT)))
