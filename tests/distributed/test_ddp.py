"""DDP and FSDP2 on gloo: N ranks x B/N rows give the losses and weights of 1 process x B, a run
resumes across world sizes (1 -> 2, 2 -> 1, 2 -> 3) on the same global sequence, a rank-0
save failure stops every rank with the same line, per-rank RNG resumes exactly.

The toy task has padded sequences of random lengths: a rank's share of the loss is its
share of the tokens, so equality needs the global-mean weighting, not a mean of means.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
import torch
import toy
from launch import computed_once, run_jobs

from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.training.checkpoint import STATE_FILE
from attnlab.training.sharded import consolidate

pytestmark = pytest.mark.slow  # two torchrun groups (2 and 3 ranks) running 10 jobs, ~50 s here

REL = 1e-5  # fp32 reduction-order noise, per step


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    shared = computed_once(tmp_path_factory, "ddp", run_all)
    return shared["results"], shared["out"]


def summary(result) -> dict:
    return {"losses": result.losses, "metrics": result.metrics, "step": result.step}


def run_all(root):
    out = {name: str(root / name) for name in
           ["one", "one_partial", "two", "one_to_two", "two_partial", "two_to_one", "two_to_three",
            "drop", "drop_partial", "fail", "logs", "fsdp", "fsdp_partial", "fsdp_two_to_three", "one_row", "two_one_row"]}
    previous = signal.getsignal(signal.SIGTERM)
    results = {"one": summary(toy.train(out["one"]))}
    results["one_partial"] = summary(toy.train(out["one_partial"], signal_at=9))
    results["one_row"] = summary(toy.train(out["one_row"], batch_size=1, steps=6))
    signal.signal(signal.SIGTERM, previous)
    shutil.copytree(out["one_partial"], out["one_to_two"])
    results.update(run_jobs(2, [
        {"name": "two", "out": out["two"]},
        {"name": "one_to_two", "out": out["one_to_two"], "resume": True},
        {"name": "two_partial", "out": out["two_partial"], "signal_at": 9},
        {"name": "drop", "out": out["drop"], "dropout": 0.3},
        {"name": "drop_partial", "out": out["drop_partial"], "dropout": 0.3, "signal_at": 4},
        {"name": "drop_resumed", "out": out["drop_partial"], "dropout": 0.3, "resume": True},
        {"name": "fail", "out": out["fail"], "steps": 3, "fail_save": True},
        {"name": "logs", "out": out["logs"], "steps": 4, "progress": True, "rank_logs": True, "log_every": 1},
        {"name": "fsdp", "out": out["fsdp"], "shard": True},
        {"name": "two_one_row", "out": out["two_one_row"], "batch_size": 1, "steps": 6},
        {"name": "fsdp_partial", "out": out["fsdp_partial"], "shard": True, "signal_at": 9},
    ], root))
    shutil.copytree(out["two_partial"], out["two_to_three"])
    shutil.copytree(out["fsdp_partial"], out["fsdp_two_to_three"])
    results.update(run_jobs(3, [
        {"name": "two_to_three", "out": out["two_to_three"], "resume": True},
        {"name": "fsdp_two_to_three", "out": out["fsdp_two_to_three"], "resume": True, "shard": True},
    ], root))
    shutil.copytree(out["two_partial"], out["two_to_one"])
    results["two_to_one"] = summary(toy.train(out["two_to_one"], resume=True))
    return {"results": results, "out": out}


def losses(result) -> list[float]:
    return result["losses"]


def test_two_ranks_equal_one_process(runs):
    results, out = runs
    one, two = losses(results["one"]), losses(results["two"])
    assert len(one) == len(two) == 24 and one[-1] < one[0] / 2  # it learns
    assert two == pytest.approx(one, rel=REL)
    reference = toy.weights(out["one"])
    for name, tensor in toy.weights(out["two"]).items():
        torch.testing.assert_close(tensor, reference[name], rtol=REL, atol=REL * reference[name].abs().max().item())


def test_trainer_state_holds_the_global_mean_loss(runs):
    results, out = runs
    state = read_json(out["two"] + "/" + STATE_FILE)
    assert state["losses"] == losses(results["two"]) and state["world_size"] == 2
    assert len(state["rng_ranks"]) == 1  # rank 1's generators are saved too


@pytest.mark.parametrize("name", ["one_to_two", "two_to_one", "two_to_three"])
def test_resume_across_world_sizes_continues_the_same_run(runs, name):
    results, _ = runs
    partial = losses(results["one_partial" if name == "one_to_two" else "two_partial"])
    assert len(partial) in (9, 10)  # SIGTERM while batch 9 is built: one process stops at once, ranks after it
    resumed = losses(results[name])
    assert resumed[: len(partial)] == partial
    assert resumed == pytest.approx(losses(results["one"]), rel=REL)


def test_sigterm_on_one_rank_stops_every_rank_after_the_same_update(runs):
    results, _ = runs
    ranks = results["two_partial"]["ranks"]
    assert [r["step"] for r in ranks] == [10, 10] and [r["exit_code"] for r in ranks] == [143, 143]


def test_dropout_resumes_exactly_with_each_ranks_generators(runs):
    results, _ = runs
    straight, resumed = losses(results["drop"]), losses(results["drop_resumed"])
    assert losses(results["drop_partial"]) == straight[:5]
    assert resumed == straight  # same world size: bit for bit


def test_a_failing_save_on_rank_0_stops_every_rank_with_one_line(runs):
    results, out = runs
    errors = [r["error"] for r in results["fail"]["ranks"]]
    assert errors[0] == errors[1] and "No space left on device" in errors[0] and "\n" not in errors[0]
    assert out["fail"] in errors[0]
    parent = Path(out["fail"]).parent
    assert not any(p.name.startswith(".fail") for p in parent.iterdir())  # nothing half-written


def test_rank_logs(runs):
    _, out = runs
    for rank in (0, 1):
        text = (Path(out["logs"]) / "logs" / f"rank{rank}.log").read_text()
        assert "step 4/4" in text and "done: checkpoint at step 4" in text


# --- FSDP2 (shard=True) with DCP checkpoints in safetensors ---------------------------
def test_fsdp_equals_one_process_and_ends_with_a_model_folder(runs):
    results, out = runs
    assert losses(results["fsdp"]) == pytest.approx(losses(results["one"]), rel=REL)
    reference = toy.weights(out["one"])
    for name, tensor in toy.weights(out["fsdp"]).items():  # the full model, written at the end
        torch.testing.assert_close(tensor, reference[name], rtol=REL, atol=REL * reference[name].abs().max().item())


def test_evaluation_sees_the_whole_model_on_every_rank(runs):
    results, _ = runs
    one = results["one"]["metrics"]
    for run in ("two", "fsdp"):
        for rank in results[run]["ranks"]:
            assert rank["metrics"] == pytest.approx(one, rel=1e-4), run


def test_fsdp_resumes_on_another_number_of_ranks(runs):
    results, _ = runs
    partial = losses(results["fsdp_partial"])
    resumed = losses(results["fsdp_two_to_three"])
    assert len(partial) == 10 and resumed[:10] == partial
    assert resumed == pytest.approx(losses(results["one"]), rel=REL)


def test_a_sharded_checkpoint_consolidates_in_one_process(runs):
    _, out = runs
    for run in ("fsdp_partial", "fsdp_two_to_three"):
        full = consolidate(out[run])
        saved = toy.weights(out[run])
        assert full.keys() == saved.keys() and all(torch.equal(full[k], saved[k]) for k in full)
    model = toy.Tagger()
    model.load_state_dict(consolidate(out["fsdp_partial"]))


def test_a_sharded_run_resumes_only_sharded(runs, tmp_path):
    _, out = runs
    shutil.copytree(out["fsdp_partial"], tmp_path / "copy")
    with pytest.raises(AttnlabError, match="holds a sharded .--shard. run"):
        toy.train(str(tmp_path / "copy"), resume=True)


def test_a_batch_of_one_row_on_two_ranks(runs):
    """Rank 1 has no row: it computes on a copy with zero weight; the run equals one process."""
    results, _ = runs
    assert losses(results["two_one_row"]) == pytest.approx(losses(results["one_row"]), rel=REL)
