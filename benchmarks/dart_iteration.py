"""Seconds and peak memory of each phase of one DART iteration, for 16, 32, 64 and 128 attacks.

    python benchmarks/dart_iteration.py [--attacks 16,32,64,128] [--out runs/bench_iteration]

One iteration of the ``tiny`` preset per size (32 attacks = the preset itself; the selection budget
and the benign mix scale with the size), in a fresh subprocess each (so peak memory is that
run's own). Attacks per iteration = red_steps x red_prompts_per_step x red_generations
(2 instructions x 8 attacks = 16 per GRPO step). Prints a markdown table: where the time goes,
and how each phase grows with the work. Run by hand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def child(n_attacks: int, out: str) -> None:
    """Run one iteration and write per-phase wall time and peak RSS to out/bench.json."""
    from memory import PeakSampler  # benchmarks/memory.py, beside this file

    from llmsafety.dart import DARTConfig, run_dart

    phase_peaks: dict[str, int] = {}
    sampler = PeakSampler()

    def on_phase_end(phase, result):
        phase_peaks[phase] = sampler.take()

    steps = max(1, n_attacks // 16)
    config = DARTConfig.preset("tiny", iterations=1, red_steps=steps, red_prompts_per_step=2, red_generations=8,
                               selection_budget=max(4, n_attacks // 2), benign_mix=max(4, 3 * n_attacks // 8))
    t0 = time.perf_counter()
    run_dart(config, out, progress=False, on_phase_end=on_phase_end)
    total = time.perf_counter() - t0
    sampler.stop()
    Path(out, "bench.json").write_text(json.dumps({"peak_rss": phase_peaks, "total": total}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attacks", default="16,32,64,128")
    parser.add_argument("--out", default="runs/bench_iteration")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.out)
        return

    rows = []
    for n in (int(x) for x in args.attacks.split(",")):
        out = Path(args.out) / f"n{n}"
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, __file__, "--child", str(n), "--out", str(out)], check=True)
        bench = json.loads((out / "bench.json").read_text())
        red = json.loads((out / "iter_1" / "red_log.json").read_text())["seconds"]
        tgt = json.loads((out / "iter_1" / "target_log.json").read_text())["seconds"]
        ev0 = json.loads((out / "eval_0.json").read_text())["seconds"]
        ev1 = json.loads((out / "eval_1.json").read_text())["seconds"]
        reward_time = red["target_replies"] + red["judging"] + red["novelty"]
        rows.append({
            "attacks": n,
            "red generation": red["rollouts"] - reward_time,
            "target replies": red["target_replies"],
            "judging": red["judging"],
            "novelty": red["novelty"],
            "RL update": red["total"] - red["rollouts"],
            "selection (K samples + select)": tgt["uncertainty_sampling"] + tgt["selection"],
            "safe replies": tgt["safe_replies"],
            "safety SFT": tgt["sft"],
            "evaluation (x2)": ev0 + ev1,
            "total": bench["total"],
            "peak RSS GiB (red / target / eval)": " / ".join(
                f"{bench['peak_rss'].get(p, 0) / 2**30:.1f}" for p in ("red_1", "target_1", "eval_1")),
        })
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.1f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")
    Path(args.out, "table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
