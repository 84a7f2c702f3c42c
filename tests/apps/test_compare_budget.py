"""``attnlab compare``: what each variant is told about its run (no ``--resume`` hint)."""

from __future__ import annotations

from attnlab.apps import compare


def test_each_variant_trains_as_a_run_that_compare_cannot_resume(monkeypatch, tmp_path):
    """compare has no --resume, so its variants' interrupt and budget lines must not offer one."""
    seen = {}
    monkeypatch.setattr(compare, "train_translator", lambda setup, config, fit_budget: seen.setdefault(setup.model, config))
    settings = compare.CompareSettings(variants=["bahdanau", "transformer"], out=str(tmp_path), max_minutes=2)
    for name in settings.variants:
        compare.train_variant(name, settings)
    assert set(seen) == {"seq2seq", "transformer"}
    assert [config.resumable for config in seen.values()] == [False, False]
