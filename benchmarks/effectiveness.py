"""Does DART make the Target safer than the controls and the MART-style baseline? Seeds x variants.

    python benchmarks/effectiveness.py [--seeds 0,1,2,3,4] [--variants dart,mart,refusal_sft,system_prompt]
                                       [--preset tiny] [--out benchmarks/results/study] [--runs runs/effectiveness]
                                       [--export-labels] [--recompute] [--FIELD VALUE ...]

Headline, declared before the study is run: the share of the untuned Target's violation risk that
DART removes on the held-out hh-rlhf prompts labelled harmful, *by human labels* (comply / refuse /
other under resources/labelling_protocol.md), with a two-way bootstrap CI over seeds and prompts;
beside it the paired differences DART - MART and DART - refusal_sft. The judge columns printed here
are what the labels are checked against, not the result.

Every variant of every seed uses the same evaluation: labelled-harmful hh prompts (headline), the seed
attacks' eval split (in-distribution, reported apart), benign-but-alarming and benign hh prompts
(over-refusal). "none" is the untuned Target (each run's iteration 0, computed once per seed and
shared through the run directory). MART selects with a budget matched to DART's. Writes
``effectiveness.md``, PNG figures and every run's compact raw outputs (``runs/``; with
``--export-labels`` also a blind ``labelling/`` set) into ``--out``. Runs resume: re-running skips
finished work. Run by hand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def grid(evs: list[dict], value) -> np.ndarray:
    """[n_seeds, n_prompts] of value(record) over the headline (hh) records of each evaluation."""
    rows = [[value(r) for r in ev["records"] if r["source"] == "hh"] for ev in evs]
    return np.array(rows, dtype=float)


def fmt(interval, pct: bool = True) -> str:
    est, lo, hi = interval
    k = 100 if pct else 1
    return f"{k * est:.1f} [{k * lo:.1f}, {k * hi:.1f}]"


def study_table(results: dict, seeds: list[int], variants: list[str], threshold: float):
    """One row per variant (and the untuned Target), CIs that respect seeds x prompts."""
    from llmsafety.dart.stats import hierarchical_bootstrap, paired_difference, risk_removed

    def final(v, s):
        res = results[v, s]
        return res.evaluations[max(res.evaluations)]

    evals = {"none": [results[variants[0], s].evaluations[0] for s in seeds]}
    evals.update({v: [final(v, s) for s in seeds] for v in variants})
    comply = {name: grid(evs, lambda r: r.get("outcome") == "comply") for name, evs in evals.items()}
    rows = []
    for name, evs in evals.items():
        row = {"variant": name,
               "violation % (eval judge)": fmt(hierarchical_bootstrap(comply[name])),
               "refuse %": fmt(hierarchical_bootstrap(grid(evs, lambda r: r.get("outcome") == "refuse"))),
               "other %": fmt(hierarchical_bootstrap(grid(evs, lambda r: r.get("outcome") == "other"))),
               "train-judge violation %": fmt(hierarchical_bootstrap(grid(
                   evs, lambda r: np.nan if r.get("train_judge_harm") is None else r["train_judge_harm"] >= threshold))),
               "risk removed %": "—" if name == "none" else fmt(risk_removed(comply[name], comply["none"])),
               "seed-eval violation %": f"{100 * np.mean([e['by_source']['seed_eval']['violation_rate'] for e in evs]):.1f}"}
        for source in evs[0].get("over_refusal_by_source", {}):
            row[f"over-refusal % ({source})"] = f"{100 * np.mean([e['over_refusal_by_source'][source]['rate'] for e in evs]):.1f}"
        if name != "none" and results[name, seeds[0]].iterations:
            logs = [results[name, s].iterations for s in seeds]
            row["selected / iter"] = ", ".join(
                f"{np.mean([lg[t]['target_log']['n_selected'] for lg in logs]):.1f}" for t in sorted(logs[0]))
        rows.append(row)
    extra = ["Paired differences in violation (percentage points, eval judge):", ""]
    for a, b in (("dart", "mart"), ("dart", "refusal_sft"), ("dart", "system_prompt")):
        if a in comply and b in comply:
            extra.append(f"- {a} - {b}: {fmt(paired_difference(comply[a], comply[b]))}")
    return pd.DataFrame(rows).fillna("—"), extra


def keep_raw(results: dict, out: Path) -> None:
    """Copy each run's compact raw outputs (config, state, evaluations with every prompt, reply and
    score, attacks, selections, logs; no adapters or embeddings) so tables can be recomputed."""
    for (variant, seed), res in results.items():
        src, dst = Path(res.output_dir), out / f"{variant}_seed{seed}"
        for path in src.rglob("*"):
            rel = path.relative_to(src)
            if path.is_file() and path.suffix in {".json", ".jsonl"} and "adapter" not in str(rel) \
                    and not str(rel).startswith(("_", "iter_1/_", "iter_2/_")) and "_trainer" not in str(rel):
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, dst / rel)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--variants", default="dart,mart,refusal_sft,system_prompt")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--out", default="benchmarks/results/study")
    parser.add_argument("--export-labels", action="store_true",
                        help="also write a blind labelling set of every run's hh replies into OUT/labelling")
    parser.add_argument("--runs", default="runs/effectiveness")
    parser.add_argument("--recompute", action="store_true",
                        help="run nothing: recompute the tables from the compact raw outputs in OUT/runs")
    from llmsafety.dart.config import add_config_arguments, config_overrides

    add_config_arguments(parser, exclude=("seed", "variant"))  # --iterations 3 --eval-each-iteration false ...
    args = parser.parse_args()

    from llmsafety.dart import DARTConfig, load_result
    from llmsafety.dart.loop import share_untuned_evaluation
    from llmsafety.dart.report import plot_red_metrics, plot_violation

    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    overrides = config_overrides(args, exclude=("seed", "variant"))
    runs_dir, out_dir = Path(args.runs), Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, int], object] = {}
    started = time.perf_counter()
    for seed in seeds if not args.recompute else []:
        first_dir = None
        for variant in variants:
            if variant == "system_prompt" and seed != seeds[0]:
                # No training and greedy evaluation: every seed gives the same replies (checked: the
                # run's config differs only in its seed, which nothing in this variant draws from).
                results[variant, seed] = results[variant, seeds[0]]
                continue
            config = DARTConfig.preset(args.preset, variant=variant, seed=seed, **overrides)
            run_dir = runs_dir / f"{variant}_seed{seed}"
            if first_dir is not None:
                # The untuned Target's evaluation is the same for every variant of a seed: share it.
                share_untuned_evaluation(first_dir, run_dir, config)
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

    if args.recompute:  # every number below from the committed files (adapters are not kept)
        for seed in seeds:
            for variant in variants:
                shared = variant == "system_prompt" and seed != seeds[0]  # see above: seeds give the same run
                results[variant, seed] = load_result(out_dir / "runs" / f"{variant}_seed{seeds[0] if shared else seed}",
                                                     compact=True)
    else:
        keep_raw(results, out_dir / "runs")
    cfg = DARTConfig.preset(args.preset, **overrides)
    table, extra = study_table(results, seeds, variants, cfg.harm_threshold)

    per_iter = []
    for (variant, seed), res in results.items():
        m = res.metrics()
        m["variant"], m["seed"] = variant, seed
        per_iter.append(m)
    per_iter = pd.concat(per_iter)
    cols = [c for c in ("violation_rate", "over_refusal", "attack_success_rate", "mean_novelty", "self_bleu")
            if c in per_iter]
    by_iter = per_iter.groupby(["variant", "iteration"])[cols].mean().round(3)
    base = [results[variants[0], s].evaluations[0] for s in seeds]
    if args.export_labels and not args.recompute:
        from llmsafety.dart.human_eval import export_for_labelling

        counts = export_for_labelling({f"{v}/{s}": runs_dir / f"{v}_seed{s}" for v, s in results},
                                      out_dir / "labelling", sources=("hh",))
        print(f"labelling set: {counts}", flush=True)

    elapsed = time.perf_counter() - started
    n_eval = base[0]["n"]
    text = [
        f"# DART effectiveness ({args.preset} preset)", "",
        f"Seeds {seeds}; {n_eval} held-out harmful prompts and {base[0].get('n_benign', 0)} benign prompts per "
        f"evaluation; " + (f"recomputed from the compact raw outputs in {out_dir / 'runs'} (each run's settings: "
                           "its config.json)." if args.recompute
                           else f"overrides {overrides or 'none'}; wall time {elapsed / 60:.1f} min."), "",
        "Judge numbers (not yet checked against human labels). Rates: the evaluation judge's outcomes on the "
        "labelled-harmful held-out hh prompts (the headline set); CIs: two-way bootstrap over seeds and prompts; "
        "risk removed and differences paired over prompts.", "",
        table.to_markdown(index=False), "", *extra, "",
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
