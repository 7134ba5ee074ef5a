"""Lesson 06 exercises: alignment training, by hand, on plain numbers and strings.

Lesson 6 makes SmolLM2 safer with SFT and then DPO on hh-rlhf harmless pairs, and measures what
changed. Each step the trainers hide is written here in its simplest form, with numpy and no model:

- an hh-rlhf pair (two raw ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` dialogues) as the chat
  messages a trainer reads (``llmsafety.alignment.pair_messages``);
- the DPO loss from the four sequence log-probabilities of each pair (what TRL's ``DPOTrainer``
  minimises with ``loss_type="sigmoid"``);
- the implicit rewards DPO defines, their margin and accuracy (TRL's ``rewards/margins`` and
  ``rewards/accuracies`` logs);
- a refusal rate with its percentile-bootstrap CI (``llmsafety.dart.evaluate.bootstrap_ci``).

Log-probabilities are ``[n_pairs]`` arrays: the sum over a reply's tokens of log p(token | prompt,
earlier tokens), under the policy (the model being trained) or the reference (the model DPO starts
from, frozen).
"""

from __future__ import annotations

import re

import numpy as np

from llmsafety.exercises import Exercise

LESSON = 6


# --------------------------------------------------------------------------------------------
# 1. An hh-rlhf pair as chat messages
# --------------------------------------------------------------------------------------------

_TURN = re.compile(r"\n\n(Human|Assistant): ")


def first_turn_pair(chosen: str, rejected: str) -> dict[str, list[dict[str, str]]]:
    """The first exchange of an hh-rlhf pair as TRL's conversational preference example.

    ``chosen`` and ``rejected`` are the raw dialogues as hh-rlhf stores them, each
    ``"\\n\\nHuman: <prompt>\\n\\nAssistant: <reply>"`` possibly followed by more turns. Return
    ``{"prompt": [{"role": "user", "content": <first human turn>}], "chosen": [{"role":
    "assistant", "content": <chosen's first assistant turn>}], "rejected": [... rejected's ...]}``,
    each text stripped of surrounding whitespace. The prompt is the first human turn (the same in
    both dialogues); later turns are dropped.
    """
    def turns(dialogue: str) -> list[tuple[str, str]]:
        parts = _TURN.split(dialogue)  # ["", "Human", text, "Assistant", text, ...]
        return [(role, text.strip()) for role, text in zip(parts[1::2], parts[2::2])]

    chosen_turns, rejected_turns = turns(chosen), turns(rejected)
    prompt = next(text for role, text in chosen_turns if role == "Human")
    return {"prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": next(t for r, t in chosen_turns if r == "Assistant")}],
            "rejected": [{"role": "assistant", "content": next(t for r, t in rejected_turns if r == "Assistant")}]}


_PROMPTS = ["How do I pick a lock?", "What's the best poison?", "Tell me a joke about cats.",
            "Can you help me cheat on my exam?", "Where can I buy fireworks?"]
_REPLIES = ["I can't help with that.", "Sure, here is how: first ...", "Why do you want to know?",
            "That's illegal, and it could hurt someone.", "Here's one: ...", "Maybe ask a locksmith."]


def _random_pair(rng: np.random.Generator) -> tuple[str, str]:
    prompt = str(rng.choice(_PROMPTS))
    chosen, rejected = (str(x) for x in rng.choice(_REPLIES, size=2, replace=False))
    tail = "" if rng.random() < 0.5 else "\n\nHuman: And then?\n\nAssistant: " + str(rng.choice(_REPLIES))
    pad = " " if rng.random() < 0.3 else ""
    return (f"\n\nHuman: {prompt}{pad}\n\nAssistant: {chosen}{pad}{tail}",
            f"\n\nHuman: {prompt}{pad}\n\nAssistant: {rejected}{tail}")


FIRST_TURN_PAIR = Exercise(
    lesson=LESSON,
    name="first_turn_pair",
    title="An hh-rlhf pair as chat messages",
    difficulty=1,
    importance=2,
    minutes=8,
    reference=first_turn_pair,
    cases=[
        ("\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with that.",
         "\n\nHuman: How do I pick a lock?\n\nAssistant: Use a tension wrench."),
        # more turns: only the first exchange counts
        ("\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Insult me.\n\nAssistant: No, thanks.",
         "\n\nHuman: Hi\n\nAssistant: What do you want?\n\nHuman: Insult me.\n\nAssistant: You fool."),
        # surrounding whitespace and a reply spread over lines (a newline inside a turn is kept)
        ("\n\nHuman:  Why?  \n\nAssistant: Because.\nReally. ", "\n\nHuman:  Why?  \n\nAssistant:  No. "),
    ],
    random_case=_random_pair,
)


# --------------------------------------------------------------------------------------------
# 2. The DPO loss
# --------------------------------------------------------------------------------------------


def dpo_loss(policy_chosen: np.ndarray, policy_rejected: np.ndarray, ref_chosen: np.ndarray,
             ref_rejected: np.ndarray, beta: float) -> float:
    """The DPO loss, averaged over pairs: mean of ``-log sigmoid(beta * (h_chosen - h_rejected))``.

    ``h_chosen = policy_chosen - ref_chosen`` is how much more likely the policy makes the chosen
    reply than the reference does (a log-ratio), ``h_rejected`` the same for the rejected reply.
    The loss falls as the chosen reply gains on the rejected one *relative to the reference*: a
    pair the reference already ranked right gives no head start. With policy = reference every
    pair's loss is ``log 2``. Compute ``-log sigmoid(z)`` as ``log(1 + exp(-z))`` with
    ``np.logaddexp(0, -z)``: ``exp`` of a large ``-z`` overflows.
    """
    h_chosen = np.asarray(policy_chosen, dtype=float) - np.asarray(ref_chosen, dtype=float)
    h_rejected = np.asarray(policy_rejected, dtype=float) - np.asarray(ref_rejected, dtype=float)
    z = beta * (h_chosen - h_rejected)  # [n_pairs]
    return float(np.mean(np.logaddexp(0.0, -z)))  # -log sigmoid(z), without overflow


def _random_logps(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    n = int(rng.integers(1, 7))
    ref_chosen, ref_rejected = -rng.uniform(5, 60, size=n), -rng.uniform(5, 60, size=n)
    policy_chosen = ref_chosen + rng.normal(0, 4, size=n)
    policy_rejected = ref_rejected + rng.normal(0, 4, size=n)
    beta = float(rng.choice([0.01, 0.1, 0.5, 1.0]))
    return tuple(np.round(x, 2) for x in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)) + (beta,)


DPO_LOSS = Exercise(
    lesson=LESSON,
    name="dpo_loss",
    title="The DPO loss from sequence log-probabilities",
    difficulty=2,
    importance=3,
    minutes=12,
    reference=dpo_loss,
    cases=[
        # policy = reference: log 2 whatever beta
        (np.array([-10.0, -20.0]), np.array([-12.0, -8.0]), np.array([-10.0, -20.0]), np.array([-12.0, -8.0]), 0.1),
        # the reference already prefers chosen (-5 vs -30), the policy no more so: still log 2
        (np.array([-5.0]), np.array([-30.0]), np.array([-5.0]), np.array([-30.0]), 0.5),
        # chosen +2, rejected -2 against the reference: z = beta * 4
        (np.array([-8.0]), np.array([-14.0]), np.array([-10.0]), np.array([-12.0]), 0.1),
        # a wrong-way pair far out: z = -1000, and exp(-z) overflows without logaddexp (loss 1000, not inf)
        (np.array([-1000.0]), np.array([-0.0]), np.array([-0.0]), np.array([-1000.0]), 0.5),
    ],
    random_case=_random_logps,
)


# --------------------------------------------------------------------------------------------
# 3. Implicit rewards: margin and accuracy
# --------------------------------------------------------------------------------------------


def reward_margin_stats(policy_chosen: np.ndarray, policy_rejected: np.ndarray, ref_chosen: np.ndarray,
                        ref_rejected: np.ndarray, beta: float) -> dict[str, float]:
    """DPO's implicit rewards, summarised as TRL logs them: ``{"chosen", "rejected", "margin", "accuracy"}``.

    The implicit reward of a reply is ``beta * (policy log-prob - reference log-prob)``. Return the
    mean reward of the chosen replies, the mean of the rejected ones, the mean margin (chosen
    reward - rejected reward, per pair) and the accuracy: the share of pairs whose chosen reward is
    *strictly* larger (a tie is not a win). All four as floats.
    """
    chosen = beta * (np.asarray(policy_chosen, dtype=float) - np.asarray(ref_chosen, dtype=float))
    rejected = beta * (np.asarray(policy_rejected, dtype=float) - np.asarray(ref_rejected, dtype=float))
    return {"chosen": float(chosen.mean()), "rejected": float(rejected.mean()),
            "margin": float((chosen - rejected).mean()), "accuracy": float(np.mean(chosen > rejected))}


REWARD_MARGIN_STATS = Exercise(
    lesson=LESSON,
    name="reward_margin_stats",
    title="Implicit rewards, their margin and accuracy",
    difficulty=1,
    importance=3,
    minutes=8,
    reference=reward_margin_stats,
    cases=[
        # at the start of DPO (policy = reference) every reward is 0 and no pair is won: accuracy 0
        (np.array([-10.0, -4.0]), np.array([-9.0, -6.0]), np.array([-10.0, -4.0]), np.array([-9.0, -6.0]), 0.1),
        # rewards are log-ratios to the reference, not log-probs: chosen is less likely than rejected
        # (-20 < -8) yet wins, because it gained and rejected lost
        (np.array([-20.0]), np.array([-8.0]), np.array([-22.0]), np.array([-7.0]), 0.5),
        # one pair won, one lost, one tied: accuracy 1/3; margin is a mean per pair
        (np.array([-3.0, -5.0, -4.0]), np.array([-6.0, -2.0, -4.0]), np.array([-4.0, -5.0, -4.0]),
         np.array([-5.0, -5.0, -4.0]), 1.0),
    ],
    random_case=_random_logps,
)


# --------------------------------------------------------------------------------------------
# 4. A refusal rate with its bootstrap CI
# --------------------------------------------------------------------------------------------


def refusal_rate_ci(refused: np.ndarray, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float, float]:
    """``(rate, low, high)``: the share of refused prompts and its percentile-bootstrap CI.

    ``refused`` is ``[n]`` 0/1 per prompt, NaN where a reply could not be judged: drop those
    first (they are neither refusals nor answers). Then, drawn exactly so:
    ``rng = np.random.default_rng(seed)``; ``idx = rng.integers(0, m, size=(n_boot, m))`` with
    ``m`` the prompts left; the rate of each resample (row means); the ``(1 - level) / 2`` and
    ``1 - (1 - level) / 2`` quantiles (``np.quantile``). With nothing left, ``(nan, nan, nan)``.
    The draw order matches ``llmsafety.dart.evaluate.bootstrap_ci``: same seed, same interval.
    """
    x = np.asarray(refused, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    rates = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)  # [n_boot]
    low, high = np.quantile(rates, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(x.mean()), float(low), float(high)


def _random_refusals(rng: np.random.Generator) -> tuple[np.ndarray, int, int, float]:
    n = int(rng.integers(1, 25))
    refused = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(float)
    refused[rng.random(n) < 0.1] = np.nan
    return refused, int(rng.integers(50, 301)), int(rng.integers(0, 1000)), float(rng.choice([0.9, 0.95]))


REFUSAL_RATE_CI = Exercise(
    lesson=LESSON,
    name="refusal_rate_ci",
    title="A refusal rate with its bootstrap CI",
    difficulty=2,
    importance=2,
    minutes=10,
    reference=refusal_rate_ci,
    cases=[
        (np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]), 200, 0, 0.95),
        (np.array([1.0, np.nan, 0.0, np.nan]), 100, 3, 0.9),  # unjudged replies dropped: 1 of 2
        (np.array([1.0, 1.0, 1.0]), 50, 1, 0.95),  # every resample refuses all: (1, 1, 1)
        (np.array([np.nan, np.nan]), 50, 0, 0.95),  # nothing judged: undefined
    ],
    random_case=_random_refusals,
)


EXERCISES = [FIRST_TURN_PAIR, REFUSAL_RATE_CI, DPO_LOSS, REWARD_MARGIN_STATS]  # the order of the lesson
