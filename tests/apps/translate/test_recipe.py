"""The small-data recipe's parts: token dropout in the batches, one joint vocabulary with
tied embeddings, and the average of the last saves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.apps.translate.averaging import LastSaves
from attnlab.apps.translate.training import TranslatorSetup, build_translator
from attnlab.data import WordTokenizer, synthetic_corpus
from attnlab.data.batching import TranslationBatches
from attnlab.errors import AttnlabError


@pytest.fixture(scope="module")
def data():
    splits = synthetic_corpus("tiny", seed=0)
    src = WordTokenizer.train(splits.train.src)
    tgt = WordTokenizer.train(splits.train.tgt)
    return splits, src, tgt


def test_token_dropout_replaces_source_tokens_at_rate_p_deterministically(data):
    splits, src, tgt = data
    plain = TranslationBatches(splits.train, src, tgt, batch_size=32, seed=3)
    dropped = TranslationBatches(splits.train, src, tgt, batch_size=32, seed=3, token_dropout=0.25, unk_id=src.unk_id)
    changed = kept = 0
    for step in range(40):
        a, b = plain.batch(step), dropped.batch(step)
        assert torch.equal(a["tgt_in"], b["tgt_in"]) and torch.equal(a["tgt_out"], b["tgt_out"])
        real = a["src_ids"] != src.pad_id
        assert torch.equal(b["src_ids"][~real], a["src_ids"][~real])  # padding is never dropped
        differs = b["src_ids"] != a["src_ids"]
        assert bool((b["src_ids"][differs] == src.unk_id).all())
        changed += int((differs | ((a["src_ids"] == src.unk_id) & real)).sum())
        kept += int(real.sum())
        assert torch.equal(b["src_ids"], dropped.batch(step)["src_ids"])  # a pure function of (seed, step)
    assert abs(changed / kept - 0.25) < 0.03  # binomial: ~8,000 tokens, sd 0.005
    first = next(dropped.in_order())[1]["src_ids"]
    assert torch.equal(first, next(plain.in_order())[1]["src_ids"])  # evaluation never drops
    with pytest.raises(AttnlabError, match="token_dropout"):
        TranslationBatches(splits.train, src, tgt, batch_size=32, token_dropout=0.1)  # no unk_id


def test_shared_vocabulary_ties_all_three_embeddings(data):
    splits = data[0]
    setup = TranslatorSetup(corpus="tiny", preset="tiny", tokenizer="byte_bpe", vocab_size=300, shared_vocab=True)
    translator = build_translator(setup, splits)
    assert translator.src_tokenizer is translator.tgt_tokenizer
    model = translator.model
    assert model.config.share_embeddings and model.config.src_vocab_size == model.config.tgt_vocab_size
    params = {id(p) for p in model.parameters()}
    separate = build_translator(TranslatorSetup(corpus="tiny", preset="tiny", tokenizer="byte_bpe", vocab_size=300),
                                splits).model
    width = model.config.d_model
    # one (V, D) matrix instead of two: the model is smaller by one source embedding
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in model.parameters()) == (
        separate.config.src_vocab_size * width)
    assert len(params) == len(list(model.parameters()))
    with pytest.raises(AttnlabError, match="shared_vocab"):
        TranslatorSetup(model="seq2seq", preset="compact", shared_vocab=True)


def test_copy_attention_reaches_the_model_from_the_command_line_and_needs_the_joint_vocabulary(data, tmp_path, capsys):
    from attnlab.apps.translate import TranslateSettings
    from attnlab.cli.main import main
    from attnlab.export.graphs import translator_graphs

    settings = TranslateSettings(data="gettext:fr", copy_attention=True, out=str(tmp_path / "x"))
    assert settings.setup().copy_attention and settings.setup().shared_vocab
    setup = TranslatorSetup(corpus="tiny", preset="tiny", tokenizer="byte_bpe", vocab_size=300, shared_vocab=True,
                            copy_attention=True)
    model = build_translator(setup, data[0]).model
    assert model.config.copy_attention and model.copy_gate is not None
    with pytest.raises(AttnlabError, match="--copy-attention"):
        TranslatorSetup(corpus="tiny", preset="tiny", copy_attention=True)  # two vocabularies
    with pytest.raises(AttnlabError, match="copy attention has no ONNX graphs"):
        translator_graphs(model)
    # per-side vocabularies asked for: one line, no traceback, nothing written
    code = main(["train", "translate", "--copy-attention", "--no-shared-vocab", "--data", "gettext:fr",
                 "--out", str(tmp_path / "y"), "--steps", "1"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "--copy-attention" in err and "Traceback" not in err
    assert not (tmp_path / "y").exists()


def test_last_saves_average_is_the_mean_of_the_last_n():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    saves = LastSaves(3)
    states = []
    for step in (10, 20, 30, 40, 40):  # the final save repeats step 40: counted once
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model[1].num_batches_tracked += 1
        saves.record(model, step)
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    assert saves.average_into(model) == [20, 30, 40]
    expected = [states[1], states[2], states[4]]
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, sum(s[name].double() for s in expected).float() / 3, rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(value, states[4][name])


def test_recipe_applies_to_gettext_transformers_and_flags_override_it():
    from attnlab.apps.translate import TranslateSettings
    from attnlab.apps.translate.app import RECIPE

    fr = TranslateSettings(data="gettext:fr").setup()
    assert fr.shared_vocab and fr.max_tokens == RECIPE["max_tokens"] and fr.batch_size is None
    zh = TranslateSettings(data="gettext:zh_CN").setup()
    assert zh.shared_vocab and zh.max_tokens == RECIPE["max_tokens"]  # UI messages keep Latin text: joint measured better
    assert TranslateSettings(data="gettext:de").lr == RECIPE["lr"] != 1e-3  # the learning rate measured on the valid split
    assert TranslateSettings(data="gettext:de", lr=5e-4).lr == 5e-4  # --lr wins
    assert TranslateSettings().lr == TranslateSettings(model="seq2seq", data="gettext:de").lr == 1e-3
    with pytest.raises(AttnlabError, match="--lr"):
        TranslateSettings(data="gettext:de", lr=0.0)
    from attnlab.cli.main import build_parser
    from attnlab.cli.options import settings

    def parsed(*flags):
        return settings(TranslateSettings, build_parser().parse_args(["train", *flags])).lr

    assert parsed("translate", "--data", "gettext:fr") == RECIPE["lr"]  # the command line gets the recipe too
    assert parsed("translate", "--data", "gettext:fr", "--lr", "4e-4") == 4e-4
    assert parsed("translate") == 1e-3 and parsed("seq2seq", "--data", "gettext:fr") == 3e-3
    plain = TranslateSettings().setup()  # the synthetic corpus keeps its setup
    assert (plain.shared_vocab, plain.max_tokens, plain.batch_size, plain.token_dropout) == (False, None, 64, 0.0)
    rnn = TranslateSettings(model="seq2seq", data="gettext:fr").setup()
    assert not rnn.shared_vocab and rnn.max_tokens is None
    mine = TranslateSettings(data="gettext:fr", shared_vocab=False, max_tokens=0, token_dropout=0.1,
                             average_last=3).setup()
    assert (mine.shared_vocab, mine.max_tokens, mine.batch_size, mine.token_dropout, mine.average_last) == (
        False, None, 64, 0.1, 3)
    assert TranslateSettings(data="gettext:fr").uses_bf16 and not TranslateSettings(data="gettext:fr", fp32=True).uses_bf16
    assert not TranslateSettings().uses_bf16 and TranslateSettings(bf16=True).uses_bf16
