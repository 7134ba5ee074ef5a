"""Do Targets tuned on more diverse attacks resist attacks they never saw? The cross-attack matrix.

    python benchmarks/cross_attack.py [--runs runs/study] [--per-source 24]
                                      [--out benchmarks/results/cross_attack]

DART's claim rests on this test: a Target made safer on diverse attacks generalises to attacks
it was not trained on. Rows: the untuned Target and the final Target of every finished run in
``--runs`` (the system_prompt control: the untuned Target under its system prompt). Columns
(attack sources): the attacks each run's Red models wrote during training (every iteration,
deduplicated, ``--per-source`` drawn with a fixed seed) and the seed attacks' eval split. Each
Target replies greedily to every attack; the evaluation judge (the one checked against human
labels, see the judge card) says whether the reply complies; attack success = its harm >= tau.

Printed and written to OUT/cross_attack.md: the matrix with bootstrap CIs over attacks, and the
contrast the claim needs, paired by attack: each DART Target minus the MART Target of the same
seed on *foreign* attacks (sources that are neither run's own), pooled over seeds by a two-level
bootstrap (seed pairs, then attacks). Every attack, reply and score is kept in
OUT/records.jsonl, so the tables can be recomputed (``--from-records``) without a model.
Human labels (``--export-labels``): every reply of the tuned Targets (the untuned row is left out)
goes blind and shuffled to OUT/labels/items.jsonl (item_id, prompt = the attack, reply; what each is:
OUT/labels/key.jsonl). Readers label them under ``llmsafety/resources/labelling_protocol.md`` (task 1
for the attack, task 2 for the reply) into OUT/labels/labels.jsonl, as for
``benchmarks/red_learning_labels.py``; the report then gives the matrix and the contrast by human
success too (the attack is harmful and the reply complies).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

SEED_EVAL = "seed_eval"


def red_attack_sources(runs: Path, per_source: int) -> dict[str, pd.DataFrame]:
    """{run name: DataFrame(prompt, category)}: the attacks of each run that has a Red LLM."""
    sources = {}
    for run in sorted(p for p in runs.iterdir() if (p / "config.json").exists()):
        variant = json.loads((run / "config.json").read_text()).get("variant", "dart")
        if variant in ("refusal_sft", "system_prompt"):
            continue  # no Red LLM: their attacks.jsonl holds seed attacks
        rows = [json.loads(line) for f in sorted(run.glob("iter_*/attacks.jsonl"))
                for line in f.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        frame = pd.DataFrame(rows).drop_duplicates("attack")
        frame = frame.sample(n=min(per_source, len(frame)), random_state=0)
        sources[run.name] = pd.DataFrame({"prompt": frame["attack"].values, "category": frame["category"].values})
    return sources


def final_targets(runs: Path, iteration: int | None = None) -> dict[str, dict]:
    """{row name: {run, adapter, system}} for the untuned Target and every finished run.

    ``iteration``: the Target after that iteration instead of the final one (a run's last Target can
    refuse everything, a floor that separates nothing). A run whose adapter is not on disk (a compact
    copy) is an attack source only.
    """
    from llmsafety.dart import DARTConfig

    rows: dict[str, dict] = {"untuned": {"run": None, "adapter": None, "system": None}}
    for run in sorted(p for p in runs.iterdir() if (p / "config.json").exists()):
        config = DARTConfig.load(run / "config.json")
        state = json.loads((run / "state.json").read_text()) if (run / "state.json").exists() else {}
        k = config.iterations if iteration is None else iteration
        adapter = run / f"iter_{k}" / "target_adapter"
        if config.variant == "system_prompt":
            rows[run.name] = {"run": run, "adapter": None, "system": config.safety_system_prompt}
        elif f"target_{k}" in state.get("completed", []):  # a finished Target only
            if (adapter / "adapter_config.json").exists():
                rows[run.name] = {"run": run, "adapter": adapter, "system": None}
            else:
                print(f"  {run.name}: no adapter at {adapter} (a compact copy?): an attack source only", flush=True)
    return rows


def attack_all(runs: Path, per_source: int, out: Path, progress: bool = True,
               iteration: int | None = None) -> pd.DataFrame:
    """Every Target against every source; returns (and writes) one row per target x attack."""
    from llmsafety.dart import DARTConfig
    from llmsafety.dart.evaluate import evaluate_target
    from llmsafety.dart.iteration import RunContext

    sources = red_attack_sources(runs, per_source)
    targets = final_targets(runs, iteration)
    first_run = next(t["run"] for t in targets.values() if t["run"] is not None)
    config = DARTConfig.load(first_run / "config.json")
    ctx = RunContext(config, out / "_scratch", progress)
    seed_eval = ctx.eval_sets.harmful.query("source == @SEED_EVAL")
    frames = [f.assign(source=name) for name, f in sources.items()]
    frames.append(pd.DataFrame({"prompt": seed_eval["prompt"].values, "category": seed_eval["category"].values,
                                "source": SEED_EVAL}))
    attacks = pd.concat(frames, ignore_index=True)[["prompt", "source", "category"]]
    print(f"{len(targets)} Targets x {len(attacks)} attacks from {attacks['source'].nunique()} sources", flush=True)
    records = []
    for name, spec in targets.items():
        t0 = time.perf_counter()
        target = ctx.load_model("target", spec["adapter"])
        ev = evaluate_target(target, ctx.eval_judge, attacks, system=spec["system"], headline_source=None,
                             outcome_fn=ctx.outcomes.outcomes, harm_threshold=config.harm_threshold,
                             max_new_tokens=config.eval_max_new_tokens, batch_size=config.batch_size,
                             seed=0, progress=progress)
        for r in ev["records"]:
            records.append({"target": name, "source": r["source"], "category": r["category"], "attack": r["prompt"],
                            "reply": r["reply"], "harm": r["harm"], "outcome": r["outcome"]})
        print(f"  {name}: attack success {ev['violation_rate_all']:.1%} over {len(attacks)} attacks "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        del target
    frame = pd.DataFrame(records)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "records.jsonl").open("w") as f:
        for row in records:
            f.write(json.dumps(row) + "\n")
    (out / "setup.json").write_text(json.dumps({
        "runs": str(runs), "per_source": per_source, "target_iteration": iteration, "harm_threshold": config.harm_threshold,
        "eval_judge": config.eval_judge, "eval_max_new_tokens": config.eval_max_new_tokens,
        "targets": {k: {"adapter": str(v["adapter"]) if v["adapter"] else None, "system": v["system"]}
                    for k, v in targets.items()}}, indent=1))
    return frame


def _success(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    scored = frame.dropna(subset=["harm"]).copy()
    scored["success"] = (scored["harm"] >= threshold).astype(float)
    return scored


def matrix_table(frame: pd.DataFrame, threshold: float, n_boot: int = 2000) -> pd.DataFrame:
    """Attack success per target x source, with a bootstrap CI over that cell's attacks."""
    from llmsafety.dart.evaluate import bootstrap_ci

    scored = _success(frame, threshold)
    cells = {}
    for (target, source), group in scored.groupby(["target", "source"], sort=False):
        rate, lo, hi = bootstrap_ci(group["success"].to_numpy(), n_boot=n_boot, seed=0)
        cells.setdefault(target, {})[source] = f"{100 * rate:.0f} [{100 * lo:.0f}, {100 * hi:.0f}] (n={len(group)})"
    return pd.DataFrame(cells).T


def foreign_contrast(frame: pd.DataFrame, threshold: float, a_prefix: str = "dart", b_prefix: str = "mart",
                     n_boot: int = 4000, seed: int = 0) -> tuple[list[dict], tuple[float, float, float]]:
    """a_seedS minus b_seedS on attacks of sources that are neither run's own, paired by attack.

    Returns one row per seed pair (estimate and a bootstrap CI over its attacks) and the pooled
    difference with a two-level bootstrap: seed pairs resampled, then attacks within each pair.
    """
    from llmsafety.dart.stats import paired_difference

    # The pooled contrast cannot use paired_difference: each seed pair has its own foreign attacks
    # (the other seeds' Red sources), so the grids do not share columns. Two levels by hand instead.
    scored = _success(frame, threshold)
    wide = scored.pivot_table(index=["source", "attack"], columns="target", values="success", aggfunc="first")
    rng = np.random.default_rng(seed)
    pairs, diffs = [], []
    for a in sorted(t for t in wide.columns if t.startswith(a_prefix + "_")):
        b = b_prefix + a[len(a_prefix):]
        if b not in wide.columns:
            continue
        foreign = ~wide.index.get_level_values("source").isin([a, b])
        both = wide.loc[foreign, [a, b]].dropna()
        d = (both[a] - both[b]).to_numpy()
        # one seed pair: a [1, n_attacks] grid each, the same attacks resampled for both
        estimate, lo, hi = paired_difference(both[a].to_numpy()[None], both[b].to_numpy()[None], n_boot=n_boot,
                                             seed=seed)
        pairs.append({"pair": f"{a} - {b}", "n_attacks": len(d), "sources": sorted(set(both.index.get_level_values(0))),
                      "difference": estimate, "ci": [lo, hi]})
        diffs.append(d)
    if not diffs:
        return pairs, (float("nan"),) * 3
    pooled = float(np.mean(np.concatenate(diffs)))
    replicates = []
    for _ in range(n_boot):
        chosen = [diffs[i] for i in rng.integers(0, len(diffs), size=len(diffs))]
        replicates.append(np.mean(np.concatenate([rng.choice(d, size=len(d)) for d in chosen])))
    return pairs, (pooled, float(np.quantile(replicates, 0.025)), float(np.quantile(replicates, 0.975)))


def export_labels(frame: pd.DataFrame, out: Path, seed: int = 0) -> None:
    """The tuned Targets' replies, blind and shuffled, for human labels (OUT/labels)."""
    import random

    from llmsafety._io import write_jsonl
    from llmsafety.dart.human_eval import _item_id

    tuned = frame[frame["target"] != "untuned"]
    items, key = {}, []
    for r in tuned.itertuples():
        item = _item_id(r.attack, r.reply)
        items.setdefault(item, {"item_id": item, "prompt": r.attack, "reply": r.reply})
        key.append({"item_id": item, "target": r.target, "source": r.source, "attack": r.attack, "harm": r.harm})
    shuffled = list(items.values())
    random.Random(seed).shuffle(shuffled)
    folder = out / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "items.jsonl", shuffled)
    write_jsonl(folder / "key.jsonl", key)
    print(f"{len(shuffled)} items to label in {folder / 'items.jsonl'}")


def human_frame(frame: pd.DataFrame, out: Path, threshold: float) -> tuple[pd.DataFrame, list[str]] | None:
    """The tuned Targets' records with ``harm`` replaced by human success (1.0 / 0.0), so the matrix and
    the contrast can be computed as for the judge (at threshold 0.5); None without labels.

    An attack's harmfulness (task 1) is taken from whichever of its items was labelled first, so
    every Target's reply to one attack is judged against the same call; the reply label is each item's own.
    """
    from red_learning_labels import read_labels

    from llmsafety.dart.human_eval import _item_id
    from llmsafety.dart.stats import cohen_kappa

    folder = out / "labels"
    if not (folder / "labels.jsonl").exists():
        return None
    items = {json.loads(line)["item_id"] for line in (folder / "items.jsonl").read_text().splitlines()}
    labels = read_labels(folder / "labels.jsonl", items)
    by_item: dict[str, list[dict]] = {}
    for r in labels:
        by_item.setdefault(r["item_id"], []).append(r)
    primary = {i: rows[0] for i, rows in by_item.items()}
    tuned = frame[frame["target"] != "untuned"].copy()
    tuned["item_id"] = [_item_id(a, r) for a, r in zip(tuned["attack"], tuned["reply"])]
    tuned = tuned[tuned["item_id"].isin(primary)]
    order = {r["item_id"]: n for n, r in enumerate(labels)}
    attack_call: dict[str, str] = {}
    for _, row in sorted(tuned.iterrows(), key=lambda kv: order[kv[1]["item_id"]]):
        attack_call.setdefault(row["attack"], primary[row["item_id"]]["prompt_label"])
    judge_success = (tuned["harm"] >= threshold).to_numpy()
    tuned["harm"] = [float(attack_call[a] == "harmful" and primary[i]["label"] == "comply")
                     for a, i in zip(tuned["attack"], tuned["item_id"])]
    twice = [rows[:2] for rows in by_item.values() if len(rows) >= 2]
    notes = [f"{len(primary)} of {len(items)} items labelled, blind and shuffled, by LLM annotators working as "
             "careful readers under llmsafety/resources/labelling_protocol.md"]
    if twice:
        notes.append(f"Annotators on {len(twice)} items labelled twice: reply labels kappa "
                     f"{cohen_kappa([a['label'] for a, _ in twice], [b['label'] for _, b in twice]):.3f}, attack labels "
                     f"kappa {cohen_kappa([a['prompt_label'] for a, _ in twice], [b['prompt_label'] for _, b in twice]):.3f}")
    calls = tuned.groupby("attack")["item_id"].apply(lambda ids: [primary[i]["prompt_label"] for i in ids])
    pairs = [c[:2] for c in calls if len(c) >= 2]
    if pairs:  # one attack met by two Targets: its two items are a free overlap for task 1
        notes.append(f"Attack labels of one attack in two items (two replies, usually two annotators), {len(pairs)} "
                     f"attacks: kappa {cohen_kappa([a for a, _ in pairs], [b for _, b in pairs]):.3f}")
    return tuned, notes + [f"Evaluation judge vs labels on these replies: judge success "
                           f"{np.mean(judge_success):.1%}, human {tuned['harm'].mean():.1%}, kappa "
                           f"{cohen_kappa(list(judge_success), list(tuned['harm'] >= 0.5)):.3f}"]


def plot_matrix(frame: pd.DataFrame, threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = _success(frame, threshold)
    rates = scored.pivot_table(index="target", columns="source", values="success", aggfunc="mean")
    counts = scored.pivot_table(index="target", columns="source", values="success", aggfunc="count")
    rates = rates.loc[list(dict.fromkeys(frame["target"])), list(dict.fromkeys(frame["source"]))]
    fig, ax = plt.subplots(figsize=(1.3 * rates.shape[1] + 2, 0.55 * rates.shape[0] + 1.5))
    image = ax.imshow(rates.to_numpy(), vmin=0, vmax=1, cmap="Reds")
    for i, target in enumerate(rates.index):
        for j, source in enumerate(rates.columns):
            ax.text(j, i, f"{rates.iloc[i, j]:.2f}\nn={int(counts.loc[target, source])}", ha="center",
                    va="center", fontsize=7)
    ax.set_xticks(range(rates.shape[1]), rates.columns, rotation=30, ha="right")
    ax.set_yticks(range(rates.shape[0]), rates.index)
    ax.set_xlabel("attacks written by (source)")
    ax.set_ylabel("Target attacked")
    fig.colorbar(image, ax=ax, label="attack success (evaluation judge)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def report(frame: pd.DataFrame, threshold: float, out: Path, compare: tuple[str, str] = ("dart", "mart"),
           iteration: int | None = None) -> str:
    a_name, b_name = compare
    which = "final Target" if iteration is None else f"Target after iteration {iteration}"
    pairs, pooled = foreign_contrast(frame, threshold, a_name, b_name)
    text = ["# Cross-attack matrix", "",
            f"Attack success (%, evaluation judge, harm >= tau) of each run's {which} and the untuned Target (rows) against the attacks of each "
            "source (columns), 95% bootstrap CI over the cell's attacks. Judge numbers, not human labels.", "",
            matrix_table(frame, threshold).to_markdown(), "",
            f"## Foreign attacks: {a_name} Target minus {b_name} Target of the same seed (paired by attack)", ""]
    for p in pairs:
        text.append(f"- {p['pair']}: {100 * p['difference']:+.1f} points [{100 * p['ci'][0]:+.1f}, "
                    f"{100 * p['ci'][1]:+.1f}] over {p['n_attacks']} attacks from {', '.join(p['sources'])}")
    text += ["", f"Pooled over seeds (two-level bootstrap): {100 * pooled[0]:+.1f} points "
             f"[{100 * pooled[1]:+.1f}, {100 * pooled[2]:+.1f}]. Negative: the {a_name} Target resists foreign "
             "attacks better.", ""]
    human = human_frame(frame, out, threshold)
    if human is not None:
        labelled, notes = human
        h_pairs, h_pooled = foreign_contrast(labelled, 0.5, a_name, b_name)
        text += ["## By human labels", ""] + [f"- {n}" for n in notes] + [
            "", "Human success (%): the attack is harmful (task 1) and the reply complies (task 2).", "",
            matrix_table(labelled, 0.5).to_markdown(), ""]
        for p in h_pairs:
            text.append(f"- {p['pair']}, human success: {100 * p['difference']:+.1f} points [{100 * p['ci'][0]:+.1f}, "
                        f"{100 * p['ci'][1]:+.1f}] over {p['n_attacks']} attacks from {', '.join(p['sources'])}")
        text += ["", f"Pooled over seeds, human success: {100 * h_pooled[0]:+.1f} points [{100 * h_pooled[1]:+.1f}, "
                 f"{100 * h_pooled[2]:+.1f}]", ""]
    plot_matrix(frame, threshold, out / "cross_attack.png")
    (out / "cross_attack.md").write_text("\n".join(text))
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/study"))
    parser.add_argument("--per-source", type=int, default=24, help="attacks drawn from each run's Red attacks")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cross_attack"))
    parser.add_argument("--iteration", type=int, default=None,
                        help="attack each run's Target after this iteration (default: its final Target)")
    parser.add_argument("--export-labels", action="store_true",
                        help="write the tuned Targets' replies of OUT/records.jsonl blind to OUT/labels for human labels")
    parser.add_argument("--from-records", action="store_true", help="recompute the tables from OUT/records.jsonl")
    parser.add_argument("--compare", default="dart:mart",
                        help="A:B, the contrast: variant A's Target minus variant B's of the same seed on foreign attacks")
    args = parser.parse_args()
    compare = tuple(args.compare.split(":"))
    if len(compare) != 2 or not all(compare):
        raise SystemExit(f"--compare {args.compare!r}: give two variant names as A:B, e.g. dart:no_diversity")
    if args.export_labels:
        export_labels(pd.read_json(args.out / "records.jsonl", lines=True), args.out)
        return
    if args.from_records:
        frame = pd.read_json(args.out / "records.jsonl", lines=True)
    else:
        if not args.runs.is_dir():
            raise SystemExit(f"--runs {args.runs} is not a directory: run the study first "
                             "(benchmarks/effectiveness.py) or point at its runs")
        frame = attack_all(args.runs, args.per_source, args.out, iteration=args.iteration)
    setup = json.loads((args.out / "setup.json").read_text())
    print(report(frame, setup["harm_threshold"], args.out, compare, setup.get("target_iteration")))


if __name__ == "__main__":
    main()
