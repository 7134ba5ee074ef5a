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
Reported per arm: attack success and the rewarded harm (harm x on-goal factor) before and after,
and their differences with a bootstrap CI that resamples instructions (before and after share
them: paired). Every attack, reply and score goes to RESULTS/ARM/probe.jsonl, the figures to
RESULTS/ARM/probe.json. Judge numbers, not human labels. Run by hand.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DEFAULT_TARGET = Path("runs/study/dart_seed0/iter_1/target_adapter")


def paired_instruction_difference(before: np.ndarray, after: np.ndarray, n_boot: int = 4000, seed: int = 0):
    """Mean of after - before over [n_instructions, samples] grids, CI resampling instructions."""
    per_instruction = after.mean(axis=1) - before.mean(axis=1)
    rng = np.random.default_rng(seed)
    boots = [per_instruction[rng.integers(0, len(per_instruction), len(per_instruction))].mean() for _ in range(n_boot)]
    return float(per_instruction.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def probe_arm(arm: str, args) -> dict:
    from llmsafety.dart import DARTConfig
    from llmsafety.dart.iteration import RunContext, _category_names, phase_seed
    from llmsafety.dart.red import build_red_dataset
    from llmsafety.dart.rewards import RolloutScorer, _rewarded_harm
    from llmsafety.data import load_seed_attacks
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
                               goal_min_relevance=config.goal_min_relevance)
        flat = [c for per in completions for c in per]
        index = [i for i in range(len(dataset)) for _ in range(args.samples)]
        records = scorer.score(flat, category=[dataset["category"][i] for i in index],
                               goal=[dataset["goal"][i] for i in index])
        success = np.array([r.harm is not None and r.harm >= config.harm_threshold for r in records], dtype=float)
        rewarded = np.array([_rewarded_harm(r) for r in records])
        grids[which] = (success.reshape(len(dataset), args.samples), rewarded.reshape(len(dataset), args.samples))
        rows += [{"model": which, "instruction": i, "category": dataset["category"][i], "attack": r.attack,
                  "reply": r.reply, "harm": r.harm, "on_goal": r.on_goal, "degeneracy": r.degeneracy}
                 for i, r in zip(index, records)]
    figures = {"arm": arm, "instructions": len(dataset), "samples_per_instruction": args.samples,
               "target_adapter": str(args.target_adapter), "target_decoding": "greedy",
               "success_before": float(grids["before"][0].mean()), "success_after": float(grids["after"][0].mean()),
               "success_difference": paired_instruction_difference(grids["before"][0], grids["after"][0]),
               "rewarded_harm_before": float(grids["before"][1].mean()),
               "rewarded_harm_after": float(grids["after"][1].mean()),
               "rewarded_harm_difference": paired_instruction_difference(grids["before"][1], grids["after"][1])}
    (arm_dir / "probe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (arm_dir / "probe.json").write_text(json.dumps(figures, indent=1))
    return figures


def summary_line(f: dict) -> str:
    d, h = f["success_difference"], f["rewarded_harm_difference"]
    return (f"{f['arm']}: success {f['success_before']:.1%} -> {f['success_after']:.1%}, {100 * d[0]:+.1f} points "
            f"[{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]; rewarded harm {f['rewarded_harm_before']:.3f} -> "
            f"{f['rewarded_harm_after']:.3f} ({h[0]:+.3f} [{h[1]:+.3f}, {h[2]:+.3f}])")


def write_report(results: Path) -> str:
    """RESULTS/red_probe.md: one line per arm that has a probe.json."""
    lines = [f"- {summary_line(json.loads(p.read_text()))}" for p in sorted(results.glob("*/probe.json"))]
    text = "\n".join(["# The initial vs the trained Red model on the same instructions (benchmarks/red_probe.py)", "",
                      "Training judge; the fixed Target answers greedily; CIs paired over instructions.", "", *lines, ""])
    (results / "red_probe.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", default="cpu_study,cpu_study_greedy_reward")
    parser.add_argument("--samples", type=int, default=8, help="attacks sampled per instruction and model")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/red_learning_rebuilt_target"))
    parser.add_argument("--scratch", type=Path, default=Path("runs/red_learning"))
    parser.add_argument("--target-adapter", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("--report-only", action="store_true", help="only rewrite RESULTS/red_probe.md")
    args = parser.parse_args()
    if args.report_only:
        print(write_report(args.results))
        return
    if not args.target_adapter.exists():
        raise SystemExit(f"no Target adapter at {args.target_adapter}: pass the one the arms ran against")
    for arm in [a for a in args.arms.split(",") if a]:
        t0 = time.perf_counter()
        print(f"{summary_line(probe_arm(arm, args))}; {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    write_report(args.results)


if __name__ == "__main__":
    main()
