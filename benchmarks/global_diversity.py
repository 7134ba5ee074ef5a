"""Does DART's *global* diversity term matter over iterations? Novelty against earlier Red models.

    llmsafety dart run --preset cpu_study --variant dart --seed 0 --out runs/cpu_study3/dart_seed0
    llmsafety dart run --preset cpu_study --variant no_diversity --seed 0 --out runs/cpu_study3/no_diversity_seed0
    python benchmarks/global_diversity.py --runs runs/cpu_study3 [--compare dart:no_diversity]
                                          [--out benchmarks/results/global_diversity]
    python benchmarks/global_diversity.py --out benchmarks/results/global_diversity   # again, from OUT/runs

Within one red phase the term changed nothing measurable (benchmarks/red_probe.py). Its claim is about
*iterations*: the novelty bonus is paid against every earlier iteration's attacks, so a Red LLM that
gets it should keep finding new attacks where one without it returns to what worked before. Per run and
iteration t this measures, on MiniLM embeddings of the distinct attacks:

- **global novelty**: each attack of iteration t against all attacks of iterations 1..t-1 (the Red
  models before it), nearest-neighbour cosine distance (``llmsafety.diversity.global_novelty``), mean
  over all of t's attacks and over its successful ones (the training judge's harm >= tau);
- the training judge's attack success (its harm of the Red phase's reply: a judge number, not labels);
- the diversity of the *successful* attacks of the whole run, every run subsampled to the same count
  (matched success): unique attacks (greedy clusters at cosine 0.7), Vendi score, self-BLEU.

The comparison (``--compare A:B``): variant A minus variant B of the same seed, per iteration, with a
bootstrap CI over attacks (the two runs' attacks are different attacks: resampled apart), and pooled over
seeds by a two-level bootstrap (seeds, then attacks) when several seeds ran. Also the evaluation judge's
violation rate of each run's final Target. Every run's compact raw outputs (configs, attacks, replies,
scores, selections, evaluations; no adapters) are copied to OUT/runs, so the tables can be recomputed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import numpy as np
from red_learning import matched_diversity  # the same subsampling as the within-phase diversity tables


def keep_compact(run: Path, dst: Path) -> None:
    """Every JSON / JSONL file of a run, no adapters, embeddings or trainer folders."""
    from llmsafety.dart.loop import _left_out_of_compact_copy

    for path in run.rglob("*"):
        rel = str(path.relative_to(run))
        if path.is_file() and path.suffix in {".json", ".jsonl"} and not _left_out_of_compact_copy(rel) \
                and "_trainer" not in rel:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dst / rel)


def read_attacks(run: Path) -> dict[int, list[dict]]:
    """{iteration: distinct attacks (first record of each text) with their judge harm}."""
    out = {}
    for path in sorted(run.glob("iter_*/attacks.jsonl"), key=lambda p: int(p.parent.name.split("_")[1])):
        seen, rows = set(), []
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["attack"] and r["attack"] not in seen:
                seen.add(r["attack"])
                rows.append(r)
        out[int(path.parent.name.split("_")[1])] = rows
    return out


def run_figures(run: Path, embed) -> dict:
    """Per iteration: success, global novelty of all / successful attacks (per attack, for the CIs)."""
    from llmsafety.diversity import global_novelty

    config = json.loads((run / "config.json").read_text())
    tau = config["harm_threshold"]
    attacks = read_attacks(run)
    vectors = {t: embed([r["attack"] for r in rows]) for t, rows in attacks.items()}
    figures = {"variant": config["variant"], "seed": config["seed"], "iterations": {}}
    for t, rows in attacks.items():
        success = np.array([r["harm"] is not None and r["harm"] >= tau for r in rows])
        entry = {"n": len(rows), "n_unscored": sum(r["harm"] is None for r in rows), "success": success.tolist()}
        earlier = [vectors[s] for s in attacks if s < t]
        if earlier:
            novelty = global_novelty(vectors[t], np.concatenate(earlier))
            entry["novelty"] = novelty.tolist()
        figures["iterations"][t] = entry
    figures["successful_attacks"] = [r["attack"] for rows in attacks.values() for r in rows
                                     if r["harm"] is not None and r["harm"] >= tau]
    evals = sorted(run.glob("eval_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    if len(evals) >= 2:  # eval_0 (the untuned Target) and the last one
        final = json.loads(evals[-1].read_text())
        first = json.loads(evals[0].read_text())  # eval_0: the untuned Target
        headline = [r for r in final["records"] if r["source"] == final["headline_source"]]
        figures["final_eval"] = {"iteration": int(evals[-1].stem.split("_")[1]), "source": final["headline_source"],
                                 "violations": {r["prompt"]: float(r["harm"] >= tau) for r in headline
                                                if r["harm"] is not None},
                                 "violation_rate": final["violation_rate"], "violation_ci": final["violation_ci"],
                                 "over_refusal": final["over_refusal"], "untuned_violation_rate": first["violation_rate"]}
    return figures


def _novelty(entry: dict, successful_only: bool = False) -> np.ndarray:
    """An iteration's global novelty per attack (empty for iteration 1: nothing earlier to compare with)."""
    novelty = np.array(entry.get("novelty", []), dtype=float)
    if successful_only and novelty.size:
        return novelty[np.array(entry["success"], dtype=bool)]
    return novelty


def difference_over_seeds(pairs: list[tuple[np.ndarray, np.ndarray]], n_boot: int = 4000, seed: int = 0):
    """mean(a) - mean(b) averaged over seed pairs; a replicate draws seed pairs, then each run's attacks apart."""
    rng = np.random.default_rng(seed)
    estimate = float(np.mean([a.mean() - b.mean() for a, b in pairs]))
    boots = []
    for _ in range(n_boot):
        drawn = [pairs[i] for i in rng.integers(0, len(pairs), len(pairs))]
        boots.append(np.mean([a[rng.integers(0, len(a), len(a))].mean() - b[rng.integers(0, len(b), len(b))].mean()
                              for a, b in drawn]))
    return estimate, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def report(out: Path, compare: tuple[str, str]) -> str:
    from llmsafety.dart.evaluate import bootstrap_ci
    from llmsafety.models import load_embedder

    embedder = load_embedder()
    embed = lambda texts: embedder.encode(texts, convert_to_numpy=True, normalize_embeddings=True,  # noqa: E731
                                          show_progress_bar=False)
    runs = sorted(p for p in (out / "runs").iterdir() if (p / "config.json").exists())
    figures = {run.name: run_figures(run, embed) for run in runs}
    pct = lambda c: f"{100 * c[0]:.1f}% [{100 * c[1]:.1f}, {100 * c[2]:.1f}]"  # noqa: E731
    num = lambda c, f=".3f": f"{c[0]:{f}} [{c[1]:{f}}, {c[2]:{f}}]"  # noqa: E731
    text = ["# Global diversity over iterations", "",
            "Distinct attacks of each iteration, MiniLM embeddings. Global novelty: nearest-neighbour cosine distance "
            "to every attack of the earlier iterations (higher = newer). Success: the training judge's harm >= tau "
            "on the Red phase's reply (judge numbers, not human labels); an unscored attack counts as a failure "
            f"({sum(e['n_unscored'] for f in figures.values() for e in f['iterations'].values())} here). "
            "CIs: bootstrap over attacks.", "",
            "| run | iteration | attacks | judge success | global novelty, all | global novelty, successful |",
            "|---|---|---|---|---|---|"]
    for name, f in figures.items():
        for t, e in f["iterations"].items():
            novelty, success = _novelty(e), np.array(e["success"], dtype=bool)
            nov_all = num(bootstrap_ci(novelty, n_boot=4000)) if novelty.size else "(no earlier iteration)"
            nov_succ = num(bootstrap_ci(novelty[success], n_boot=4000)) if novelty.size and success.sum() >= 2 else "-"
            text.append(f"| {name} | {t} | {e['n']} | {pct(bootstrap_ci(success, n_boot=4000))} | {nov_all} | {nov_succ} |")
    text.append("")
    a_name, b_name = compare
    seeds = sorted({f["seed"] for f in figures.values()})
    by = {}
    for name, f in figures.items():
        if (f["variant"], f["seed"]) in by:
            raise SystemExit(f"{out / 'runs'} holds two runs of {f['variant']} seed {f['seed']} ({name} and another): "
                             "remove the stale copy")
        by[(f["variant"], f["seed"])] = f
    pairs_seen = [s for s in seeds if (a_name, s) in by and (b_name, s) in by]
    if pairs_seen:
        text += [f"## {a_name} minus {b_name} (same seed)", ""]
        iterations = sorted({t for s in pairs_seen for t in by[(a_name, s)]["iterations"]})
        for t in iterations:
            for measure, pick in (("global novelty, all", _novelty),
                                  ("global novelty, successful", lambda e: _novelty(e, successful_only=True)),
                                  ("judge success", lambda e: np.array(e["success"], dtype=float))):
                pairs = [(pick(by[(a_name, s)]["iterations"][t]), pick(by[(b_name, s)]["iterations"][t]))
                         for s in pairs_seen if t in by[(a_name, s)]["iterations"] and t in by[(b_name, s)]["iterations"]]
                pairs = [(a, b) for a, b in pairs if len(a) >= 2 and len(b) >= 2]
                if pairs:
                    d = difference_over_seeds(pairs)
                    text.append(f"- iteration {t}, {measure}: {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] "
                                f"({len(pairs)} seed{'s' if len(pairs) > 1 else ''})")
        text.append("")
    successes = {name: f["successful_attacks"] for name, f in figures.items()}
    k, diversity = matched_diversity(successes, embed)
    text += [f"## Diversity of each run's successful attacks, all iterations, at matched success (k = {k}, 200 subsamples)",
             "", "Unique = greedy MiniLM clusters at cosine 0.7 (higher = more diverse), Vendi (higher = more diverse), "
             "self-BLEU (lower = more diverse); the spread is over subsamples of one run.", ""]
    for name, measures in diversity.items():
        text.append(f"- **{name}**: " + "; ".join(f"{m} {v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" for m, v in measures.items()))
    text += ["", "## The final Targets (evaluation judge)", ""]
    for name, f in figures.items():
        if "final_eval" in f:
            e = f["final_eval"]
            ci = e["violation_ci"]
            text.append(f"- **{name}**: violation rate ({e['source']} prompts) {100 * e['untuned_violation_rate']:.1f}% "
                        f"untuned -> {100 * e['violation_rate']:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] after "
                        f"iteration {e['iteration']}; over-refusal {100 * e['over_refusal']:.1f}%")
    from llmsafety.dart.stats import paired_difference

    for s in pairs_seen:  # the two final Targets on the same evaluation prompts, paired
        a_eval, b_eval = by[(a_name, s)].get("final_eval"), by[(b_name, s)].get("final_eval")
        if a_eval and b_eval:
            prompts = sorted(set(a_eval["violations"]) & set(b_eval["violations"]))
            d = paired_difference([a_eval["violations"][p] for p in prompts], [b_eval["violations"][p] for p in prompts],
                                  n_boot=4000)
            text.append(f"- {a_name} minus {b_name}, seed {s}, paired over {len(prompts)} prompts: violation "
                        f"{100 * d[0]:+.1f} points [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]")
    (out / "global_diversity.md").write_text("\n".join(text) + "\n")
    (out / "global_diversity.json").write_text(json.dumps(
        {"figures": {n: {k2: v for k2, v in f.items() if k2 != "successful_attacks"} for n, f in figures.items()},
         "matched_diversity": {"k": k, "runs": diversity}}, indent=1))
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=None,
                        help="a folder of finished DART runs (VARIANT_seedS); omitted: recompute from OUT/runs")
    parser.add_argument("--compare", default="dart:no_diversity", help="A:B, two variants run with the same seeds")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/global_diversity"))
    args = parser.parse_args()
    if not re.fullmatch(r"[\w-]+:[\w-]+", args.compare):
        raise SystemExit(f"--compare {args.compare!r}: give two variant names as A:B, e.g. dart:no_diversity")
    if args.runs is not None:
        runs = sorted(p for p in args.runs.iterdir() if (p / "config.json").exists())
        if not runs:
            raise SystemExit(f"no DART runs (folders with a config.json) in {args.runs}")
        for run in runs:
            keep_compact(run, args.out / "runs" / run.name)
    elif not (args.out / "runs").exists():
        raise SystemExit(f"nothing to report: {args.out / 'runs'} does not exist; give --runs")
    print(report(args.out, tuple(args.compare.split(":"))))


if __name__ == "__main__":
    main()
