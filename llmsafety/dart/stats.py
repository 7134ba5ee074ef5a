"""Confidence intervals that respect how a DART study is designed, and agreement between raters.

A study evaluates every variant on the *same* prompts, over several *seeds*. Both are samples: other
seeds would give other Targets, other prompts other rates. So a replicate of the bootstrap draws
seeds with replacement *and* prompts with replacement (a two-way bootstrap of a crossed design:
seeds x prompts), and the statistic is recomputed on that grid. Pooling seeds x prompts into one
list of independent values (what a plain bootstrap does) makes the interval too narrow: three
identical greedy evaluations of the untuned Target would look like three times the data.

Two variants are compared *paired*: the same prompts are drawn for both in each replicate, their
seeds independently (seed 3 of DART has nothing in common with seed 3 of MART but the number).

Values are 0/1 outcomes per (seed, prompt), NaN where a reply is unscored or unlabelled; means
skip NaNs.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

Interval = tuple[float, float, float]  # (estimate, low, high)


def _as_grid(values, name: str) -> np.ndarray:
    grid = np.asarray(values, dtype=float)
    if grid.ndim == 1:
        grid = grid[None, :]  # one seed
    if grid.ndim != 2 or 0 in grid.shape:
        raise ValueError(f"{name} must have shape [n_seeds, n_prompts] (or [n_prompts]), got {grid.shape}")
    return grid


def _nanmean(x: np.ndarray, axis=None):
    with warnings.catch_warnings():  # a replicate that drew only unscored cells is NaN, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _replicate_means(grid: np.ndarray, seed_idx: np.ndarray, prompt_idx: np.ndarray) -> np.ndarray:
    """Mean of ``grid[seeds][:, prompts]`` for each replicate; idx shapes [n_boot, n_s] / [n_boot, n_p]."""
    cells = grid[seed_idx[:, :, None], prompt_idx[:, None, :]]  # [n_boot, n_s, n_p]
    return _nanmean(cells.reshape(len(cells), -1), axis=1)


def _interval(estimate: float, replicates: np.ndarray, level: float) -> Interval:
    replicates = replicates[~np.isnan(replicates)]
    if np.isnan(estimate) or replicates.size == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = np.quantile(replicates, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(estimate), float(lo), float(hi)


def hierarchical_bootstrap(values, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean of a ``[n_seeds, n_prompts]`` grid and its two-way (seeds and prompts) bootstrap CI.

    >>> hierarchical_bootstrap([[1, 1], [0, 0]], n_boot=4000)[0]
    0.5
    """
    grid = _as_grid(values, "values")
    rng = np.random.default_rng(seed)
    n_s, n_p = grid.shape
    reps = _replicate_means(grid, rng.integers(0, n_s, (n_boot, n_s)), rng.integers(0, n_p, (n_boot, n_p)))
    return _interval(float(_nanmean(grid)), reps, level)


def _paired_replicates(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, names: str) -> tuple[np.ndarray, np.ndarray]:
    """Replicate means of two grids over the same prompts: one prompt draw for both, seeds apart."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names} must cover the same prompts: {a.shape[1]} != {b.shape[1]} columns")
    rng = np.random.default_rng(seed)
    prompts = rng.integers(0, a.shape[1], (n_boot, a.shape[1]))
    reps_a = _replicate_means(a, rng.integers(0, a.shape[0], (n_boot, a.shape[0])), prompts)
    reps_b = _replicate_means(b, rng.integers(0, b.shape[0], (n_boot, b.shape[0])), prompts)
    return reps_a, reps_b


def paired_difference(a, b, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """mean(a) - mean(b) for two ``[n_seeds, n_prompts]`` grids over the same prompts (same columns).

    Each replicate draws one set of prompts for both (paired) and each grid's seeds on its own.
    """
    a, b = _as_grid(a, "a"), _as_grid(b, "b")
    reps_a, reps_b = _paired_replicates(a, b, n_boot, seed, "a and b")
    return _interval(float(_nanmean(a) - _nanmean(b)), reps_a - reps_b, level)


def risk_removed(after, before, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """1 - rate(after) / rate(before), paired over prompts, seeds drawn per grid (DART's headline)."""
    after, before = _as_grid(after, "after"), _as_grid(before, "before")
    rate_after, rate_before = _paired_replicates(after, before, n_boot, seed, "after and before")
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = np.where(rate_before > 0, 1 - rate_after / rate_before, np.nan)
    base = float(_nanmean(before))
    estimate = 1 - float(_nanmean(after)) / base if base > 0 else float("nan")
    return _interval(estimate, reps, level)


def nested_bootstrap(per_seed: Sequence, *, n_boot: int = 4000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean over seeds of each seed's mean, and its CI, for values *nested* in seeds: each seed has prompts
    (or instructions) of its own, of any number, and prompt j of one seed has nothing to do with prompt j of
    another (unlike the crossed grid of :func:`hierarchical_bootstrap`). A replicate draws seeds with
    replacement, then within each drawn seed that seed's values with replacement. Seeds weigh equally.

    ``per_seed``: one 1-D sequence per seed, e.g. the paired differences (after - before) of its instructions.

    >>> nested_bootstrap([[1.0, 1.0], [0.0, 0.0, 0.0]])[0]
    0.5
    """
    groups = [np.asarray(v, dtype=float) for v in per_seed]
    if not groups or any(g.ndim != 1 or g.size == 0 or np.isnan(g).any() for g in groups):
        raise ValueError("nested_bootstrap needs one non-empty 1-D sequence of values (no NaN) per seed, got shapes "
                         f"{[g.shape for g in groups]}; drop undefined values before calling it")
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        drawn = rng.integers(0, len(groups), len(groups))
        reps[b] = np.mean([groups[i][rng.integers(0, groups[i].size, groups[i].size)].mean() for i in drawn])
    return _interval(float(np.mean([g.mean() for g in groups])), reps, level)


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa of two raters' labels over the same items: (p_o - p_e) / (1 - p_e)."""
    a, b = list(a), list(b)
    if len(a) != len(b) or not a:
        raise ValueError(f"kappa needs two equally long, non-empty label lists (got {len(a)} and {len(b)})")
    labels = sorted(set(a) | set(b), key=str)
    observed = np.mean([x == y for x, y in zip(a, b)])
    expected = sum((a.count(k) / len(a)) * (b.count(k) / len(b)) for k in labels)
    return 1.0 if expected == 1 else float((observed - expected) / (1 - expected))


def intraclass_correlation(outcomes) -> float:
    """ICC(1) of a [n_items, k] grid of repeated outcomes (e.g. k sampled replies to each attack):
    the share of the variance that lies between items, one-way ANOVA estimator.

    1: each item's k outcomes agree (the outcome is a property of the item); 0 or below: items
    differ no more than repeats of one item do (the outcome is the draw). NaN when every value is
    the same: there is no variance to split.
    """
    grid = np.asarray(outcomes, dtype=float)
    if grid.ndim != 2 or grid.shape[0] < 2 or grid.shape[1] < 2 or np.isnan(grid).any():
        raise ValueError(f"intraclass_correlation needs a complete [n_items >= 2, k >= 2] grid, got shape {grid.shape}"
                         + (" with NaNs: drop the incomplete items first" if grid.size and np.isnan(grid).any() else ""))
    n, k = grid.shape
    item_means = grid.mean(axis=1)
    ms_between = k * np.sum((item_means - grid.mean()) ** 2) / (n - 1)
    ms_within = np.sum((grid - item_means[:, None]) ** 2) / (n * (k - 1))
    if ms_between + (k - 1) * ms_within == 0:
        return float("nan")
    return float((ms_between - ms_within) / (ms_between + (k - 1) * ms_within))


def confusion_table(truth: Sequence, predicted: Sequence, labels: Sequence | None = None, *,
                    rows: Sequence | None = None, columns: Sequence | None = None):
    """Counts of (truth, predicted) as a DataFrame: rows truth, columns predicted.

    ``labels`` names both axes; ``rows`` / ``columns`` name them apart (e.g. three human labels
    against a judge's two verdicts). Unnamed axes take the values seen, sorted.
    """
    import pandas as pd

    seen = sorted(set(truth) | set(predicted), key=str)
    rows = list(rows if rows is not None else labels if labels is not None else seen)
    columns = list(columns if columns is not None else labels if labels is not None else seen)
    table = pd.DataFrame(0, index=pd.Index(rows, name="truth"), columns=pd.Index(columns, name="predicted"))
    for t, p in zip(truth, predicted):
        table.loc[t, p] += 1
    return table
