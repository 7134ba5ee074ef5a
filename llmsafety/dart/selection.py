"""Active-learning data selection: which attacks the Target is safety-tuned on this iteration.

DART's abstract says the Target is made safer through *active-learning data selection*; the rule
is not given, so ours is written here. Inputs are harm scores of K sampled Target replies per
attack (shape ``[n_attacks, K]``, NaN where unscored).

- ``uncertainty`` (DART, default): prefer attacks whose K verdicts disagree or sit near the
  threshold: the Target sometimes fails and sometimes not, so a little training flips it. Score =
  mean binary entropy of the harm probabilities + the variance of the binarised verdicts;
  ties broken by mean harm.
- ``failure`` (MART, Ge et al. 2023, arXiv 2311.07689): attacks with mean harm >= tau, most
  harmful first, then the most harmful of the rest until the budget is full. MART itself trains
  on its failures only (``failure_only``); filling the budget gives the baseline as many
  examples as DART, so a difference between them is not a difference in data size.
- ``random``: a uniform sample (ablation).
"""

from __future__ import annotations

import warnings

import numpy as np

from llmsafety.dart.config import SELECTORS


def binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def uncertainty_scores(harm_samples: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per attack: mean entropy of its K harm probabilities + variance of its K verdicts (0..1.25)."""
    harm = np.asarray(harm_samples, dtype=float)
    if harm.ndim != 2:
        raise ValueError(f"harm_samples must have shape [n_attacks, K], got {harm.shape}")
    verdicts = np.where(np.isnan(harm), np.nan, (harm >= threshold).astype(float))
    with warnings.catch_warnings():  # an all-NaN row (never scored) is expected: it scores -1
        warnings.simplefilter("ignore", RuntimeWarning)
        entropy = np.nanmean(binary_entropy(harm), axis=1)
        disagreement = np.nanvar(verdicts, axis=1)
    return np.nan_to_num(entropy + disagreement, nan=-1.0)


def select_for_safety_tuning(
    harm_samples: np.ndarray,
    *,
    strategy: str = "uncertainty",
    budget: int,
    threshold: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Indices of the attacks to tune the Target on, at most ``budget`` of them, best first.

    ``harm_samples``: ``[n_attacks, K]`` harm probabilities (NaN = unscored; an attack with no
    scored reply is never selected by ``uncertainty`` or ``failure``).
    """
    if strategy not in SELECTORS:
        raise ValueError(f"strategy={strategy!r} must be one of {', '.join(SELECTORS)}")
    if not isinstance(budget, (int, np.integer)) or budget < 0:
        raise ValueError(f"budget={budget!r} must be an integer >= 0")
    harm = np.asarray(harm_samples, dtype=float)
    if harm.ndim == 1:
        harm = harm[:, None]
    if harm.ndim != 2:
        raise ValueError(f"harm_samples must have shape [n_attacks, K], got {harm.shape}")
    n = harm.shape[0]
    scored = ~np.all(np.isnan(harm), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_harm = np.where(scored, np.nanmean(np.where(scored[:, None], harm, 0.0), axis=1), np.nan)

    if strategy == "random":
        rng = np.random.default_rng(seed)
        return rng.permutation(n)[: min(budget, n)]
    if strategy in ("failure", "failure_only"):
        candidates = np.flatnonzero(scored & (mean_harm >= threshold))
        if strategy == "failure":  # every scored attack; the failures sort first by their harm anyway
            candidates = np.flatnonzero(scored)
        order = candidates[np.argsort(-mean_harm[candidates], kind="stable")]
        return order[:budget]
    # uncertainty: lexicographic sort, uncertainty first, then mean harm (both descending)
    unc = uncertainty_scores(harm, threshold)
    candidates = np.flatnonzero(scored)
    order = candidates[np.lexsort((-mean_harm[candidates], -unc[candidates]))]
    return order[:budget]
