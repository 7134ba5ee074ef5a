"""The judge protocol: :class:`JudgeResult`, the :class:`Judge` base class and :class:`FunctionJudge`.

A judge is any callable ``judge(prompts, responses) -> JudgeResult`` with one harm probability
in [0, 1] per pair, or ``None`` with a reason where the pair could not be scored. :class:`Judge`
does the checking, the unscoreable items and the per-batch error handling for its subclasses.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from llmsafety._io import is_missing as _is_missing


class JudgeWarning(UserWarning):
    """Some pairs could not be scored because the judge failed on them."""


@dataclass
class JudgeResult:
    """What a judge says about a list of (prompt, response) pairs.

    Attributes
    ----------
    scores : list of float or None
        Harm probability in [0, 1] per pair; ``None`` where the pair was not scored.
    reasons : list of str or None
        Why a pair was not scored, or a short note on a scored pair (``None`` when nothing to say).
    name : str
        Which judge produced it.
    """

    scores: list[float | None]
    reasons: list[str | None]
    name: str = "judge"

    def __post_init__(self) -> None:
        if len(self.scores) != len(self.reasons):
            raise ValueError(
                f"JudgeResult got {len(self.scores)} scores but {len(self.reasons)} reasons; "
                "give one reason (or None) per score"
            )

    def __len__(self) -> int:
        return len(self.scores)

    def to_numpy(self) -> np.ndarray:
        """Scores as a float array, NaN where unscored."""
        return np.array([np.nan if s is None else float(s) for s in self.scores], dtype=float)

    @property
    def n_unscored(self) -> int:
        return sum(s is None for s in self.scores)

    def mean(self) -> float:
        """Mean harm over the scored pairs (NaN when none was scored)."""
        scored = [s for s in self.scores if s is not None]
        return float(np.mean(scored)) if scored else float("nan")

    def harmful(self, threshold: float = 0.5) -> list[bool | None]:
        """``score >= threshold`` per pair, ``None`` where unscored."""
        return [None if s is None else bool(s >= threshold) for s in self.scores]

    def to_frame(self) -> pd.DataFrame:
        """One row per pair: ``score`` (NaN when unscored) and ``reason``."""
        return pd.DataFrame({"score": self.to_numpy(), "reason": self.reasons})

    def __repr__(self) -> str:
        return (
            f"JudgeResult(name={self.name!r}, n={len(self)}, mean={self.mean():.3f}, "
            f"n_unscored={self.n_unscored})"
        )


def _as_text_list(values: Any, name: str) -> list:
    if isinstance(values, str):
        raise TypeError(f"{name} must be a list of strings, not one string: wrap it in a list")
    try:
        return list(values)
    except TypeError as exc:
        raise TypeError(f"{name} must be a list of strings, got {type(values).__name__}") from exc




class Judge:
    """Base class: validation, unscoreable items and per-batch error handling.

    Subclasses implement :meth:`_score`, which receives only non-empty responses, one batch at
    a time, and returns one harm probability per pair (``None``/NaN for a pair it cannot score)
    -- or a :class:`JudgeResult` when it has per-item notes.

    Parameters
    ----------
    name : str
        Shown in results and comparison tables.
    batch_size : int
        How many pairs :meth:`_score` receives at once; an exception costs only its batch.
    max_response_chars : int or None
        Longer responses are left unscored (with the reason) instead of being cut silently.
    """

    name: str = "judge"

    def __init__(self, name: str | None = None, *, batch_size: int = 64,
                 max_response_chars: int | None = None) -> None:
        if name is not None:
            self.name = name
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if max_response_chars is not None and max_response_chars < 1:
            raise ValueError(f"max_response_chars={max_response_chars} must be >= 1 or None")
        self.batch_size = batch_size
        self.max_response_chars = max_response_chars

    # ---------------------------------------------------------------------------- public

    def __call__(self, prompts: Sequence[str], responses: Sequence[str | None]) -> JudgeResult:
        prompts = _as_text_list(prompts, "prompts")
        responses = _as_text_list(responses, "responses")
        if len(prompts) != len(responses):
            raise ValueError(
                f"got {len(prompts)} prompts but {len(responses)} responses: "
                "give exactly one response per prompt"
            )
        if not prompts:
            raise ValueError("prompts and responses are empty: give at least one pair to judge")
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise TypeError(f"prompts[{i}] is {type(p).__name__}, not str")

        scores: list[float | None] = [None] * len(prompts)
        reasons: list[str | None] = [None] * len(prompts)
        todo: list[int] = []
        for i, r in enumerate(responses):
            if _is_missing(r):
                reasons[i] = "missing response (None)"
            elif not isinstance(r, str):
                raise TypeError(f"responses[{i}] is {type(r).__name__}, not str")
            elif not r.strip():
                reasons[i] = "empty response"
            elif self.max_response_chars is not None and len(r) > self.max_response_chars:
                reasons[i] = f"response too long ({len(r)} chars > max_response_chars={self.max_response_chars})"
            else:
                todo.append(i)

        failures: list[str] = []
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            self._score_batch(batch, prompts, responses, scores, reasons, failures)
        if failures:
            warnings.warn(
                f"judge {self.name!r} could not score {len(failures)} of {len(prompts)} pairs; "
                f"they are None with the reason. First error: {failures[0]}",
                JudgeWarning,
                stacklevel=2,
            )
        return JudgeResult(scores=scores, reasons=reasons, name=self.name)

    def is_harmful(self, prompts: Sequence[str], responses: Sequence[str | None],
                   threshold: float = 0.5) -> list[bool | None]:
        """``score >= threshold`` per pair, ``None`` where unscored."""
        return self(prompts, responses).harmful(threshold)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # ---------------------------------------------------------------------------- subclasses

    def _score(self, prompts: list[str], responses: list[str]) -> Sequence[float | None] | JudgeResult:
        raise NotImplementedError

    # ---------------------------------------------------------------------------- internals

    def _score_batch(self, batch: list[int], prompts: list, responses: list,
                     scores: list, reasons: list, failures: list[str]) -> None:
        """Score one batch; if it raises, retry its pairs one at a time so only bad pairs fail."""
        try:
            out = self._score([prompts[i] for i in batch], [responses[i] for i in batch])
        except Exception as exc:  # noqa: BLE001 -- any judge error becomes a reason, never a 0
            if len(batch) > 1:
                for i in batch:
                    self._score_batch([i], prompts, responses, scores, reasons, failures)
                return
            message = f"judge error: {type(exc).__name__}: {exc}"
            reasons[batch[0]] = message
            failures.append(message)
            return
        self._store(batch, out, scores, reasons, failures)

    def _store(self, batch: list[int], out: Any, scores: list, reasons: list, failures: list[str]) -> None:
        notes: Sequence[str | None] = [None] * len(batch)
        if isinstance(out, JudgeResult):
            out, notes = out.scores, out.reasons
        out = list(np.asarray(out, dtype=object).ravel()) if isinstance(out, np.ndarray) else list(out)
        if len(out) != len(batch) or len(notes) != len(batch):  # a bug in the judge: no score can be trusted
            message = f"judge error: {type(self).__name__}._score returned {len(out)} scores for {len(batch)} pairs"
            for i in batch:
                reasons[i] = message
            failures.extend([message] * len(batch))
            return
        for i, s, note in zip(batch, out, notes):
            if _is_missing(s):
                scores[i], reasons[i] = None, note or "judge gave no score"
                continue
            s = float(s)
            if not -1e-6 <= s <= 1 + 1e-6:  # a bug in the judge: say so loudly
                scores[i], reasons[i] = None, f"judge returned {s:.4g}, outside [0, 1]"
                failures.append(reasons[i])
                continue
            scores[i], reasons[i] = min(max(s, 0.0), 1.0), note


class FunctionJudge(Judge):
    """A judge from a plain function ``fn(prompts, responses) -> list of floats in [0, 1]``."""

    def __init__(self, fn: Callable[[list[str], list[str]], Sequence[float | None]], name: str | None = None,
                 **kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        super().__init__(name or getattr(fn, "__name__", "function"), **kwargs)
        self.fn = fn

    def _score(self, prompts: list[str], responses: list[str]) -> Sequence[float | None]:
        return self.fn(prompts, responses)
