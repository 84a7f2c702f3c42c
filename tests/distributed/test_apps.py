"""Every train command under torchrun (2 ranks, gloo), in one process group: the lm and
translate trainers give one process's losses (translate with --shard too), resume 1 -> 2 and 2 -> 1 on the same
sequence, and the 2-rank GPT checkpoint loads in one process and in transformers; seq2seq,
mlm, classify, vit and gat train a few steps with --dropout 0 (gat replicates its full
graph on every rank)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from cli_worker import run
from launch import HERE, computed_once, torch_env, torchrun_args

from attnlab.io import read_json

pytestmark = pytest.mark.slow  # one torchrun group running 13 commands, ~2 minutes here

REL = 1e-5
STEPS = "16"
LM = ["train", "lm", "--preset", "tiny", "--max-chars", "20000", "--batch-size", "4", "--context", "32",
      "--eval-every", "0", "--final-eval", "none"]
TRANSLATE = ["train", "translate", "--preset", "tiny", "--corpus", "tiny", "--batch-size", "8", "--eval-every", "0"]
COMMON = ["--dropout", "0", "--steps", STEPS, "--quiet", "--threads", "1"]
SMOKE = {
    "seq2seq": ["train", "seq2seq", "--preset", "tiny", "--corpus", "tiny", "--batch-size", "8", "--eval-every", "0"],
    "mlm": ["train", "mlm", "--preset", "tiny", "--max-files", "3", "--batch-size", "8", "--max-len", "32"],
    "vit": ["train", "vit", "--batch-size", "8", "--test-fraction", "0.5"],
    "gat": ["train", "gat", "--seeds", "1"],
}
SMOKE_ARGS = ["--dropout", "0", "--steps", "2", "--quiet", "--threads", "1"]


def losses(out: str | Path) -> list[float]:
    return read_json(Path(out) / "trainer_state.json")["losses"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    shared = computed_once(tmp_path_factory, "apps", run_all)
    return shared["rcs"], lambda name: str(Path(shared["root"]) / name), shared["stdout"]


def run_all(root):
    out = lambda name: str(root / name)  # noqa: E731
    rcs = {}
    for task, argv in (("lm", LM), ("tr", TRANSLATE)):  # one process, in this one
        rcs[f"{task}1"] = run([*argv, *COMMON, "--out", out(f"{task}1")])
        rcs[f"{task}1_partial"] = run([*argv, *COMMON, "--out", out(f"{task}1_partial")], stop_at=6)
        shutil.copytree(out(f"{task}1_partial"), out(f"{task}_1to2"))
    jobs = []
    for task, argv in (("lm", LM), ("tr", TRANSLATE)):
        jobs += [{"name": f"{task}2", "argv": [*argv, *COMMON, "--out", out(f"{task}2")]},
                 {"name": f"{task}2_partial", "argv": [*argv, *COMMON, "--out", out(f"{task}2_partial")], "stop_at": 6},
                 {"name": f"{task}_1to2", "argv": [*argv, *COMMON, "--out", out(f"{task}_1to2"), "--resume"]}]
    jobs.append({"name": "tr2_shard", "argv": [*TRANSLATE, *COMMON, "--shard", "--out", out("tr2_shard")]})
    jobs.append({"name": "classify_base", "argv": [*SMOKE["mlm"], *SMOKE_ARGS, "--out", out("mlm_base")]})
    jobs.append({"name": "classify", "argv": ["train", "classify", "--ckpt", out("mlm_base"), "--batch-size", "8",
                                              "--max-examples", "64", *SMOKE_ARGS, "--out", out("classify")]})
    jobs += [{"name": task, "argv": [*argv, *SMOKE_ARGS, "--out", out(task)]} for task, argv in SMOKE.items()]
    spec = root / "jobs.json"
    spec.write_text(json.dumps(jobs))
    done = subprocess.run([*torchrun_args(2), str(HERE / "cli_worker.py"), str(spec)], env=torch_env(),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rcs.update({job["name"]: int(Path(f"{spec}.{job['name']}.rc").read_text()) for job in jobs})
    for task, argv in (("lm", LM), ("tr", TRANSLATE)):
        shutil.copytree(out(f"{task}2_partial"), out(f"{task}_2to1"))
        rcs[f"{task}_2to1"] = run([*argv, *COMMON, "--out", out(f"{task}_2to1"), "--resume"])
    return {"rcs": rcs, "root": str(root), "stdout": done.stdout}


@pytest.mark.parametrize("task", ["lm", "tr"])
def test_two_ranks_equal_one_process(runs, task):
    rcs, out, _ = runs
    assert rcs[f"{task}1"] == rcs[f"{task}2"] == 0
    one, two = losses(out(f"{task}1")), losses(out(f"{task}2"))
    assert len(one) == int(STEPS) and two == pytest.approx(one, rel=REL)


@pytest.mark.parametrize("task", ["lm", "tr"])
@pytest.mark.parametrize("direction", ["1to2", "2to1"])
def test_resume_across_world_sizes(runs, task, direction):
    rcs, out, _ = runs
    partial = losses(out(f"{task}{direction[0]}_partial"))
    assert rcs[f"{task}{direction[0]}_partial"] == 143 and len(partial) == (6 if direction == "1to2" else 7)
    resumed = losses(out(f"{task}_{direction}"))
    assert rcs[f"{task}_{direction}"] == 0 and resumed[: len(partial)] == partial
    assert resumed == pytest.approx(losses(out(f"{task}1")), rel=REL)


def test_a_two_rank_gpt_checkpoint_loads_in_one_process_and_in_transformers(runs):
    _, out, _ = runs
    from transformers import GPT2LMHeadModel

    from attnlab.apps import lm

    model, tokenizer = lm.load(out("lm2"))
    ids = torch.tensor([tokenizer.encode("def f(x):\n    return x")])
    hf = GPT2LMHeadModel.from_pretrained(out("lm2")).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("task", ["seq2seq", "mlm", "classify", "vit", "gat"])
def test_every_train_command_runs_on_two_ranks(runs, task):
    rcs, out, _ = runs
    assert rcs[task] == 0
    folder = Path(out(task)) / ("seeds/0" if task == "gat" else "")
    state = read_json(folder / "trainer_state.json")
    assert state["world_size"] == 2 and state["step"] == 2 == len(state["losses"])


def test_only_rank_0_prints(runs):
    _, out, stdout = runs
    for task in ("lm2", "tr2"):  # each command's closing line, from one of the two ranks
        assert stdout.count(f"checkpoint: {out(task)}\n") == 1, stdout[-2000:]


def test_the_translator_sharded_with_fsdp2_equals_one_process(runs):
    """--shard: FSDP2 with tied embedding/output weights (written once in the shards), the
    command's test decoding after training, the full model folder at the end."""
    rcs, out, _ = runs
    assert rcs["tr2_shard"] == 0
    assert losses(out("tr2_shard")) == pytest.approx(losses(out("tr1")), rel=REL)
    assert (Path(out("tr2_shard")) / "shards").is_dir() and (Path(out("tr2_shard")) / "model.safetensors").is_file()
