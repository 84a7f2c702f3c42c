"""The translator never returns a translation that silently lost or changed a placeholder:
a tiny model pushed to emit the wrong one is corrected by the constrained search, or its
output is repaired or refused by the verification."""

from __future__ import annotations

import pytest
import torch

from attnlab.apps import translate
from attnlab.apps.translate.translator import Translator
from attnlab.config import preset
from attnlab.data.bpe import train_translation_bpe
from attnlab.data.placeholders import find_placeholders
from attnlab.data.placeholders_repair import keeps_placeholders
from attnlab.models.transformer import TRANSFORMER_PRESETS, Transformer

TEXTS = ["Open %s", "Delete %d files", "Copy {0} to %(dest)s", "Hello $USER", "Save the file"] * 3


@pytest.fixture()
def pushed():
    """A random tiny translator whose every step strongly prefers the token ``%d``."""
    torch.manual_seed(0)
    tok = train_translation_bpe(TEXTS, 300)
    config = preset(TRANSFORMER_PRESETS, "tiny", src_vocab_size=tok.vocab_size, tgt_vocab_size=tok.vocab_size,
                    pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id, max_len=24)
    translator = Translator(Transformer(config).eval(), tok, tok)
    wrong = tok.backend.token_to_id("%d")
    step = translator.model.step

    def biased(tokens, state):
        log_probs, state = step(tokens, state)
        bias = torch.zeros_like(log_probs)
        bias[:, wrong] = 30.0
        bias[:, tok.eos_id] = 10.0
        return torch.log_softmax(log_probs + bias, dim=-1), state

    translator.model.step = biased
    return translator


@pytest.mark.parametrize("beam_size", [1, 3])
def test_pushed_model_is_corrected_or_refused_never_silently_wrong(pushed, beam_size):
    sources = ["Open %s", "Copy {0} to %(dest)s", "Hello $USER", "Delete %d files", "Save the file", "Print %i pages"]
    free = pushed.translate(sources, beam_size=beam_size, constrain=False)
    assert "%d" in free[0]  # the push works: unconstrained, "Open %s" comes out with %d
    constrained = pushed.translate(sources, beam_size=beam_size)
    for source, text in zip(sources[:5], constrained):
        assert sorted(find_placeholders(text)) == sorted(find_placeholders(source)), (source, text)
    checked = translate.translate_checked(pushed, sources, beam_size=beam_size)
    for source, text in zip(sources, checked):
        assert text is None or keeps_placeholders(source, text), (source, text)
    assert checked[5] is None  # %i is not in the vocabulary: nothing can force it, refused
    unseen = pushed.translate(["Open %.250s"], beam_size=beam_size)[0]  # not in the vocabulary: stands in as %s
    assert find_placeholders(unseen) == ["%.250s"] and keeps_placeholders("Open %.250s", unseen)
    alone = pushed.translate(["Save the file"], beam_size=beam_size)  # a batch without any placeholder
    assert find_placeholders(alone[0]) == []
