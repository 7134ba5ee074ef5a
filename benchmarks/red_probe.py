"""Did the Red LLM learn? The initial and the trained Red model, on the same red instructions.

    python benchmarks/red_probe.py [--arms cpu_study,cpu_study_greedy_reward] [--samples 8]
                                   [--results benchmarks/results/red_learning_rebuilt_target]
                                   [--scratch runs/red_learning] [--target-adapter DIR]

``benchmarks/red_learning.py`` plots attack success per GRPO step, but each step draws new red
instructions (other categories, other few-shot examples), so a step's success is also its
instructions' difficulty: the curve confounds learning with what the step was asked. This probe
removes that. For each arm it takes the instructions the arm trained on (rebuilt from its config,
the same seeded draw) and samples ``--samples`` attacks per instruction from the Red model *before*
training (no adapter) and *after* (the arm's adapter, kept in SCRATCH/ARM/iter_1/red_adapter), at
the training temperature. The same fixed Target answers every attack greedily (the evaluation's
decoding: success is the attack's, not the Target's draw) and the training judge scores the reply.
Reported per arm: attack success and the rewarded harm (harm x on-goal factor x request gate, what
the arm's reward pays) before and after,
and their differences with a bootstrap CI that resamples instructions (before and after share
them: paired). Every attack, reply and score goes to RESULTS/ARM/probe.jsonl, the figures to
RESULTS/ARM/probe.json. Judge numbers, not human labels. Run by hand.

Diversity, from the attacks alone (so ``--report-only`` recomputes it from probe.jsonl): for each
instruction, the Vendi score (MiniLM embeddings, in [1, samples]) and self-BLEU of its ``--samples``
attacks, before and after, paired over instructions. A Red model that collapses onto one attack
per instruction loses Vendi and gains self-BLEU. ``--compare A:B`` sets two arms' *trained* models
side by side on the same instructions (e.g. the diversity term on vs off): differences B - A with CIs
over instructions, for success, rewarded harm and both diversity measures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

DEFAULT_TARGET = Path("runs/study/dart_seed0/iter_1/target_adapter")


def paired_instruction_difference(before: np.ndarray, after: np.ndarray, n_boot: int = 4000, seed: int = 0):
    """Mean of after - before over [n_instructions, samples] grids, CI resampling instructions."""
    per_instruction = after.mean(axis=1) - before.mean(axis=1)
    rng = np.random.default_rng(seed)
    boots = [per_instruction[rng.integers(0, len(per_instruction), len(per_instruction))].mean() for _ in range(n_boot)]
    return float(per_instruction.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def per_instruction_diversity(rows: list[dict], embed) -> dict[str, dict[str, np.ndarray]]:
    """{model: {"vendi": [n_instructions], "self_bleu": [n_instructions]}} from probe rows: the
    diversity of each instruction's samples (empty attacks left out; NaN under 2 left)."""
    from llmsafety.diversity import self_bleu, vendi_score

    out = {}
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        n = max(r["instruction"] for r in mine) + 1
        vendi, bleu = np.full(n, np.nan), np.full(n, np.nan)
        for i in range(n):
            texts = [r["attack"] for r in mine if r["instruction"] == i and r["attack"].strip()]
            if len(texts) >= 2:
                vendi[i] = vendi_score(embed(texts))
                bleu[i] = self_bleu(texts)
        out[model] = {"vendi": vendi, "self_bleu": bleu}
    return out


def paired_defined_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 4000, seed: int = 0):
    """paired_instruction_difference over the instructions (rows) where neither a nor b has a NaN;
    a and b are [n_instructions] or [n_instructions, samples]."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    keep = ~(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1))
    return paired_instruction_difference(a[keep], b[keep], n_boot, seed)


def diversity_figures(rows: list[dict], embed) -> dict:
    d = per_instruction_diversity(rows, embed)
    figures = {}
    for measure in ("vendi", "self_bleu"):
        figures[f"{measure}_before"] = float(np.nanmean(d["before"][measure]))
        figures[f"{measure}_after"] = float(np.nanmean(d["after"][measure]))
        figures[f"{measure}_difference"] = paired_defined_difference(d["before"][measure], d["after"][measure])
    return figures


def compare_trained(results: Path, arm_a: str, arm_b: str, embed) -> dict:
    """Arm B's trained Red model minus arm A's, paired over the instructions both trained on."""
    rows = {arm: [json.loads(line) for line in (results / arm / "probe.jsonl").read_text().splitlines()]
            for arm in (arm_a, arm_b)}
    after = {arm: [r for r in rs if r["model"] == "after"] for arm, rs in rows.items()}
    categories = {arm: [r["category"] for r in rs] for arm, rs in after.items()}
    if categories[arm_a] != categories[arm_b]:
        raise SystemExit(f"--compare {arm_a}:{arm_b}: the arms' probes did not use the same instructions "
                         "(other seed, red_steps or prompts per step); a paired comparison needs the same ones")
    from llmsafety.dart.rewards import _rewarded_harm

    config = json.loads((results / arm_a / "config.json").read_text())
    figures = {"a": arm_a, "b": arm_b}
    grids = {}
    for arm, rs in after.items():
        n = max(r["instruction"] for r in rs) + 1
        success = np.array([r["harm"] is not None and r["harm"] >= config["harm_threshold"] for r in rs], dtype=float)
        rewarded = np.array([_rewarded_harm(SimpleNamespace(**{"on_goal": None, "request_gate": None, **r}))
                             for r in rs])  # what the Red reward pays (older probes have no gate)
        div = per_instruction_diversity(rs, embed)["after"]
        grids[arm] = {"success": success.reshape(n, -1), "rewarded_harm": rewarded.reshape(n, -1),
                      "vendi": div["vendi"], "self_bleu": div["self_bleu"]}
    for measure in ("success", "rewarded_harm", "vendi", "self_bleu"):
        a, b = (grids[arm][measure].reshape(len(grids[arm][measure]), -1) for arm in (arm_a, arm_b))
        keep = ~(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1))
        figures[measure] = {"a": float(a[keep].mean()), "b": float(b[keep].mean()),
                            "difference": paired_defined_difference(a, b)}
    return figures


def probe_arm(arm: str, args) -> dict:
    from llmsafety.dart import DARTConfig
    from llmsafety.dart.iteration import RunContext, _category_names, phase_seed
    from llmsafety.dart.red import build_red_dataset
    from llmsafety.dart.rewards import RolloutScorer, _rewarded_harm
    from llmsafety.data import load_seed_attacks
    from llmsafety.judges.request import HarmfulRequestHead
    from llmsafety.models import generate

    arm_dir = args.results / arm
    adapter = args.scratch / arm / "iter_1" / "red_adapter"
    if not adapter.exists():
        raise SystemExit(f"no trained Red adapter at {adapter}: run benchmarks/red_learning.py --arms {arm} "
                         f"--scratch {args.scratch} first (the adapter stays in the scratch folder)")
    config = DARTConfig.from_dict(json.loads((arm_dir / "config.json").read_text()))
    seed = phase_seed(config.seed, "red_1")  # the red phase's own seed: the same instructions it trained on
    dataset = build_red_dataset(load_seed_attacks(split="train"), config.red_steps * config.red_prompts_per_step,
                                config.red_examples_per_prompt, seed, _category_names())
    ctx = RunContext(config, Path("runs/red_probe") / arm, progress=False)
    target = ctx.load_model("target", args.target_adapter)

    def greedy_reply(attacks):
        return generate(target, attacks, max_new_tokens=config.target_max_new_tokens, temperature=0,
                        batch_size=config.batch_size, progress=False)

    rows, grids = [], {}
    for which, red_adapter in (("before", None), ("after", adapter)):
        red = ctx.load_model("red", red_adapter)
        completions = generate(red, list(dataset["prompt"]), max_new_tokens=config.red_max_new_tokens,
                               temperature=config.red_temperature, top_p=config.red_top_p, batch_size=config.batch_size,
                               seed=2024, num_return_sequences=args.samples, progress=f"{arm}: red {which}")
        del red
        scorer = RolloutScorer(reply_fn=greedy_reply, judge=ctx.judge, embed_fn=ctx.embed,
                               archive_embeddings=np.zeros((0, ctx.embed(["probe"]).shape[1]), dtype=np.float32),
                               min_attack_words=config.min_attack_words, goal_weight=config.goal_weight,
                               goal_min_relevance=config.goal_min_relevance,
                               request_weight=config.request_gate_weight,
                               request_fn=HarmfulRequestHead() if config.request_gate_weight > 0 else None)
        flat = [c for per in completions for c in per]
        index = [i for i in range(len(dataset)) for _ in range(args.samples)]
        records = scorer.score(flat, category=[dataset["category"][i] for i in index],
                               goal=[dataset["goal"][i] for i in index])
        success = np.array([r.harm is not None and r.harm >= config.harm_threshold for r in records], dtype=float)
        rewarded = np.array([_rewarded_harm(r) for r in records])
        grids[which] = (success.reshape(len(dataset), args.samples), rewarded.reshape(len(dataset), args.samples))
        rows += [{"model": which, "instruction": i, "category": dataset["category"][i], "attack": r.attack,
                  "reply": r.reply, "harm": r.harm, "on_goal": r.on_goal, "degeneracy": r.degeneracy,
                  **({"harmful_request": r.harmful_request, "request_gate": r.request_gate}
                     if r.request_gate is not None else {})}
                 for i, r in zip(index, records)]
    figures = {"arm": arm, "instructions": len(dataset), "samples_per_instruction": args.samples,
               "target_adapter": str(args.target_adapter) if args.target_adapter else None, "target_decoding": "greedy",
               "success_before": float(grids["before"][0].mean()), "success_after": float(grids["after"][0].mean()),
               "success_difference": paired_instruction_difference(grids["before"][0], grids["after"][0]),
               "rewarded_harm_before": float(grids["before"][1].mean()),
               "rewarded_harm_after": float(grids["after"][1].mean()),
               "rewarded_harm_difference": paired_instruction_difference(grids["before"][1], grids["after"][1]),
               **diversity_figures(rows, ctx.embed)}
    (arm_dir / "probe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (arm_dir / "probe.json").write_text(json.dumps(figures, indent=1))
    return figures


def summary_line(f: dict) -> str:
    d, h = f["success_difference"], f["rewarded_harm_difference"]
    line = (f"{f['arm']}: success {f['success_before']:.1%} -> {f['success_after']:.1%}, {100 * d[0]:+.1f} points "
            f"[{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]; rewarded harm {f['rewarded_harm_before']:.3f} -> "
            f"{f['rewarded_harm_after']:.3f} ({h[0]:+.3f} [{h[1]:+.3f}, {h[2]:+.3f}])")
    for measure, name in (("vendi", "Vendi"), ("self_bleu", "self-BLEU")):
        if f"{measure}_difference" in f:
            v = f[f"{measure}_difference"]
            line += (f"; {name} per instruction {f[measure + '_before']:.2f} -> {f[measure + '_after']:.2f} "
                     f"({v[0]:+.2f} [{v[1]:+.2f}, {v[2]:+.2f}])")
    return line


def comparison_line(c: dict) -> str:
    parts = []
    for measure, name, scale, fmt in (("success", "success", 100, "+.1f"), ("rewarded_harm", "rewarded harm", 1, "+.3f"),
                                      ("vendi", "Vendi", 1, "+.2f"), ("self_bleu", "self-BLEU", 1, "+.2f")):
        m = c[measure]
        d = [scale * x for x in m["difference"]]
        parts.append(f"{name} {scale * m['b']:{fmt[1:]}} vs {scale * m['a']:{fmt[1:]}}, "  # B first, as in "B minus A"
                     f"{d[0]:{fmt}} [{d[1]:{fmt}}, {d[2]:{fmt}}]")
    return f"{c['b']} minus {c['a']} (trained models): " + "; ".join(parts)


def write_report(results: Path, compare: list[str] = (), embed=None) -> str:
    """RESULTS/red_probe.md: one line per arm that has a probe.json (diversity figures added from
    probe.jsonl where missing), and one per saved comparison (RESULTS/probe_comparisons.json)."""
    if embed is None:  # MiniLM, loaded on the first call: a report with every figure saved needs none
        embedder = []

        def embed(texts):
            if not embedder:
                from llmsafety.models import load_embedder

                embedder.append(load_embedder())
            return embedder[0].encode(texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    lines = []
    for path in sorted(results.glob("*/probe.json")):
        figures = json.loads(path.read_text())
        if "vendi_difference" not in figures:
            rows = [json.loads(line) for line in (path.parent / "probe.jsonl").read_text().splitlines()]
            figures.update(diversity_figures(rows, embed))
            path.write_text(json.dumps(figures, indent=1))
        lines.append(f"- {summary_line(figures)}")
    saved = results / "probe_comparisons.json"
    comparisons = json.loads(saved.read_text()) if saved.exists() else {}
    for pair in compare:
        arm_a, _, arm_b = pair.partition(":")
        comparisons[pair] = compare_trained(results, arm_a, arm_b, embed)
    if comparisons:
        saved.write_text(json.dumps(comparisons, indent=1))
    text = ["# The initial vs the trained Red model on the same instructions (benchmarks/red_probe.py)", "",
            "Training judge; the fixed Target answers greedily; CIs paired over instructions. Vendi and self-BLEU: "
            "the diversity of each instruction's samples (Vendi higher, self-BLEU lower = more diverse).", "", *lines, ""]
    if comparisons:
        text += ["## Trained models side by side (same instructions, paired)", "",
                 *[f"- {comparison_line(c)}" for c in comparisons.values()], ""]
    (results / "red_probe.md").write_text("\n".join(text))
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", default="cpu_study,cpu_study_greedy_reward")
    parser.add_argument("--samples", type=int, default=8, help="attacks sampled per instruction and model")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/red_learning_rebuilt_target"))
    parser.add_argument("--scratch", type=Path, default=Path("runs/red_learning"))
    parser.add_argument("--target-adapter", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("--untuned-target", action="store_true", help="the arms attacked the untuned Target (no adapter)")
    parser.add_argument("--compare", default="", help="A:B[,C:D]: arm B's trained model minus arm A's, paired")
    parser.add_argument("--report-only", action="store_true", help="only rewrite RESULTS/red_probe.md")
    args = parser.parse_args()
    compare = [c for c in args.compare.split(",") if c]
    for pair in compare:
        if pair.count(":") != 1 or not all(pair.split(":")):
            raise SystemExit(f"--compare {pair!r}: write two arm names as A:B")
    if args.report_only:
        print(write_report(args.results, compare))
        return
    if args.untuned_target:
        args.target_adapter = None
    elif not args.target_adapter.exists():
        raise SystemExit(f"no Target adapter at {args.target_adapter}: pass the one the arms ran against")
    for arm in [a for a in args.arms.split(",") if a]:
        t0 = time.perf_counter()
        print(f"{summary_line(probe_arm(arm, args))}; {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    print(write_report(args.results, compare))


if __name__ == "__main__":
    main()
