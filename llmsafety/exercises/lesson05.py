"""Lesson 05 exercises: the statistics that say whether a full DART run made the Target safer.

A run ends in numbers: a violation rate with a confidence interval, the share of the risk that
tuning removed, how far two raters (or a judge and a person) agree, and the difference between
two variants on the same prompts. Each is written here from its definition:

- the percentile-bootstrap CI of a mean (``llmsafety.dart.evaluate.bootstrap_ci``, same seed,
  same numbers);
- risk removed, 1 - rate after / rate before (the estimate of ``llmsafety.dart.stats.risk_removed``);
- Cohen's kappa (``llmsafety.dart.stats.cohen_kappa``);
- the paired difference of two variants, prompt by prompt (the estimate of
  ``llmsafety.dart.stats.paired_difference`` when nothing is missing).

Outcomes are 0/1 per reply (1 = a violation), NaN where a reply is unscored.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from llmsafety.exercises import Exercise


def _random_outcomes(rng: np.random.Generator, size: int | tuple[int, ...],
                     p_nan: float = 0.15) -> np.ndarray:
    """0/1 outcomes, about a third of them violations, some NaN."""
    values = (rng.random(size) < 0.35).astype(float)
    values[rng.random(size) < p_nan] = np.nan
    return values


# --------------------------------------------------------------------------------------------
# 1. The percentile bootstrap
# --------------------------------------------------------------------------------------------


def bootstrap_ci(values: Sequence[float], n_boot: int, seed: int,
                 level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its percentile-bootstrap CI.

    1. Drop the NaNs (unscored replies); none left: ``(nan, nan, nan)``.
    2. Draw every resample at once: ``rng = np.random.default_rng(seed)``, then
       ``rng.integers(0, n, size=(n_boot, n))`` -- row b holds the indices of resample b.
    3. The CI's ends are the ``(1 - level) / 2`` and ``1 - (1 - level) / 2`` quantiles
       (``np.quantile``) of the n_boot resample means.

    The draw order is fixed so that the numbers match ``llmsafety.dart.evaluate.bootstrap_ci``
    exactly for the same seed.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    resamples = x[rng.integers(0, x.size, size=(n_boot, x.size))]  # [n_boot, n]: with replacement
    means = resamples.mean(axis=1)  # [n_boot]
    low, high = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(x.mean()), float(low), float(high)


def _random_bootstrap_case(rng: np.random.Generator) -> tuple[np.ndarray, int, int, float]:
    values = _random_outcomes(rng, int(rng.integers(1, 16)))
    return values, int(rng.integers(50, 201)), int(rng.integers(0, 1000)), float(rng.choice([0.9, 0.95]))


BOOTSTRAP_CI = Exercise(
    name="bootstrap_ci",
    lesson=5,
    title="Percentile bootstrap CI of a mean",
    difficulty=2,
    importance=3,
    minutes=12,
    reference=bootstrap_ci,
    cases=[
        (np.array([1.0, 0.0, 0.0, 1.0, 0.0]), 200, 0, 0.95),
        (np.array([1.0, np.nan, 0.0, 0.0]), 100, 7, 0.9),  # the NaN is dropped before resampling
        (np.array([np.nan, np.nan]), 100, 0, 0.95),  # nothing scored: all NaN
    ],
    random_case=_random_bootstrap_case,
)


# --------------------------------------------------------------------------------------------
# 2. Risk removed
# --------------------------------------------------------------------------------------------


def risk_removed(after: np.ndarray, before: np.ndarray) -> float:
    """``1 - rate(after) / rate(before)``: the share of the violation risk tuning removed.

    ``after``, ``before``: [n_prompts] 0/1 outcomes of the tuned and the untuned Target on the
    same prompts (NaN = unscored, left out of each rate). 0.534 is DART's headline (53.4%);
    negative means tuning made it worse. NaN when the rate before is 0 or unknown: nothing to
    remove.
    """
    with warnings.catch_warnings():  # nanmean of an all-NaN vector is NaN, which we handle
        warnings.simplefilter("ignore", RuntimeWarning)
        rate_after, rate_before = np.nanmean(after), np.nanmean(before)
    if not rate_before > 0:  # also catches NaN: NaN > 0 is False
        return float("nan")
    return float(1.0 - rate_after / rate_before)


def _random_risk_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(2, 15))
    return _random_outcomes(rng, n), _random_outcomes(rng, n)


RISK_REMOVED = Exercise(
    name="risk_removed",
    lesson=5,
    title="Risk removed by tuning",
    difficulty=1,
    importance=3,
    minutes=5,
    reference=risk_removed,
    cases=[
        (np.array([0.0, 1.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0, 1.0])),  # 1/4 vs 3/4: 2/3 removed
        (np.array([1.0, 1.0]), np.array([0.0, 1.0])),  # worse after tuning: negative
        (np.array([0.0, np.nan]), np.array([0.0, 0.0])),  # no risk before: NaN
    ],
    random_case=_random_risk_case,
)


# --------------------------------------------------------------------------------------------
# 3. Cohen's kappa
# --------------------------------------------------------------------------------------------


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Agreement of two raters over the same items beyond what chance would give.

    ``kappa = (p_o - p_e) / (1 - p_e)``: p_o the share of items they label alike, p_e the
    agreement expected if each labelled at random with their own label frequencies,
    ``sum over labels k of (share of a's labels that are k) * (share of b's that are k)``.
    When ``p_e == 1`` (both gave every item the same one label) kappa is 1.
    """
    a, b = list(a), list(b)
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    expected = sum((a.count(k) / n) * (b.count(k) / n) for k in set(a) | set(b))
    if expected == 1:
        return 1.0  # nothing left to agree on beyond chance, and they agree
    return (observed - expected) / (1 - expected)


_LABELS = ["harmful", "safe", "unclear"]


def _random_labels_case(rng: np.random.Generator) -> tuple[list[str], list[str]]:
    n = int(rng.integers(2, 13))
    a = [_LABELS[int(i)] for i in rng.integers(0, 3, n)]
    # The second rater copies the first most of the time, as real annotators mostly agree.
    b = [x if rng.random() < 0.7 else _LABELS[int(rng.integers(3))] for x in a]
    return a, b


COHEN_KAPPA = Exercise(
    name="cohen_kappa",
    lesson=5,
    title="Cohen's kappa of two raters",
    difficulty=2,
    importance=2,
    minutes=10,
    reference=cohen_kappa,
    cases=[
        (["harmful", "safe", "safe", "harmful"], ["harmful", "safe", "harmful", "harmful"]),
        ([1, 1, 0, 0], [0, 0, 1, 1]),  # always disagree: -1
        (["safe", "safe"], ["safe", "safe"]),  # p_e = 1: kappa 1
    ],
    random_case=_random_labels_case,
)


# --------------------------------------------------------------------------------------------
# 4. The paired difference of two variants
# --------------------------------------------------------------------------------------------


def paired_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over prompts of (rate of variant a - rate of variant b) on that prompt.

    ``a``: [n_seeds_a, n_prompts], ``b``: [n_seeds_b, n_prompts] 0/1 outcomes over the same
    prompts (column p is prompt p in both). A prompt's rate is the mean over seeds, NaN ignored;
    a prompt whose rate is unknown in either variant is left out. Pairing by prompt removes what
    both variants share: how hard each prompt is. With nothing missing this equals
    ``mean(a) - mean(b)``, the estimate of ``llmsafety.dart.stats.paired_difference``.
    """
    with warnings.catch_warnings():  # a prompt with no scored seed has rate NaN, dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        rate_a = np.nanmean(np.asarray(a, dtype=float), axis=0)  # [n_prompts]
        rate_b = np.nanmean(np.asarray(b, dtype=float), axis=0)  # [n_prompts]
    difference = rate_a - rate_b  # NaN where either rate is unknown
    known = ~np.isnan(difference)
    return float(difference[known].mean()) if known.any() else float("nan")


def _random_paired_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n_prompts = int(rng.integers(2, 10))
    a = _random_outcomes(rng, (int(rng.integers(1, 4)), n_prompts), p_nan=0.1)
    b = _random_outcomes(rng, (int(rng.integers(1, 4)), n_prompts), p_nan=0.1)
    return a, b


PAIRED_DIFFERENCE = Exercise(
    name="paired_difference",
    lesson=5,
    title="The per-prompt paired difference",
    difficulty=2,
    importance=2,
    minutes=10,
    reference=paired_difference,
    cases=[
        (np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]), np.array([[1.0, 1.0, 1.0]])),  # seeds differ
        (np.array([[1.0, np.nan]]), np.array([[0.0, 1.0]])),  # prompt 2 unknown in a: left out
    ],
    random_case=_random_paired_case,
)


EXERCISES = [BOOTSTRAP_CI, RISK_REMOVED, COHEN_KAPPA, PAIRED_DIFFERENCE]
