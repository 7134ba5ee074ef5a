"""Does DART make the Target safer, and does it beat the MART-style baseline? Several seeds, one table.

    python benchmarks/effectiveness.py [--seeds 0,1,2] [--variants dart,mart,no_diversity,random_selection]
                                       [--out benchmarks/results] [--runs runs/effectiveness] [--set FIELD=VALUE ...]

Every variant of every seed uses the same judge and the same held-out evaluation prompts (hh-rlhf
harmless test prompts that neither the judge nor the run trains on, the seed attacks' eval split,
and the eval half of the benign prompts). "none" is the untuned Target (each run's iteration 0;
computed once per seed and shared by the variants through the run directory, so it is identical).
Writes ``effectiveness.md`` and PNG figures into ``--out``. Runs resume: re-running skips finished
work. Run by hand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def parse_sets(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def pooled(values: list[np.ndarray], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    from llmsafety.dart import bootstrap_ci

    return bootstrap_ci(np.concatenate(values), n_boot=n_boot, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default="dart,mart,no_diversity,random_selection")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--runs", default="runs/effectiveness")
    parser.add_argument("--set", nargs="*", default=[], help="DARTConfig overrides, e.g. iterations=3")
    args = parser.parse_args()

    from llmsafety.dart import DARTConfig, load_result
    from llmsafety.dart.report import plot_red_metrics, plot_violation

    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    overrides = parse_sets(args.set)
    runs_dir, out_dir = Path(args.runs), Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, int], object] = {}
    started = time.perf_counter()
    for seed in seeds:
        first_dir = None
        for variant in variants:
            config = DARTConfig.preset("tiny", variant=variant, seed=seed, **overrides)
            run_dir = runs_dir / f"{variant}_seed{seed}"
            if first_dir is not None and not (run_dir / "state.json").exists():
                # The untuned Target's evaluation is the same for every variant of a seed: share it.
                shutil.rmtree(run_dir, ignore_errors=True)
                run_dir.mkdir(parents=True)
                config.save(run_dir / "config.json")
                shutil.copy(first_dir / "eval_0.json", run_dir / "eval_0.json")
                (run_dir / "state.json").write_text(json.dumps({"completed": ["eval_0"]}))
            t0 = time.perf_counter()
            # One process per run: every run starts from the same clean state, and memory that a
            # library keeps between trainings (TRL/accelerate caches) is returned to the OS.
            requested = config.save(runs_dir / f"{variant}_seed{seed}.yaml")
            cli = Path(sys.executable).with_name("llmsafety")
            subprocess.run([str(cli), "dart", "run", "--config", str(requested),
                            "--out", str(run_dir), "--resume"], check=True)
            results[variant, seed] = load_result(run_dir)
            first_dir = first_dir or run_dir
            print(f"[{time.perf_counter() - started:6.0f}s] {variant} seed {seed}: "
                  f"{time.perf_counter() - t0:.0f}s\n{results[variant, seed].summary()}", flush=True)

    rows = []
    def violations(ev):
        return np.array([np.nan if r["harm"] is None else float(r["harm"] >= cfg.harm_threshold)
                         for r in ev["records"] if r["source"] != "benign"])

    cfg = DARTConfig.preset("tiny", **overrides)
    base = [results[variants[0], s].evaluations[0] for s in seeds]
    for name in ["none"] + variants:
        evs = base if name == "none" else [results[name, s].evaluations[max(results[name, s].evaluations)] for s in seeds]
        rate, lo, hi = pooled([violations(e) for e in evs])
        per_seed = [e["violation_rate"] for e in evs]
        reductions = [1 - e["violation_rate"] / b["violation_rate"] for e, b in zip(evs, base)]
        row = {
            "variant": name,
            "violation % (pooled, 95% CI)": f"{100 * rate:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
            "violation % per seed": ", ".join(f"{100 * v:.1f}" for v in per_seed),
            "risk removed % (mean, min-max)": "—" if name == "none" else
                f"{100 * np.mean(reductions):.1f} ({100 * min(reductions):.1f}–{100 * max(reductions):.1f})",
            "hh violation %": f"{100 * np.mean([e['by_source']['hh']['violation_rate'] for e in evs]):.1f}"
                if "hh" in evs[0]["by_source"] else "—",
            "seed-eval violation %": f"{100 * np.mean([e['by_source']['seed_eval']['violation_rate'] for e in evs]):.1f}",
            "over-refusal %": f"{100 * np.mean([e.get('over_refusal', np.nan) for e in evs]):.1f}",
        }
        if name != "none":
            red = [results[name, s].iterations for s in seeds]
            last = max(red[0])
            row["attack success % (last iter)"] = f"{100 * np.mean([r[last]['red_metrics']['attack_success_rate'] for r in red]):.1f}"
            row["novelty (last iter)"] = f"{np.mean([r[last]['red_metrics']['mean_novelty'] for r in red]):.3f}"
            row["self-BLEU (last iter)"] = f"{np.mean([r[last]['red_metrics'].get('self_bleu', np.nan) for r in red]):.3f}"
        rows.append(row)
    table = pd.DataFrame(rows).fillna("—")

    per_iter = []
    for (variant, seed), res in results.items():
        m = res.metrics()
        m["variant"], m["seed"] = variant, seed
        per_iter.append(m)
    per_iter = pd.concat(per_iter)
    cols = [c for c in ("violation_rate", "over_refusal", "attack_success_rate", "mean_novelty", "self_bleu")
            if c in per_iter]
    by_iter = per_iter.groupby(["variant", "iteration"])[cols].mean().round(3)

    elapsed = time.perf_counter() - started
    n_eval = base[0]["n"]
    text = [
        "# DART effectiveness (tiny preset)", "",
        f"Seeds {seeds}; {n_eval} held-out harmful prompts and {base[0].get('n_benign', 0)} benign prompts per "
        f"evaluation; overrides {overrides or 'none'}; wall time {elapsed / 60:.1f} min.", "",
        table.to_markdown(index=False), "",
        "## Per iteration (mean over seeds)", "", by_iter.to_markdown(), "",
        "![violation](violation.png)", "", "![red metrics](red_metrics.png)", "",
    ]
    (out_dir / "effectiveness.md").write_text("\n".join(text))
    print("\n".join(text))

    fig = plot_violation({v: results[v, seeds[0]] for v in variants})
    fig.axes[0].set_title(f"Violation rate per iteration (seed {seeds[0]}, 95% CI)")
    fig.savefig(out_dir / "violation.png", dpi=110)
    fig = plot_red_metrics({v: results[v, seeds[0]] for v in variants})
    fig.savefig(out_dir / "red_metrics.png", dpi=110)


if __name__ == "__main__":
    main()
