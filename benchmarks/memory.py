"""Memory of DART runs: peak RSS per phase, and RSS after each of several runs in one process.

    python benchmarks/memory.py [--runs 5] [--quick] [--set red_micro_batch=4] [--stop-after red_1]
                                [--out runs/bench_memory] [--json]

Runs the ``tiny`` preset (``--quick``: the sizes of lesson 05's quick mode, for a leak check in
minutes) ``--runs`` times in this one Python process, each from scratch into its own folder, as a
notebook that runs dart, then mart, then a second try would. A thread samples this process's
resident memory every 50 ms; after each phase the peak since the last phase is recorded, and
after each run the RSS once memory has been given back. Prints a table (or ``--json``: one
object). What a student's laptop needs is the peak; what a long notebook session needs is that the
RSS after run 5 stays near the RSS after run 1. Run by hand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

#: Lesson 05's quick sizes: every phase runs, on a handful of prompts.
QUICK_SIZES = dict(iterations=2, eval_each_iteration=False, red_steps=1, red_prompts_per_step=2,
                   red_generations=4, red_max_new_tokens=24, selection_budget=4, uncertainty_samples=2,
                   benign_mix=2, target_max_new_tokens=24, target_epochs=2, eval_hh_prompts=8,
                   eval_seed_prompts=8, eval_benign_prompts=4, eval_hh_benign_prompts=4,
                   eval_max_new_tokens=32)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class PeakSampler:
    """Peak RSS since the last :meth:`take`, sampled by a daemon thread."""

    def __init__(self, every_s: float = 0.05):
        self.peak, self._stop = rss_bytes(), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(every_s)

    def take(self) -> int:
        peak, self.peak = max(self.peak, rss_bytes()), rss_bytes()
        return peak

    def stop(self) -> None:
        self._stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="lesson 05's quick sizes instead of the tiny preset")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a DARTConfig field (JSON value), e.g. red_micro_batch=4; repeatable")
    parser.add_argument("--stop-after", default=None, metavar="PHASE",
                        help="end each run after this phase (e.g. red_1): the peak of the phases before it")
    parser.add_argument("--out", default="runs/bench_memory")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()

    from llmsafety.dart import DARTConfig, run_dart

    gib = 2**30
    # With --json, progress goes to stderr, so a run stopped half-way still shows what it measured.
    say = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.json else print
    start_rss = rss_bytes()
    sampler = PeakSampler()
    overrides = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: write FIELD=VALUE, e.g. red_micro_batch=4")
        try:
            overrides[name] = json.loads(value)
        except json.JSONDecodeError:
            overrides[name] = value  # a bare string, e.g. a model id
    config = DARTConfig.preset("tiny", **{**(QUICK_SIZES if args.quick else {}), **overrides})
    runs = []
    for i in range(1, args.runs + 1):
        out = Path(args.out) / f"run{i}"
        shutil.rmtree(out, ignore_errors=True)
        phase_peaks: dict[str, float] = {}
        sampler.take()
        t = time.perf_counter()

        def record_peak(phase, result, peaks=phase_peaks):
            peaks[phase] = round(sampler.take() / gib, 2)

        run_dart(config, out, progress=False, on_phase_end=record_peak, stop_after=args.stop_after)
        runs.append({"run": i, "seconds": round(time.perf_counter() - t, 1), "peak_rss_gib": phase_peaks,
                     "rss_after_gib": round(rss_bytes() / gib, 2)})
        say(f"run {i}: {runs[-1]['seconds']} s, RSS after {runs[-1]['rss_after_gib']} GiB, "
            f"peak per phase {phase_peaks}")
    sampler.stop()
    growth_mb = (runs[-1]["rss_after_gib"] - runs[0]["rss_after_gib"]) * 1024
    result = {"preset": "tiny" + (" (lesson 05 quick sizes)" if args.quick else ""), "overrides": overrides,
              "stop_after": args.stop_after, "runs": runs,
              "rss_before_gib": round(start_rss / gib, 2),
              "peak_rss_gib": max(max(r["peak_rss_gib"].values()) for r in runs),
              f"rss_growth_run1_to_run{args.runs}_mb": round(growth_mb)}
    say(f"\npeak RSS over all runs: {result['peak_rss_gib']} GiB; RSS after run {args.runs} minus after run 1: "
        f"{growth_mb:.0f} MB")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
