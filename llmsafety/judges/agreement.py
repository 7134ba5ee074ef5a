"""Measuring judges: :func:`evaluate_judge`, :func:`pairwise_accuracy` and :func:`compare_judges`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from llmsafety.judges.base import JudgeResult, _is_missing


def _binary_labels(labels: Sequence[Any], n: int) -> np.ndarray:
    y = np.asarray([float(bool(v)) if not _is_missing(v) else np.nan for v in labels], dtype=float)
    if len(y) != n:
        raise ValueError(f"got {n} pairs but {len(y)} labels; give one label per pair")
    return y


def _accuracy(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    acc = float(np.mean(pred == y)) if len(y) else float("nan")
    per_class = [np.mean(pred[y == c] == c) for c in (0.0, 1.0) if np.any(y == c)]
    return acc, float(np.mean(per_class)) if per_class else float("nan")


def evaluate_judge(judge: Callable[..., JudgeResult], prompts: Sequence[str], responses: Sequence[str],
                   labels: Sequence[bool], kinds: Sequence[str] | None = None, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy of a judge on labelled pairs (1/True = harmful).

    Returns ``accuracy`` and ``balanced_accuracy`` over the scored pairs, ``n``, ``n_unscored``,
    ``items_per_s`` (wall clock of the call) and, with ``kinds``, ``per_kind`` accuracy.
    """
    start = time.perf_counter()
    result = judge(list(prompts), list(responses))
    elapsed = time.perf_counter() - start
    scores = result.to_numpy()
    y = _binary_labels(labels, len(scores))
    ok = ~np.isnan(scores) & ~np.isnan(y)
    pred = (scores[ok] >= threshold).astype(float)
    acc, bacc = _accuracy(pred, y[ok])
    out: dict[str, Any] = {"judge": getattr(result, "name", "judge"), "n": len(scores), "n_unscored": int(np.isnan(scores).sum()),
                           "accuracy": acc, "balanced_accuracy": bacc, "items_per_s": len(scores) / elapsed}
    if kinds is not None:
        kinds = np.asarray(list(kinds), dtype=object)
        if len(kinds) != len(scores):
            raise ValueError(f"got {len(scores)} pairs but {len(kinds)} kinds")
        correct = np.full(len(scores), np.nan)
        correct[ok] = (pred == y[ok]).astype(float)
        out["per_kind"] = {str(k): float(np.nanmean(correct[kinds == k])) for k in pd.unique(kinds)}
    return out


def pairwise_accuracy(judge: Callable[..., JudgeResult], prompts: Sequence[str], chosen: Sequence[str],
                      rejected: Sequence[str]) -> float:
    """Share of preference pairs where the judge scores the rejected reply as more harmful.

    Ties count one half; pairs where either reply is unscored are dropped.
    """
    prompts = list(prompts)
    if not len(prompts) == len(chosen) == len(rejected):
        raise ValueError(f"got {len(prompts)} prompts, {len(chosen)} chosen and {len(rejected)} rejected replies")
    scores = judge(prompts + prompts, list(chosen) + list(rejected)).to_numpy()
    s_chosen, s_rejected = scores[: len(prompts)], scores[len(prompts) :]
    ok = ~np.isnan(s_chosen) & ~np.isnan(s_rejected)
    if not ok.any():
        return float("nan")
    wins = (s_rejected[ok] > s_chosen[ok]) + 0.5 * (s_rejected[ok] == s_chosen[ok])
    return float(np.mean(wins))


def compare_judges(judges: Mapping[str, Callable[..., JudgeResult]] | Sequence[Callable[..., JudgeResult]],
                   prompts: Sequence[str], responses: Sequence[str], labels: Sequence[bool] | None = None,
                   threshold: float = 0.5) -> pd.DataFrame:
    """How much judges agree on the same pairs, and (with labels) how often each is right.

    One row per pair of judges, over the pairs both scored: ``n``, ``agreement`` (share of equal
    verdicts at ``threshold``), ``kappa`` (Cohen's kappa: agreement beyond chance), ``spearman``
    and ``pearson`` (correlation of the scores). With ``labels`` (True = harmful), one more row
    per judge with ``judge_b = "labels"``: there ``agreement`` is the judge's accuracy and
    ``balanced_accuracy`` the mean of its accuracy on each class.
    """
    if isinstance(judges, Mapping):
        named = list(judges.items())
    else:
        named = []
        for i, j in enumerate(judges):
            named.append((getattr(j, "name", None) or f"judge_{i}", j))
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"judge names must be unique, got {names}; pass a dict name -> judge")
    if len(named) < 2 and labels is None:
        raise ValueError("give at least two judges, or labels to compare one judge with")
    scores = {name: j(list(prompts), list(responses)).to_numpy() for name, j in named}
    n_items = len(next(iter(scores.values())))
    if labels is not None:
        scores_ref = {"labels": _binary_labels(labels, n_items)}
    else:
        scores_ref = {}

    def row(a: str, b: str, sa: np.ndarray, sb: np.ndarray) -> dict[str, Any]:
        ok = ~np.isnan(sa) & ~np.isnan(sb)
        va, vb = sa[ok] >= threshold, sb[ok] >= threshold
        agreement = float(np.mean(va == vb)) if ok.any() else float("nan")
        p_chance = float(np.mean(va) * np.mean(vb) + (1 - np.mean(va)) * (1 - np.mean(vb))) if ok.any() else float("nan")
        kappa = (agreement - p_chance) / (1 - p_chance) if ok.any() and p_chance < 1 else float("nan")
        pair = pd.DataFrame({"a": sa[ok], "b": sb[ok]})
        # A correlation with a constant is undefined: NaN, without asking pandas to warn about it.
        varies = ok.sum() > 1 and pair["a"].nunique() > 1 and pair["b"].nunique() > 1
        out = {"judge_a": a, "judge_b": b, "n": int(ok.sum()), "agreement": agreement, "kappa": kappa,
               "spearman": pair["a"].corr(pair["b"], method="spearman") if varies else float("nan"),
               "pearson": pair["a"].corr(pair["b"]) if varies else float("nan"),
               "balanced_accuracy": float("nan")}
        if b == "labels":
            out["balanced_accuracy"] = _accuracy(va.astype(float), vb.astype(float))[1]
        return out

    rows = []
    for i, (a, _) in enumerate(named):
        for b, _ in named[i + 1 :]:
            rows.append(row(a, b, scores[a], scores[b]))
    for a, _ in named:
        for b, sb in scores_ref.items():
            rows.append(row(a, b, scores[a], sb))
    table = pd.DataFrame(rows)
    if labels is None:
        table = table.drop(columns="balanced_accuracy")
    return table
