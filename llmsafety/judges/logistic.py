"""Logistic regression, small and dependency-free: Platt scaling and the embedding heads."""

from __future__ import annotations

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))  # stable for large |z|


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-4, sample_weight: np.ndarray | None = None,
                 max_iter: int = 100, tol: float = 1e-8) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method; returns ``(coef, intercept)``.

    Small and dependency-free: used for Platt scaling (one feature) and for the judge
    combiner (a few features). ``l2`` penalises the coefficients, not the intercept, and is
    scaled by the total sample weight so it means the same for any number of samples.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(y, dtype=float).ravel()
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"got {x.shape[0]} rows of features but {y.shape[0]} labels; give one label per row")
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
        raise ValueError("features and labels must be finite (drop unscored items first)")
    if not set(np.unique(y)) <= {0.0, 1.0} or len(np.unique(y)) < 2:
        raise ValueError("labels must be 0/1 and contain both classes")
    w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    design = np.hstack([x, np.ones((x.shape[0], 1))])
    beta = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2 * w.sum())
    penalty[-1] = 0.0
    for _ in range(max_iter):
        p = _sigmoid(design @ beta)
        grad = design.T @ (w * (p - y)) + penalty * beta
        hess = (design * (w * p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-10)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < tol:
            break
    return beta[:-1], float(beta[-1])
