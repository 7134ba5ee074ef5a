"""DART: Deep Adversarial Automated Red Teaming (Jiang et al. 2024, arXiv 2407.03876v1).

A Red LLM and a Target LLM take turns over iterations. The Red LLM is trained with RL to write
attacks; the Target is tuned each iteration to answer them safely.

What comes from the paper (its abstract; no code was released and the body gives few numbers):

- the Red LLM and the Target LLM interact over iterations, the Red LLM adjusting its attacks to
  the Target's replies;
- the Red LLM is rewarded for *global diversity*: how different an attack is from the attacks
  of all earlier iterations, not only from its own batch;
- the Target is made safer each iteration through *active-learning data selection*;
- the headline: 53.4% of the instruction-tuned Target's violation risk removed on Anthropic
  Harmless (the authors' MART re-implementation: 41.7%).

Our choices (each one a field of :class:`DARTConfig`, see its comments):

- RL algorithm: GRPO (TRL's GRPOTrainer, ``red_steps`` steps an iteration) on a LoRA adapter, KL
  to the initial Red model through the trainer's ``beta``. TRL 1.16 has no PPO.
- Reward = harm + lambda * global novelty - mu * degeneracy. Harm: the judge's harm probability of
  the Target's (sampled) reply. Novelty: 1 - max cosine similarity (MiniLM embeddings) to every
  attack of earlier iterations, as in curiosity-driven red teaming (Hong et al. 2024, arXiv
  2402.19464). Degeneracy: too short or mostly repeated words.
- Red instructions: one taxonomy category each with a few seed attacks of it (few-shot), so each
  attack keeps a category.
- Active learning: K sampled replies per attack; select the attacks whose verdicts are most
  uncertain (entropy + disagreement), within a budget. MART-style selection instead keeps the
  failures (harm >= tau; Ge et al. 2023, arXiv 2311.07689).
- Safe replies: context distillation, the Target's own reply under a safety system prompt, kept
  when the judge scores it safe and it declines; else a refuse-and-help reply. Benign prompts
  with the Target's own helpful replies are mixed in against over-refusal. LoRA SFT (TRL's
  SFTTrainer).
- Evaluation: greedy replies to held-out hh-rlhf harmless test prompts and the seed attacks'
  eval split, violation = harm >= tau, bootstrap 95% CI; over-refusal on benign prompts.

Variants (``DARTConfig.variant``): ``dart``, ``mart`` (no diversity term, failure selection),
``no_diversity``, ``random_selection``, and the controls ``refusal_sft`` and ``system_prompt``.

Where things are: :mod:`~llmsafety.dart.iteration` is one iteration top to bottom (red, target,
eval phases as plain functions); :mod:`~llmsafety.dart.loop` orders, resumes and checks phases;
:mod:`~llmsafety.dart.record` is the attack record they share; :mod:`~llmsafety.dart.rewards` the
reward terms; :mod:`~llmsafety.dart.red`, :mod:`~llmsafety.dart.target`,
:mod:`~llmsafety.dart.selection`, :mod:`~llmsafety.dart.evaluate` the building blocks.
"""

from llmsafety.dart.config import PRESETS, VARIANTS, DARTConfig
from llmsafety.dart.eval_sets import build_eval_sets
from llmsafety.dart.evaluate import bootstrap_ci, evaluate_target
from llmsafety.dart.iteration import build_judge
from llmsafety.dart.loop import DARTResult, load_result, phase_names, run_dart, share_untuned_evaluation
from llmsafety.dart.record import AttackRecord
from llmsafety.dart.rewards import RolloutScorer, degeneracy_penalty, extract_attack, reward_functions
from llmsafety.dart.selection import select_for_safety_tuning, uncertainty_scores

__all__ = [
    "DARTConfig", "PRESETS", "VARIANTS", "DARTResult", "run_dart", "load_result", "phase_names", "share_untuned_evaluation",
    "evaluate_target", "bootstrap_ci", "build_eval_sets", "build_judge", "AttackRecord", "RolloutScorer",
    "reward_functions", "extract_attack", "degeneracy_penalty", "select_for_safety_tuning",
    "uncertainty_scores",
]
