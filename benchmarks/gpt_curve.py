"""Draw the learning curve of ``attnlab train lm`` runs: validation bits per character
against training minutes, from each run folder's ``trainer_state.json``.

Minutes are estimated as step * (elapsed_s / steps) — the run's average step time,
evaluation included. A run's ``final_eval.json`` (all of the validation text, consecutive
and sliding windows) adds two markers at its end.

Run: python -m benchmarks.gpt_curve RUN_DIR [RUN_DIR ...] --out docs/images/gpt_learning_curve.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attnlab.apps.lm import FINAL_EVAL_FILE  # noqa: E402
from attnlab.io import atomic_write, read_json  # noqa: E402

TARGET_BPC = 1.6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders of attnlab train lm")
    parser.add_argument("--out", default="docs/images/gpt_learning_curve.png")
    parser.add_argument("--title", default="char-small GPT (4 x 128) on the Python standard library (held-out files)")
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(11, 4.6))
    for run in args.runs:
        state = read_json(Path(run) / "trainer_state.json")
        per_step = state["elapsed_s"] / 60 / max(state["step"], 1)
        history = state["eval_history"]
        minutes = [h["step"] * per_step for h in history]
        line, = ax.plot(minutes, [h["bits_per_char"] for h in history], marker="o",
                        label=f"{Path(run).name}: 64 spread windows ({state['step']} updates)")
        final_file = Path(run) / FINAL_EVAL_FILE
        if final_file.is_file():  # all of the validation text, after training
            final, end = read_json(final_file), state["step"] * per_step
            ax.plot([end], [final["bits_per_char"]], marker="s", color=line.get_color(), linestyle="none",
                    label=f"all, consecutive windows: {final['bits_per_char']:.3f}")
            ax.plot([end], [final["sliding_bits_per_char"]], marker="^", color=line.get_color(), linestyle="none",
                    label=f"all, sliding windows: {final['sliding_bits_per_char']:.3f}")
    ax.axhline(TARGET_BPC, color="gray", linestyle="--", label=f"goal {TARGET_BPC} bits/char")
    ax.set_xlabel("training minutes (this machine)")
    ax.set_ylabel("validation bits per character")
    ax.set_title(args.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")  # beside the curves
    fig.tight_layout()
    atomic_write(args.out, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
