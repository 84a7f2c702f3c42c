"""One process x 2 threads against 2 processes x 1 thread (torchrun, gloo, DDP), and one
process x 1 thread for scale: training
tokens per second of the lm and translate trainers at their default presets, through the
real command (``attnlab train TASK``), and the bytes DDP all-reduces per update against
the model's gradient size.

Every configuration is started by torchrun (``--nproc-per-node 1`` too, so both pay the
same launcher). Each rank times its updates after ``--warmup`` of them; the rate is
tokens of the global batch over rank 0's time (the command stops after training: its
final evaluation is not part of it). Scaling efficiency = rate(2 x 1) /
rate(1 x 2): on 2 cores both use the same silicon, so 1.0 means DDP's communication and
duplicated work (each rank builds the global batch) cost nothing; it cannot show a speed-up.

Run: python -m benchmarks.distributed [--steps 40] [--tasks lm translate]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "lm": ["train", "lm", "--eval-every", "0", "--final-eval", "none", "--max-chars", "400000"],
    "translate": ["train", "translate", "--eval-every", "0"],
}
CONFIGS = [(1, 2), (2, 1), (1, 1)]  # (processes, threads each); 1 x 1: what one core does alone


def worker(task: str, steps: int, threads: int, warmup: int, result: str) -> None:
    """Runs under torchrun: ``attnlab train TASK`` with the Trainer's updates timed."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    from attnlab.cli.main import main
    from attnlab.training import distributed
    from attnlab.training.trainer import Trainer

    timings: list[tuple[float, int]] = []
    allreduced = {"bytes": 0, "updates": 0}
    update, wrap = Trainer._update, distributed.wrap_ddp

    def timed_update(self, started):
        begin = time.perf_counter()
        out = update(self, started)
        timings.append((time.perf_counter() - begin, out[0]))
        self.grad_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())
        worker.trainer = self
        return out

    def counting_hook(state, bucket):
        allreduced["bytes"] += bucket.buffer().numel() * bucket.buffer().element_size()
        return default_hooks.allreduce_hook(None, bucket)

    def wrap_counting(model, device):
        ddp = wrap(model, device)
        ddp.register_comm_hook(None, counting_hook)
        return ddp

    class Trained(Exception):
        """Raised after training: the command's evaluation and decoding are not measured."""

    fit = Trainer.fit

    def fit_then_stop(self, *args, **kwargs):
        fit(self, *args, **kwargs)
        raise Trained

    Trainer._update, distributed.wrap_ddp, Trainer.fit = timed_update, wrap_counting, fit_then_stop
    out = tempfile.mkdtemp(prefix="attnlab-bench-")
    argv = [*COMMANDS[task], "--steps", str(steps), "--threads", str(threads), "--quiet", "--out", f"{out}/run"]
    try:
        code = main(argv)
    except Trained:
        code = 0
    world = distributed.current()
    if world.main:
        timed = timings[warmup:]
        seconds = sum(t for t, _ in timed)
        tokens = sum(n for _, n in timed)
        Path(result).write_text(json.dumps({
            "code": code, "tokens_per_s": tokens / seconds, "s_per_update": seconds / len(timed),
            "tokens_per_update": tokens / len(timed), "grad_bytes": worker.trainer.grad_bytes,
            "allreduced_bytes_per_update": allreduced["bytes"] / max(len(timings), 1),
        }))
    if world.distributed:
        dist.destroy_process_group()


def launch(task: str, procs: int, threads: int, steps: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}",
                   "-m", "benchmarks.distributed", "--worker", task, "--steps", str(steps),
                   "--threads", str(threads), "--warmup", str(warmup), "--result", str(result)]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration, interleaved; the best kept")
    parser.add_argument("--worker")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--result")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.threads, args.warmup, args.result)
        return
    print(f"{os.cpu_count()} cores; {args.steps} updates per run ({args.warmup} not timed), best of {args.repeats}")
    print("| task | processes x threads | tokens/s | s/update | efficiency | all-reduced / update | gradients |")
    print("|---|---|---|---|---|---|---|")
    for task in args.tasks:
        best: dict[tuple[int, int], dict] = {}
        for _ in range(args.repeats):
            for procs, threads in CONFIGS:
                run = launch(task, procs, threads, args.steps, args.warmup)
                if (procs, threads) not in best or run["tokens_per_s"] > best[procs, threads]["tokens_per_s"]:
                    best[procs, threads] = run
        base = best[CONFIGS[0]]["tokens_per_s"]
        for (procs, threads), run in best.items():
            reduced = run["allreduced_bytes_per_update"]
            print(f"| {task} | {procs} x {threads} | {run['tokens_per_s']:,.0f} | {run['s_per_update']:.4f} | "
                  f"{run['tokens_per_s'] / base:.2f} | {reduced / 1e6:.2f} MB | {run['grad_bytes'] / 1e6:.2f} MB |")


if __name__ == "__main__":
    main()
