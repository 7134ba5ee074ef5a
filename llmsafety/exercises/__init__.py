"""Exercises for the lessons: fill in a function, call ``check``, and see at once if it is right.

Each lesson has a module here (``lesson01`` ... ``lesson05``, ``lesson08``) with a few :class:`Exercise` objects.
An exercise names a small function the student writes, holds the *reference* solution (a
short, commented function in that module) and the inputs to try it on: a few fixed cases chosen to
catch the usual mistakes, and a generator of random small cases. ``check`` runs the student's
function and the reference on every case and stops at the first difference::

    from llmsafety.exercises import check, get, markers

    print(markers(get("count_leaves")))     # Difficulty: 🔴⚪⚪ · Importance: 🔵🔵⚪ · ~5 min

    def count_leaves(node):
        ...                                  # the student's answer

    check(count_leaves, "count_leaves")      # ✔ Count the leaves under a node: passed 23 cases
                                             # or ✘ ...: case 3 (...): expected 10, got 9 (...)

Nothing here loads a model: every check runs in well under a second, so a lesson can call them
freely. ``print(get(name).source)`` shows the reference solution.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import math
import numbers
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EXERCISES", "LESSONS", "Exercise", "check", "default_compare", "get", "for_lesson", "markers"]

# A case is the tuple of positional arguments one call receives.
Case = tuple

#: The lessons with exercises, by notebook number (``notebooks/08_...`` is lesson 8): one module
#: ``lessonNN.py`` in this folder each, found on import, so a new lesson only adds its file.
LESSONS: tuple[int, ...] = tuple(sorted(int(p.stem[len("lesson"):]) for p in Path(__file__).parent.glob("lesson[0-9][0-9].py")))

# --------------------------------------------------------------------------------------------
# Comparing an answer with the reference
# --------------------------------------------------------------------------------------------

RTOL = 1e-6  # floats are compared with a tolerance: a different but correct order of operations
ATOL = 1e-9  # (sum then divide, or divide then sum) must not fail a student


def default_compare(expected: Any, got: Any) -> str | None:
    """``None`` when ``got`` equals ``expected``, else a short text saying what differs.

    Numbers, numpy arrays, lists/tuples, dicts, pandas Series and DataFrames are compared
    element by element, floats with a small tolerance, NaN equal to NaN (an undefined value
    answered as undefined is right). Anything else is compared with ``==``.
    """
    if isinstance(expected, pd.DataFrame):
        return _compare_frames(expected, got)
    if isinstance(expected, pd.Series):
        return _compare_series(expected, got)
    if isinstance(expected, np.ndarray):
        return _compare_arrays(expected, got)
    if isinstance(expected, Mapping):
        return _compare_dicts(expected, got)
    if isinstance(expected, (list, tuple)):
        return _compare_sequences(expected, got)
    if isinstance(expected, (bool, np.bool_)):
        if not isinstance(got, (bool, np.bool_)):
            return f"expected a bool, got {type(got).__name__}"
        return None if bool(expected) == bool(got) else "the truth value is wrong"
    if isinstance(expected, numbers.Real):
        return _compare_numbers(expected, got)
    try:
        equal = bool(expected == got)
    except Exception:  # e.g. comparing with an array: ambiguous truth value
        equal = False
    if equal:
        return None
    if type(expected) is not type(got) and got is not None and expected is not None:
        return f"expected a {type(expected).__name__}, got {type(got).__name__}"
    return f"{_short(got, 40)} instead of {_short(expected, 40)}"


def _compare_numbers(expected: numbers.Real, got: Any) -> str | None:
    if isinstance(got, (bool, np.bool_)) or not isinstance(got, numbers.Real):
        return f"expected a number, got {type(got).__name__}"
    e, g = float(expected), float(got)
    if math.isnan(e) or math.isnan(g):
        if math.isnan(e) and math.isnan(g):
            return None
        return "expected NaN (undefined)" if math.isnan(e) else "got NaN where a number was expected"
    if math.isclose(e, g, rel_tol=RTOL, abs_tol=ATOL):
        return None
    if isinstance(expected, numbers.Integral) and isinstance(got, numbers.Integral):
        return f"off by {int(got) - int(expected)}"  # counts: "off by 1", not "off by 1.0"
    return f"off by {_fmt(g - e)}"


def _compare_arrays(expected: np.ndarray, got: Any) -> str | None:
    try:
        got = np.asarray(got)
    except Exception:
        return f"expected an array, got {type(got).__name__}"
    if got.shape != expected.shape:
        return f"shape {got.shape} instead of {expected.shape}"
    if expected.dtype.kind in "biuf" and got.dtype.kind in "biuf":
        close = np.isclose(got.astype(float), expected.astype(float), rtol=RTOL, atol=ATOL, equal_nan=True)
    else:
        close = np.asarray(got == expected)
    if close.all():
        return None
    first = tuple(int(i) for i in np.argwhere(~close)[0])
    where = first[0] if len(first) == 1 else first
    return (f"{int((~close).sum())} of {close.size} entries differ; first at index {where}: "
            f"expected {_short(expected[first])}, got {_short(got[first])}")


def _compare_dicts(expected: Mapping, got: Any) -> str | None:
    if not isinstance(got, Mapping):
        return f"expected a dict, got {type(got).__name__}"
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    if missing or extra:
        parts = ([f"missing keys {_short(missing)}"] if missing else []) + (
            [f"unexpected keys {_short(extra)}"] if extra else [])
        return "; ".join(parts)
    for key in expected:
        difference = default_compare(expected[key], got[key])
        if difference:
            return f"at key {key!r}: {difference}"
    return None


def _compare_sequences(expected: Sequence, got: Any) -> str | None:
    if isinstance(got, (np.ndarray, pd.Series)):
        got = got.tolist()
    if isinstance(got, (str, bytes)) or not isinstance(got, Sequence):
        return f"expected a {type(expected).__name__}, got {type(got).__name__}"
    for i, (e, g) in enumerate(zip(expected, got)):
        difference = default_compare(e, g)
        if difference:
            where = f"at index {i}: {difference}"
            if len(got) != len(expected):  # the first difference says where it went wrong
                return f"length {len(got)} instead of {len(expected)}; first difference {where}"
            return where
    if len(got) > len(expected):  # a correct start, then more
        return (f"length {len(got)} instead of {len(expected)}: unexpected item at index "
                f"{len(expected)}: {_short(got[len(expected)], 50)}")
    if len(got) < len(expected):
        return (f"length {len(got)} instead of {len(expected)}: missing item at index "
                f"{len(got)}: {_short(expected[len(got)], 50)}")
    return None


def _compare_series(expected: pd.Series, got: Any) -> str | None:
    if not isinstance(got, pd.Series):
        return f"expected a pandas Series, got {type(got).__name__}"
    if list(got.index) != list(expected.index):
        return f"index {_short(list(got.index))} instead of {_short(list(expected.index))}"
    return _compare_sequences(expected.tolist(), got.tolist())


def _compare_frames(expected: pd.DataFrame, got: Any) -> str | None:
    if not isinstance(got, pd.DataFrame):
        return f"expected a pandas DataFrame, got {type(got).__name__}"
    if list(got.columns) != list(expected.columns):
        return f"columns {_short(list(got.columns))} instead of {_short(list(expected.columns))}"
    if list(got.index) != list(expected.index):
        # The index says which rows were kept: name the rows, it is the most useful hint.
        missing = [i for i in expected.index if i not in got.index]
        extra = [i for i in got.index if i not in expected.index]
        if missing or extra:
            parts = ([f"missing rows {_short(missing)}"] if missing else []) + (
                [f"unexpected rows {_short(extra)}"] if extra else [])
            return f"{len(got)} rows instead of {len(expected)}: " + "; ".join(parts)
        return f"rows in order {_short(list(got.index))} instead of {_short(list(expected.index))}"
    if expected.equals(got):  # the usual case, in one call; dtypes may differ, so look closer if not
        return None
    for column in expected.columns:
        difference = _compare_sequences(
            [None if _is_na(v) else v for v in expected[column]],
            [None if _is_na(v) else v for v in got[column]],
        )
        if difference:
            return f"in column {column!r}, {difference}"
    return None


def _is_na(value: Any) -> bool:
    try:
        result = pd.isna(value)
    except (TypeError, ValueError):
        return False
    return bool(result) if np.ndim(result) == 0 else False


# --------------------------------------------------------------------------------------------
# Short texts for messages
# --------------------------------------------------------------------------------------------

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_MAX_ITEMS = 6  # items of a list, tuple or dict shown before "…"


def _fmt(x: float) -> str:
    """6 significant digits, still readable as a float: 0.707007, 1.0, nan."""
    text = f"{x:.6g}"
    return text if any(c in text for c in ".en") else text + ".0"


def _text(value: Any) -> str:
    """A compact repr: numpy values as plain numbers and lists, long containers cut short."""
    if isinstance(value, pd.DataFrame):
        columns = ", ".join(map(str, value.columns)) if value.shape[1] <= 4 else f"{value.shape[1]} columns"
        return f"DataFrame({len(value)} rows, index {_text(list(value.index))}; {columns})"
    if isinstance(value, pd.Series):
        return f"Series({_text(value.to_dict())})"
    if isinstance(value, np.ndarray):
        if value.size > 12:
            return f"array(shape={value.shape}, dtype={value.dtype})"
        return _text(value.tolist())  # nested lists of Python numbers
    if isinstance(value, np.generic):
        return _text(value.item())  # 0.5, not np.float64(0.5)
    if isinstance(value, float):
        return _fmt(value)
    if isinstance(value, (list, tuple)):
        items = [_text(v) for v in value[:_MAX_ITEMS]] + (["…"] if len(value) > _MAX_ITEMS else [])
        if isinstance(value, list):
            return "[" + ", ".join(items) + "]"
        return "(" + ", ".join(items) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, Mapping):
        items = [f"{_text(k)}: {_text(v)}" for k, v in list(value.items())[:_MAX_ITEMS]]
        return "{" + ", ".join(items + (["…"] if len(value) > _MAX_ITEMS else [])) + "}"
    return _REPR.repr(value)


def _short(value: Any, width: int = 90) -> str:
    """A one-line repr of ``value`` of at most ``width`` characters."""
    text = " ".join(_text(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_args(args: Case) -> str:
    return ", ".join(_short(a, 60) for a in args)


# --------------------------------------------------------------------------------------------
# The exercise and its check
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exercise:
    """One function to write, with its reference solution and the cases to check it on.

    Attributes
    ----------
    name : str
        The function's name, also the registry key (``get(name)``).
    lesson : int
        The number of the lesson notebook it belongs to, one of :data:`LESSONS`.
    title : str
        What the exercise asks, in a few words (printed by ``check``).
    difficulty, importance : int
        1 to 3 each, shown as dots by :func:`markers`.
    minutes : int
        About how long it takes.
    reference : callable
        The reference solution; ``check`` compares the student's results with its results.
    cases : sequence of tuple
        Fixed cases, each the tuple of positional arguments of one call. Chosen to catch the
        usual mistakes (empty inputs, ties at a threshold, NaN).
    random_case : callable, optional
        ``random_case(rng) -> tuple``: one random small case from a ``numpy.random.Generator``.
    compare : callable
        ``compare(expected, got) -> None`` when equal, else a short text saying what differs.
    copy_inputs : bool
        Give each call a deep copy of the arguments, so a function that changes its input in
        place cannot change what the other function sees. Off for read-only inputs (a tree).
    n_random : int
        How many random cases ``check`` draws by default (fewer where each call is slow, as
        pandas calls are, so that a check stays well under a second).
    """

    name: str
    lesson: int
    title: str
    difficulty: int
    importance: int
    minutes: int
    reference: Callable[..., Any]
    cases: Sequence[Case]
    random_case: Callable[[np.random.Generator], Case] | None = None
    compare: Callable[[Any, Any], str | None] = default_compare
    copy_inputs: bool = True
    n_random: int = 20

    def __post_init__(self) -> None:
        for field_name in ("difficulty", "importance"):
            value = getattr(self, field_name)
            if value not in (1, 2, 3):
                raise ValueError(f"{self.name}: {field_name} must be 1, 2 or 3, got {value!r}")
        if self.lesson not in LESSONS:
            raise ValueError(f"{self.name}: lesson must be one of {', '.join(map(str, LESSONS))}, "
                             f"got {self.lesson!r}")
        if not self.cases and self.random_case is None:
            raise ValueError(f"{self.name}: an exercise needs fixed cases or a random_case")
        bad = [i for i, c in enumerate(self.cases) if not isinstance(c, tuple)]
        if bad:
            raise ValueError(f"{self.name}: cases {bad} are not tuples of arguments")

    def all_cases(self, n_random: int | None = None, seed: int = 0) -> list[Case]:
        """The fixed cases, then ``n_random`` (default ``self.n_random``) random ones drawn with
        ``seed``: the same cases every time."""
        n_random = self.n_random if n_random is None else n_random
        cases = list(self.cases)
        if self.random_case is not None and n_random > 0:
            rng = np.random.default_rng(seed)
            cases += [self.random_case(rng) for _ in range(n_random)]
        return cases

    @property
    def source(self) -> str:
        """The reference solution's source code, to show once the student has tried."""
        return inspect.getsource(self.reference)


def check(student_fn: Callable[..., Any], exercise: Exercise | str, *, n_random: int | None = None,
          seed: int = 0) -> bool:
    """Run ``student_fn`` on the exercise's cases, compare with the reference, print the verdict.

    The cases are the fixed ones, then ``n_random`` random ones (default: the exercise's
    ``n_random``) drawn with ``seed``.

    Prints ``✔ <title>: passed K cases``, or at the first wrong case ``✘ <title>: case i
    (<arguments>): expected ..., got ... (<what differs>)`` -- also when ``student_fn`` raises
    (the exception's type and message are shown). Returns whether every case passed.
    """
    if isinstance(exercise, str):
        exercise = get(exercise)
    cases = exercise.all_cases(n_random=n_random, seed=seed)
    fresh = copy.deepcopy if exercise.copy_inputs else (lambda args: args)
    for i, args in enumerate(cases, start=1):
        expected = exercise.reference(*fresh(args))
        head = f"✘ {exercise.title}: case {i} ({_short_args(args)})"
        try:
            got = student_fn(*fresh(args))
        except Exception as err:  # the student's bug, reported like a wrong answer
            message = str(err).strip().splitlines()[0] if str(err).strip() else ""
            print(f"{head}: expected {_short(expected)}, but your function raised "
                  f"{type(err).__name__}" + (f": {message}" if message else ""))
            return False
        difference = exercise.compare(expected, got)
        if difference is not None:
            print(f"{head}: expected {_short(expected)}, got {_short(got)} ({difference})")
            return False
    print(f"✔ {exercise.title}: passed {len(cases)} cases")
    return True


def markers(exercise: Exercise | str) -> str:
    """The line a lesson's markdown shows above an exercise.

    >>> markers(get("count_leaves"))
    'Difficulty: 🔴⚪⚪ · Importance: 🔵🔵⚪ · ~5 min'
    """
    if isinstance(exercise, str):
        exercise = get(exercise)
    difficulty = "🔴" * exercise.difficulty + "⚪" * (3 - exercise.difficulty)
    importance = "🔵" * exercise.importance + "⚪" * (3 - exercise.importance)
    return f"Difficulty: {difficulty} · Importance: {importance} · ~{exercise.minutes} min"


# --------------------------------------------------------------------------------------------
# The registry: every lesson's exercises by name
# --------------------------------------------------------------------------------------------

EXERCISES: dict[str, Exercise] = {}


def get(name: str) -> Exercise:
    """The exercise called ``name``; an unknown name raises a KeyError naming close ones."""
    try:
        return EXERCISES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(EXERCISES), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"no exercise named {name!r}.{hint} All: {', '.join(EXERCISES)}") from None


def for_lesson(lesson: int) -> list[Exercise]:
    """The exercises of one lesson, in the order the lesson uses them."""
    return [e for e in EXERCISES.values() if e.lesson == lesson]


# Imported last: the lesson modules import Exercise from this (by now initialised) module.
for _module in [importlib.import_module(f"llmsafety.exercises.lesson{k:02d}") for k in LESSONS]:
    for _exercise in _module.EXERCISES:
        if _exercise.name in EXERCISES:
            raise ValueError(f"two exercises are named {_exercise.name!r}")
        EXERCISES[_exercise.name] = _exercise
del _module, _exercise
