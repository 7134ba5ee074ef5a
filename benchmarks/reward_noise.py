"""How much of the Red reward is the attack, and how much is the Target's sampling?

    python benchmarks/reward_noise.py [--arm cpu_study] [--replies 4] [--target-adapter DIR]
                                      [--results benchmarks/results/red_learning]

GRPO can only learn what the reward says about the attack. During a red phase the Target answers
each attack once, *sampled* (``target_temperature``), and the judge scores that one reply; whether
the attack "succeeds" is then partly the attack and partly the draw of the Target's reply. This
benchmark takes the attacks a red-learning arm already wrote (OUT/ARM/attacks.jsonl), has the same
fixed Target answer each of them ``--replies`` more times at the training temperature and once
greedily, and judges every reply with the training judge. It reports:

- the success rate over attacks and its split into the part that differs between attacks and the
  part that is the Target's draw: the intraclass correlation (ICC(1), one-way ANOVA) of success.
  ICC 1: an attack either always or never succeeds, the reward is all signal; ICC 0: every attack
  succeeds at the same rate, a group's advantages are noise. A one-reply reward's reliability (its
  correlation with the attack's true success rate, squared) is the ICC; the mean of K replies has
  K x ICC / (1 + (K - 1) x ICC) (Spearman-Brown).
- how often the greedy reply (what the evaluation grades) agrees with the majority of the sampled ones.

Every reply and score goes to OUT/ARM/reward_noise.jsonl, the figures to OUT/ARM/reward_noise.json.
Judge numbers (the training judge), not human labels. Run by hand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from llmsafety.dart.stats import intraclass_correlation

DEFAULT_TARGET = Path("runs/study/dart_seed0/iter_1/target_adapter")


def bootstrap_icc(success: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the ICC, resampling attacks."""
    rng = np.random.default_rng(seed)
    values = [intraclass_correlation(success[rng.integers(0, len(success), len(success))]) for _ in range(n_boot)]
    return float(np.nanquantile(values, 0.025)), float(np.nanquantile(values, 0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arm", default="cpu_study", help="an arm of benchmarks/red_learning.py already run")
    parser.add_argument("--replies", type=int, default=4, help="sampled Target replies per attack (>= 2)")
    parser.add_argument("--target-adapter", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/red_learning"))
    args = parser.parse_args()
    if args.replies < 2:
        raise SystemExit(f"--replies {args.replies}: need at least 2 sampled replies per attack to split the variance")
    arm_dir = args.results / args.arm
    if not (arm_dir / "attacks.jsonl").exists():
        raise SystemExit(f"no {arm_dir / 'attacks.jsonl'}: run benchmarks/red_learning.py --arms {args.arm} first")
    if not args.target_adapter.exists():
        raise SystemExit(f"no Target adapter at {args.target_adapter}: the arms were run against it; rebuild it "
                         "(the study's seed-0 dart run up to target_1) or pass --target-adapter")

    from llmsafety.dart import DARTConfig
    from llmsafety.dart.iteration import RunContext
    from llmsafety.models import generate

    config = DARTConfig.from_dict(json.loads((arm_dir / "config.json").read_text()))
    records = [json.loads(line) for line in (arm_dir / "attacks.jsonl").read_text().splitlines()]
    records = [r for r in records if r["attack"] and r["harm"] is not None]
    attacks = [r["attack"] for r in records]
    ctx = RunContext(config, Path("runs/reward_noise"), progress=False)
    target = ctx.load_model("target", args.target_adapter)
    t0 = time.perf_counter()
    sampled = generate(target, attacks, max_new_tokens=config.target_max_new_tokens, temperature=config.target_temperature,
                       batch_size=config.batch_size, seed=1234, num_return_sequences=args.replies, progress=True)
    greedy = generate(target, attacks, max_new_tokens=config.target_max_new_tokens, temperature=0,
                      batch_size=config.batch_size, progress=True)
    flat_prompts = [a for a in attacks for _ in range(args.replies)] + attacks
    flat_replies = [reply for replies in sampled for reply in replies] + greedy
    scores = ctx.judge(flat_prompts, flat_replies).scores
    seconds = time.perf_counter() - t0
    n = len(attacks)
    harm = np.array([np.nan if s is None else s for s in scores], dtype=float)
    sampled_harm = harm[: n * args.replies].reshape(n, args.replies)
    greedy_harm = harm[n * args.replies:]
    keep = ~np.isnan(sampled_harm).any(axis=1) & ~np.isnan(greedy_harm)
    tau = config.harm_threshold
    success = (sampled_harm[keep] >= tau).astype(float)  # [attacks, replies]
    greedy_success = (greedy_harm[keep] >= tau).astype(float)
    icc = intraclass_correlation(success)
    low, high = bootstrap_icc(success)
    majority = (success.mean(axis=1) > 0.5).astype(float)
    tied = success.mean(axis=1) == 0.5
    in_run = np.array([r["harm"] >= tau for r in records], dtype=float)[keep]  # the one reply the red phase saw
    figures = {
        "arm": args.arm, "target_adapter": str(args.target_adapter), "attacks": int(keep.sum()),
        "sampled_replies_per_attack": args.replies, "target_temperature": config.target_temperature,
        "harm_threshold": tau, "seconds": round(seconds, 1),
        "success_rate_sampled": float(success.mean()), "success_rate_greedy": float(greedy_success.mean()),
        "success_rate_in_run": float(in_run.mean()),
        "attacks_always_succeed": int((success.mean(axis=1) == 1).sum()),
        "attacks_never_succeed": int((success.mean(axis=1) == 0).sum()),
        "icc": icc, "icc_95ci": [low, high],
        "reliability_of_mean_of_k": {k: (k * icc / (1 + (k - 1) * icc)) for k in (1, 2, 4, 8)},
        "greedy_agrees_with_sampled_majority": float((greedy_success == majority)[~tied].mean()),
        "greedy_vs_sampled_rate_correlation": float(np.corrcoef(greedy_success, success.mean(axis=1))[0, 1]),
    }
    with open(arm_dir / "reward_noise.jsonl", "w") as f:
        for i, a in enumerate(attacks):
            f.write(json.dumps({"attack": a, "step": records[i]["step"],
                                "sampled": [{"reply": sampled[i][j], "harm": scores[i * args.replies + j]}
                                            for j in range(args.replies)],
                                "greedy": {"reply": greedy[i], "harm": scores[n * args.replies + i]}}) + "\n")
    (arm_dir / "reward_noise.json").write_text(json.dumps(figures, indent=1))
    (arm_dir / "reward_noise.md").write_text(
        f"# Reward noise ({args.arm}: {figures['attacks']} attacks x {args.replies} sampled replies + 1 greedy)\n\n"
        f"- ICC of one sampled reply's success: {icc:.2f} [{low:.2f}, {high:.2f}]; reliability of the mean of 1 / 2 / 4 / 8 "
        f"replies: {' / '.join(f'{v:.2f}' for v in figures['reliability_of_mean_of_k'].values())}\n"
        f"- success sampled {figures['success_rate_sampled']:.1%}, greedy {figures['success_rate_greedy']:.1%}; greedy agrees "
        f"with the sampled majority in {figures['greedy_agrees_with_sampled_majority']:.1%}\n")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
