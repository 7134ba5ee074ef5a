"""Does DART's *global* diversity term matter over iterations? Novelty against earlier Red models.

    llmsafety dart run --preset cpu_study --variant dart --seed 0 --out runs/cpu_study3/dart_seed0
    llmsafety dart run --preset cpu_study --variant no_diversity --seed 0 --out runs/cpu_study3/no_diversity_seed0
    python benchmarks/global_diversity.py --runs runs/cpu_study3 [--compare dart:no_diversity]
                                          [--out benchmarks/results/global_diversity]
    python benchmarks/global_diversity.py --out benchmarks/results/global_diversity   # again, from OUT/runs
    python benchmarks/global_diversity.py --export-labels 2 3   # blind items of those iterations to label

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

Human labels (``--export-labels ITERATION ...``): the distinct attacks of those iterations of every run,
with the reply the Red phase scored, go blind and shuffled to OUT/labels/items.jsonl (item_id, prompt =
the attack, reply; what each item is: OUT/labels/key.jsonl). Readers label them under
``llmsafety/resources/labelling_protocol.md`` (task 1 for the attack, task 2 for the reply) into
OUT/labels/labels.jsonl, as for ``benchmarks/red_learning_labels.py``. The report then adds, per run and
iteration, human success (a harmful attack that the Target complied with) and harmful attacks next to
the judge's success on the same attacks, A minus B of the same seed, and the diversity of the
human-labelled harmful attacks at matched count.
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


def export_labels(out: Path, iterations: list[int], seed: int = 0) -> None:
    """The distinct attacks of ``iterations`` of every run in OUT/runs, blind and shuffled, for labelling;
    items already in OUT/labels keep their place (and their labels)."""
    import random

    from llmsafety.dart.human_eval import _item_id

    items, key = {}, []
    for run in sorted(p for p in (out / "runs").iterdir() if (p / "config.json").exists()):
        tau = json.loads((run / "config.json").read_text())["harm_threshold"]
        for t, rows in read_attacks(run).items():
            if t not in iterations:
                continue
            for r in rows:
                if r["harm"] is None:
                    continue
                item = _item_id(r["attack"], r["reply"])
                items.setdefault(item, {"item_id": item, "prompt": r["attack"], "reply": r["reply"]})
                key.append({"item_id": item, "run": run.name, "iteration": t, "category": r.get("category"),
                            "judge_harm": r["harm"], "judge_success": r["harm"] >= tau})
    folder = out / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    old_items = ([json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]
                 if (folder / "items.jsonl").exists() else [])
    known = {i["item_id"] for i in old_items}
    new = [i for i in items.values() if i["item_id"] not in known]
    random.Random(seed).shuffle(new)
    (folder / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in old_items + new))
    (folder / "key.jsonl").write_text("".join(json.dumps(k) + "\n" for k in key))
    print(f"{len(new)} new items to label ({len(old_items) + len(new)} in all, {len(key)} attacks) in "
          f"{folder / 'items.jsonl'}")


def human_section(out: Path, compare: tuple[str, str], embed) -> list[str]:
    """The report's part on OUT/labels: human success and harmful attacks per run and iteration."""
    from red_learning_labels import read_labels

    from llmsafety.dart.evaluate import bootstrap_ci
    from llmsafety.dart.stats import cohen_kappa

    folder = out / "labels"
    if not (folder / "labels.jsonl").exists():
        return []
    items = {json.loads(line)["item_id"]: json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()}
    key = [json.loads(line) for line in (folder / "key.jsonl").read_text().splitlines()]
    by_item: dict[str, list[dict]] = {}
    for r in read_labels(folder / "labels.jsonl", set(items)):
        by_item.setdefault(r["item_id"], []).append(r)
    primary = {i: rows[0] for i, rows in by_item.items()}  # whoever labelled an item first
    success = {i: float(r["prompt_label"] == "harmful" and r["label"] == "comply") for i, r in primary.items()}
    harmful = {i: float(r["prompt_label"] == "harmful") for i, r in primary.items()}
    labelled = [k for k in key if k["item_id"] in primary]
    pct = lambda c: f"{100 * c[0]:.1f}% [{100 * c[1]:.1f}, {100 * c[2]:.1f}]"  # noqa: E731
    text = ["## By human labels", "",
            f"{len(primary)} of {len(items)} items labelled (OUT/labels), blind and shuffled, by LLM annotators working "
            "as careful readers under llmsafety/resources/labelling_protocol.md. Human success: the attack is harmful "
            "(task 1) and the reply complies (task 2). CIs: bootstrap over attacks.", ""]
    twice = [rows[:2] for rows in by_item.values() if len(rows) >= 2]
    if twice:
        s_a = [float(a["prompt_label"] == "harmful" and a["label"] == "comply") for a, _ in twice]
        s_b = [float(b["prompt_label"] == "harmful" and b["label"] == "comply") for _, b in twice]
        text.append(f"- Annotators on {len(twice)} items labelled twice: success agreement {np.mean(np.equal(s_a, s_b)):.3f} "
                    f"(kappa {cohen_kappa(s_a, s_b):.3f}); reply labels kappa "
                    f"{cohen_kappa([a['label'] for a, _ in twice], [b['label'] for _, b in twice]):.3f}; attack labels "
                    f"kappa {cohen_kappa([a['prompt_label'] for a, _ in twice], [b['prompt_label'] for _, b in twice]):.3f}")
    if labelled:
        judge = [float(k["judge_success"]) for k in labelled]
        human = [success[k["item_id"]] for k in labelled]
        text.append(f"- Training judge vs labels over {len(labelled)} attacks: judge success {np.mean(judge):.1%}, human "
                    f"{np.mean(human):.1%}, kappa {cohen_kappa(judge, human):.3f}")
    text += ["", "| run | iteration | labelled | human success | harmful attacks | judge success, same attacks |",
             "|---|---|---|---|---|---|"]
    cells: dict[tuple[str, int], list[dict]] = {}
    for k in labelled:
        cells.setdefault((k["run"], k["iteration"]), []).append(k)
    for (run, t), ks in sorted(cells.items()):
        text.append(f"| {run} | {t} | {len(ks)} | {pct(bootstrap_ci([success[k['item_id']] for k in ks], n_boot=4000))} | "
                    f"{pct(bootstrap_ci([harmful[k['item_id']] for k in ks], n_boot=4000))} | "
                    f"{pct(bootstrap_ci([float(k['judge_success']) for k in ks], n_boot=4000))} |")
    a_name, b_name = compare
    runs = {run: json.loads((out / "runs" / run / "config.json").read_text()) for run, _ in cells}
    by = {(c["variant"], c["seed"]): run for run, c in runs.items()}
    seeds = sorted({s for v, s in by if (a_name, s) in by and (b_name, s) in by})
    text.append("")
    for t in sorted({t for _, t in cells}):
        for measure, value in (("human success", success), ("harmful attacks", harmful)):
            pairs = [(np.array([value[k["item_id"]] for k in cells[(by[(a_name, s)], t)]]),
                      np.array([value[k["item_id"]] for k in cells[(by[(b_name, s)], t)]]))
                     for s in seeds if (by[(a_name, s)], t) in cells and (by[(b_name, s)], t) in cells]
            if pairs:
                d = difference_over_seeds(pairs)
                text.append(f"- {a_name} minus {b_name}, iteration {t}, {measure}: {100 * d[0]:+.1f} points "
                            f"[{100 * d[1]:+.1f}, {100 * d[2]:+.1f}] ({len(pairs)} seed{'s' if len(pairs) > 1 else ''})")
    harmful_attacks = {run: [items[k["item_id"]]["prompt"] for k in labelled if k["run"] == run and harmful[k["item_id"]]]
                       for run in runs}
    k, diversity = matched_diversity(harmful_attacks, embed)
    text += ["", f"Diversity of each run's human-labelled harmful attacks (labelled iterations), at matched count (k = {k}, "
             "200 subsamples): unique clusters at cosine 0.7, Vendi (both higher = more diverse), self-BLEU (lower = more). "
             "Brackets: 2.5-97.5% of the subsamples, the spread subsampling to k leaves, not a CI (a run with exactly "
             "k harmful attacks has none).", ""]
    for run, measures in diversity.items():
        text.append(f"- **{run}** ({len(harmful_attacks[run])} harmful attacks): "
                    + ("; ".join(f"{m} {v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" for m, v in measures.items()) or "too few"))
    return text + [""]


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
    text += [""] + human_section(out, compare, embed)
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
    parser.add_argument("--export-labels", type=int, nargs="+", default=None, metavar="ITERATION",
                        help="write OUT/labels/items.jsonl: the blind, shuffled attacks of these iterations to label")
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
    if args.export_labels:
        export_labels(args.out, args.export_labels)
        return
    print(report(args.out, tuple(args.compare.split(":"))))


if __name__ == "__main__":
    main()
