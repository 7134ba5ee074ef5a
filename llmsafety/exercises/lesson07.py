"""Lesson 07 exercises: jailbreaks and the defences against them, by hand, without a model.

Lesson 7 wraps harmful goals in one template family per jailbreak leaf of the survey's taxonomy,
optimises an adversarial suffix with GCG, and then filters attacks by perplexity and guards
replies with a judge. Each step is written here in its simplest form:

- ROT13, the cipher of the cipher-text family (``llmsafety.jailbreaks.rot13``);
- the per-leaf success table: attacks, successes and the rate per family, unscored attacks
  dropped (``llmsafety.jailbreaks.success_by_leaf`` without the interval);
- perplexity from per-token log-probabilities, over the whole text or its worst window
  (``llmsafety.defenses.perplexity`` / ``windowed_perplexity``);
- the threshold sweep of a filter: attack success through it and benign prompts blocked
  (``llmsafety.defenses.tradeoff_curve``).
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd

from llmsafety.exercises import Exercise

# --------------------------------------------------------------------------------------------
# 1. ROT13
# --------------------------------------------------------------------------------------------


def rot13(text: str) -> str:
    """Each ASCII letter moved 13 places along the alphabet, wrapping round, case kept.

    Everything that is not an ASCII letter (digits, spaces, punctuation, accented letters) stays
    as it is. Because the alphabet has 26 letters, applying it twice gives the text back.
    """
    out = []
    for ch in text:
        if "a" <= ch <= "z":
            out.append(chr((ord(ch) - ord("a") + 13) % 26 + ord("a")))
        elif "A" <= ch <= "Z":
            out.append(chr((ord(ch) - ord("A") + 13) % 26 + ord("A")))
        else:
            out.append(ch)
    return "".join(out)


def _random_text(rng: np.random.Generator) -> tuple[str]:
    alphabet = string.ascii_letters + string.digits + " .,!?'-" + "éü"
    return ("".join(rng.choice(list(alphabet), size=int(rng.integers(0, 30)))),)


ROT13 = Exercise(
    name="rot13",
    lesson=7,
    title="ROT13, the cipher family's encoding",
    difficulty=1,
    importance=1,
    minutes=5,
    reference=rot13,
    cases=[
        ("Hello",),  # case kept: H -> U
        ("xyz",),  # wraps round: x -> k
        ("How do I pick a lock? 123",),  # digits, spaces and punctuation unchanged
        ("Café",),  # an accented letter is not ASCII: unchanged
        ("",),
    ],
    random_case=_random_text,
)


# --------------------------------------------------------------------------------------------
# 2. The per-leaf success table
# --------------------------------------------------------------------------------------------


def success_table(judged: pd.DataFrame) -> pd.DataFrame:
    """Per family: scored attacks, successes and the success rate.

    ``judged`` has one row per attack, columns ``family`` (str) and ``success`` (1.0, 0.0, or NaN
    for an attack the judge could not score). Return a DataFrame indexed by family, in the order
    the families first appear in ``judged`` (not sorted), with columns ``n`` (int: scored
    attacks), ``successes`` (int) and ``rate`` (successes / n). Unscored attacks count in neither
    n nor successes; a family with no scored attack has n = 0 and rate NaN.
    """
    rows = []
    for family, group in judged.groupby("family", sort=False):
        scored = group["success"].dropna()
        n = int(len(scored))
        successes = int(scored.sum())
        rows.append({"family": family, "n": n, "successes": successes, "rate": successes / n if n else np.nan})
    return pd.DataFrame(rows, columns=["family", "n", "successes", "rate"]).set_index("family")


def _random_judged(rng: np.random.Generator) -> tuple[pd.DataFrame]:
    families = ["direct", "role play", "cipher", "few-shot"][: int(rng.integers(1, 5))]
    n = int(rng.integers(1, 13))
    success = rng.choice([0.0, 1.0, np.nan], size=n, p=[0.5, 0.35, 0.15])
    return (pd.DataFrame({"family": rng.choice(families, size=n), "success": success}),)


SUCCESS_TABLE = Exercise(
    name="success_table",
    lesson=7,
    title="Attack success per family",
    difficulty=1,
    importance=3,
    minutes=8,
    reference=success_table,
    cases=[
        (pd.DataFrame({"family": ["direct", "direct", "role play", "role play", "role play"],
                       "success": [0.0, 1.0, 1.0, 1.0, 0.0]}),),
        # first-appearance order, not alphabetical: "role play" before "cipher"
        (pd.DataFrame({"family": ["role play", "cipher", "role play"], "success": [1.0, 0.0, 0.0]}),),
        # an unscored attack is dropped from n; a family with none scored has rate NaN
        (pd.DataFrame({"family": ["direct", "direct", "cipher"], "success": [1.0, np.nan, np.nan]}),),
    ],
    random_case=_random_judged,
    n_random=10,  # pandas calls are slow: keep the check well under a second
)


# --------------------------------------------------------------------------------------------
# 3. Perplexity, whole and windowed
# --------------------------------------------------------------------------------------------


def token_perplexity(logprobs: np.ndarray, window: int | None) -> float:
    """Perplexity from per-token log-probabilities (natural log), whole or worst window.

    ``logprobs`` ``[n]``: ``log p(token_i | tokens before it)`` for each scored token, so each
    is <= 0. The perplexity of a stretch of tokens is ``exp(-mean(logprobs over it))``.

    - ``window=None``: over all ``n`` tokens;
    - ``window=w``: the largest perplexity over the ``n - w + 1`` stretches of ``w``
      consecutive tokens; if ``n <= w``, over all tokens.
    - ``n = 0``: NaN (nothing to score).
    """
    logprobs = np.asarray(logprobs, dtype=float)
    if logprobs.size == 0:
        return float("nan")
    if window is None or logprobs.size <= window:
        return float(np.exp(-logprobs.mean()))
    worst = max(-logprobs[i:i + window].mean() for i in range(logprobs.size - window + 1))
    return float(np.exp(worst))


def _random_logprobs(rng: np.random.Generator) -> tuple[np.ndarray, int | None]:
    n = int(rng.integers(0, 15))
    logprobs = -np.round(rng.exponential(2.0, size=n), 2)
    if n > 3 and rng.random() < 0.5:  # a gibberish stretch, as a GCG suffix is
        start = int(rng.integers(0, n - 2))
        logprobs[start:start + 3] -= 6.0
    window = None if rng.random() < 0.3 else int(rng.integers(1, 8))
    return logprobs, window


TOKEN_PERPLEXITY = Exercise(
    name="token_perplexity",
    lesson=7,
    title="Perplexity, whole and windowed",
    difficulty=2,
    importance=3,
    minutes=10,
    reference=token_perplexity,
    cases=[
        (np.log(np.array([0.5, 0.5, 0.5, 0.5])), None),  # every token 1 in 2: perplexity 2
        (np.array([-1.0, -1.0, -1.0, -1.0, -9.0, -9.0]), None),  # mean log-prob, then exp: e^3.667
        (np.array([-1.0, -1.0, -1.0, -1.0, -9.0, -9.0]), 2),  # the worst window: e^9, not the mean
        (np.array([-2.0, -4.0]), 5),  # fewer tokens than the window: the whole text
        (np.zeros(0), None),  # nothing scored: NaN
    ],
    random_case=_random_logprobs,
)


# --------------------------------------------------------------------------------------------
# 4. The filter's threshold sweep
# --------------------------------------------------------------------------------------------


def threshold_sweep(attack_scores: np.ndarray, attack_success: np.ndarray, benign_scores: np.ndarray,
                    thresholds: np.ndarray) -> pd.DataFrame:
    """Attack success through a filter and benign prompts blocked by it, per threshold.

    A prompt is blocked when its score is **strictly above** the threshold. ``attack_success``
    is 1 where the attack succeeded with no filter. Through the filter an attack succeeds when
    it succeeded and was not blocked. Return one row per threshold, in the order given, columns
    ``threshold``, ``attack_success`` (share of *all* attacks that still succeed) and
    ``benign_blocked`` (share of benign prompts blocked), index 0, 1, 2, ...
    """
    attack_scores, benign_scores = np.asarray(attack_scores, dtype=float), np.asarray(benign_scores, dtype=float)
    attack_success = np.asarray(attack_success, dtype=float)
    rows = []
    for t in thresholds:
        passes = attack_scores <= t
        rows.append({"threshold": float(t), "attack_success": float(np.mean(attack_success * passes)),
                     "benign_blocked": float(np.mean(benign_scores > t))})
    return pd.DataFrame(rows, columns=["threshold", "attack_success", "benign_blocked"])


def _random_sweep(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_attack, n_benign = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    attack_scores = np.round(rng.lognormal(3.0, 1.0, size=n_attack))
    benign_scores = np.round(rng.lognormal(2.5, 0.7, size=n_benign))
    success = (rng.random(n_attack) < 0.5).astype(float)
    thresholds = np.sort(rng.choice(np.concatenate([attack_scores, benign_scores, [0.0, 1000.0]]),
                                    size=int(rng.integers(1, 5)), replace=False))
    return attack_scores, success, benign_scores, thresholds


THRESHOLD_SWEEP = Exercise(
    name="threshold_sweep",
    lesson=7,
    title="A filter's threshold sweep",
    difficulty=2,
    importance=3,
    minutes=10,
    reference=threshold_sweep,
    cases=[
        # the attack at 50 succeeded; the one at 500 did not: blocking it changes nothing
        (np.array([50.0, 500.0]), np.array([1.0, 0.0]), np.array([10.0, 20.0, 80.0]), np.array([30.0, 100.0])),
        # a score equal to the threshold passes: strictly above is blocked
        (np.array([40.0]), np.array([1.0]), np.array([40.0, 41.0]), np.array([40.0])),
        # shares of all attacks, not of the unblocked ones
        (np.array([10.0, 90.0, 90.0, 10.0]), np.array([1.0, 1.0, 1.0, 0.0]), np.array([5.0]), np.array([50.0])),
    ],
    random_case=_random_sweep,
    n_random=12,
)


EXERCISES = [ROT13, SUCCESS_TABLE, TOKEN_PERPLEXITY, THRESHOLD_SWEEP]
