"""Scores and baselines of the real-language translators (attnlab.evaluation.real_language)."""

from __future__ import annotations

import math

import pytest
import sacrebleu

from attnlab.errors import AttnlabError
from attnlab.evaluation.real_language import (
    bleu_tokenizer,
    copy_source,
    nearest_neighbour,
    score_translations,
)


def test_bleu_tokenizer_per_language():
    assert [bleu_tokenizer(x) for x in ("zh_CN", "zh_TW", "ja", "fr", "de_CH", "sr@latin")] == [
        "zh", "zh", "char", "13a", "13a", "13a"]


def test_chinese_bleu_uses_the_zh_tokenizer():
    refs, hyps = ["无法打开文件", "保存更改"], ["无法打开文件夹", "保存更改"]
    scores = score_translations(["Cannot open file", "Save changes"], hyps, refs, "zh_CN")
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score)
    assert scores.bleu > sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a").score  # 13a sees one "word" each
    assert scores.exact == 50.0 and math.isnan(scores.placeholders) and scores.placeholder_sentences == 0


def test_placeholder_accuracy_and_exact_match():
    sources = ["Open %s", "Copy %s to %s", "Quit"]
    scores = score_translations(sources, ["打开 %s", "复制 %s", "退出"], ["打开 %s", "将 %s 复制到 %s", "退出"], "zh_CN")
    assert scores.placeholders == 50.0 and scores.placeholder_sentences == 2
    assert scores.exact == pytest.approx(200 / 3)
    with pytest.raises(AttnlabError):
        score_translations(sources, ["x"], ["y"], "fr")


def test_baselines():
    train_src = ["Open file", "Save file", "Print the page", "Connection refused"]
    train_tgt = ["打开文件", "保存文件", "打印页面", "连接被拒绝"]
    assert nearest_neighbour(train_src, train_tgt, ["Open files", "connection was refused", "Print page"]) == [
        "打开文件", "连接被拒绝", "打印页面"]
    assert copy_source(["Open %s"]) == ["Open %s"]
