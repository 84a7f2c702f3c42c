"""Placeholders (found, compared, kept whole) and the byte-level BPE of the gettext translator."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

import pytest

from attnlab.data.bpe import display_tokens, tokenizer_stats, train_translation_bpe
from attnlab.data.placeholders import (
    find_placeholders,
    placeholder_accuracy,
    placeholders_match,
)
from attnlab.data.tokenizer import Tokenizer

ZH = ["打开文件", "无法打开文件 %s：%s", "删除 %(count)d 个文件？", "保存文件", "文件已保存", "第 {0} 页", "打开 %1$s"] * 5
EN = ["Open file", "Cannot open file %s: %s", "Delete %(count)d files?", "Save file", "File saved", "Page {0}", "Open %1$s"] * 5


@pytest.mark.parametrize("text, expected", [
    ("Copy %s to %s", ["%s", "%s"]),
    ("100% complete, 50%% done", []),  # "% c" is not a directive; %% is a percent sign
    ("Delete %(count)d files?", ["%(count)d"]),
    ("%2$s: %1$s", ["%2$s", "%1$s"]),
    ("Page %1 of %2", ["%1", "%2"]),
    ("Open {0} as {name} at {:.2f}", ["{0}", "{name}", "{:.2f}"]),
    ("$HOME or ${PATH}", ["$HOME", "${PATH}"]),
    ("%-10s|%.*s|%lu|%zu|%lld|%'d|%m", ["%-10s", "%.*s", "%lu", "%zu", "%lld", "%'d", "%m"]),
])
def test_find_placeholders(text, expected):
    assert find_placeholders(text) == expected


def test_placeholders_match_allows_reordering_only():
    assert placeholders_match("%s to %s", "%2$s 到 %1$s")
    assert not placeholders_match("%s to %s", "%s")
    assert not placeholders_match("%d files", "%s fichiers")
    accuracy, judged = placeholder_accuracy(["Open %s", "Quit", "%d of %d"], ["打开 %s", "退出", "%d"])
    assert (accuracy, judged) == (0.5, 2)


def test_byte_bpe_keeps_placeholders_whole_and_round_trips(tmp_path: Path):
    tokenizer = train_translation_bpe(ZH, vocab_size=400)
    assert len({tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id}) == 3
    for placeholder in ("%s", "%(count)d", "{0}", "%1$s"):
        ids = tokenizer.encode(f"文件{placeholder}文件")
        assert tokenizer.token_to_id(placeholder) in ids
        assert tokenizer.tokens(placeholder) == [placeholder]
    unseen = "未见过的字符：龘 %(other)s"
    assert tokenizer.decode(tokenizer.encode(unseen)) == unseen  # bytes: nothing is unknown
    stats = tokenizer_stats(tokenizer, ZH + [unseen])
    assert stats["unk_rate"] == 0 and stats["round_trip"] == 1
    tokenizer.save(tmp_path / "tok")
    loaded = Tokenizer.load(tmp_path / "tok")
    assert loaded.encode("删除 %(count)d 个文件？") == tokenizer.encode("删除 %(count)d 个文件？")
    assert train_translation_bpe(EN, vocab_size=400, protect=False).tokens("%(count)d") != ["%(count)d"]


def test_display_tokens_are_readable_text():
    tokenizer = train_translation_bpe(ZH, vocab_size=400)
    text = "打开文件 %s 龘"
    shown = display_tokens(tokenizer, text)
    assert len(shown) == len(tokenizer.encode(text))
    assert "".join(t for t, _ in groupby(shown)) == text  # a character split into bytes: once per byte
    assert "%s" in shown and not any("Ġ" in t for t in shown)
