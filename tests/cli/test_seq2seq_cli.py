"""Smoke tests of `attnlab train seq2seq` and `attnlab compare` on tiny settings, resume,
and the bad-input contract (one line on stderr, exit code 2, no traceback)."""

from __future__ import annotations

import json

import pytest

from attnlab.apps.compare import CompareSettings, VariantResult, bleu_by_length, format_table
from attnlab.apps.translate import Translator
from attnlab.cli.main import main
from attnlab.data.corpus import ParallelCorpus
from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import bleu
from attnlab.io import read_json

TINY = ["--corpus", "tiny", "--preset", "tiny", "--quiet"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("seq2seq") / "model"
    assert main(["train", "seq2seq", *TINY, "--attention", "location", "--steps", "6", "--out", str(out)]) == 0
    return out


def test_train_writes_a_checkpoint_that_translates(ckpt, capsys):
    for name in ("config.json", "model.safetensors", "translator.json", "src_tokenizer/tokenizer.json"):
        assert (ckpt / name).is_file(), name
    assert read_json(ckpt / "config.json")["attention"] == "location"
    translator = Translator.load(ckpt)
    assert len(translator.translate(["the cat sees a dog .", "a dog sleeps ."])) == 2


def test_translate_and_viz_read_rnn_checkpoints(ckpt, tmp_path, capsys):
    assert main(["translate", "--ckpt", str(ckpt), "the cat sees a dog ."]) == 0
    assert capsys.readouterr().out.strip()
    out = tmp_path / "viz.png"
    assert main(["viz", "--ckpt", str(ckpt), "the cat sees a dog .", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_the_run(ckpt):
    assert main(["train", "seq2seq", *TINY, "--attention", "location", "--steps", "8", "--out", str(ckpt),
                 "--resume"]) == 0
    assert read_json(ckpt / "trainer_state.json")["step"] == 8


def test_none_baseline_and_lstm_bahdanau_style(tmp_path, capsys):
    assert main(["train", "seq2seq", *TINY, "--attention", "none", "--steps", "3", "--out", str(tmp_path / "a")]) == 0
    assert "AER n/a" in capsys.readouterr().out
    assert main(["train", "seq2seq", *TINY, "--attention", "monotonic", "--style", "bahdanau", "--cell", "lstm",
                 "--steps", "3", "--out", str(tmp_path / "b")]) == 0
    assert main(["train", "seq2seq", *TINY, "--no-input-feeding", "--steps", "3", "--out", str(tmp_path / "c")]) == 0
    assert read_json(tmp_path / "c" / "config.json")["input_feeding"] is False


def test_bad_input_is_one_line(tmp_path, capsys):
    code = main(["train", "seq2seq", *TINY, "--data", str(tmp_path / "missing.tsv"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and "missing.tsv" in err
    code = main(["train", "seq2seq", *TINY, "--resume", "--out", str(tmp_path / "nothing")])
    assert code == 2 and "resume" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: an unknown attention is a usage error (exit 2)
        main(["train", "seq2seq", "--attention", "global"])


def test_compare_runs_variants_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--variants", "bahdanau", "none", "--corpus", "tiny", "--steps", "4",
                 "--test-sentences", "20", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| bahdanau |" in printed and "| none |" in printed
    results = json.loads((out / "results.json").read_text())["results"]
    assert [r["name"] for r in results] == ["bahdanau", "none"]
    assert results[1]["aer"] is None and 0 <= results[0]["aer"] <= 1
    assert results[0]["heatmap"] is not None and results[1]["heatmap"] is None
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") == 2  # the bar chart and the heatmaps


def test_bleu_by_length_matches_bleu_of_each_bucket():
    test = ParallelCorpus(["a b", "a b c d e f g h i j k", "a"], ["x y", "x y z w v u", "x"])
    hyps = ["x y", "x y z w q u", "q"]
    scores = bleu_by_length(test, hyps)
    assert scores["1-9"] == pytest.approx(bleu(["x y", "q"], ["x y", "x"]))
    assert scores["10-14"] == pytest.approx(bleu(["x y z w q u"], ["x y z w v u"]))
    assert scores["20+"] != scores["20+"]  # empty bucket: NaN, shown as n/a
    row = VariantResult("x", 1.0, 2.0, None, 10, 1, 1.0, 5.0, 3.0, 100.0, scores)
    assert "n/a" in format_table([row])


def test_settings_are_checked():
    with pytest.raises(AttnlabError, match="variants"):
        CompareSettings(variants=["bahdanau", "self"])
    with pytest.raises(AttnlabError, match="--max-minutes"):
        CompareSettings(max_minutes=0)
    with pytest.raises(AttnlabError, match="--threads"):
        CompareSettings(threads=-1)


def test_guided_alignment_on_user_files_and_the_error_without_alignments(tmp_path, capsys):
    from attnlab.data.synthetic import synthetic_corpus

    corpus = synthetic_corpus("tiny", num_train=60, num_valid=1, num_test=1).train
    corpus.save(tmp_path / "pairs.tsv", tmp_path / "pairs.align")
    data = ["--data", str(tmp_path / "pairs.tsv"), "--preset", "tiny", "--quiet", "--steps", "3"]
    out = tmp_path / "guided"
    assert main(["train", "seq2seq", *data, "--align", str(tmp_path / "pairs.align"), "--guided-alignment", "0.5",
                 "--out", str(out)]) == 0
    assert read_json(out / "config.json")["alignment_weight"] == 0.5
    assert read_json(out / "translator.json")["align_data"] == str(tmp_path / "pairs.align")
    assert "AER" in capsys.readouterr().out
    code = main(["train", "seq2seq", *data, "--guided-alignment", "1", "--out", str(tmp_path / "bare")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no gold word alignments" in err
    assert not (tmp_path / "bare" / "config.json").exists()


def test_guided_variant_is_opt_in_and_trains_on_the_gold_alignments(monkeypatch, tmp_path):
    import attnlab.apps.compare as compare_module

    assert "bahdanau-guided" not in CompareSettings().variants
    seen = {}
    monkeypatch.setattr(compare_module, "train_translator",
                        lambda setup, config, fit_budget, splits: seen.setdefault("setup", setup))
    settings = CompareSettings(variants=["bahdanau-guided"], out=str(tmp_path))
    compare_module.train_variant("bahdanau-guided", settings)
    assert seen["setup"].attention == "bahdanau" and seen["setup"].guided_alignment > 0
