"""Lesson 13 exercises: the pieces of an evaluation report, on plain numbers and small frames.

Lesson 13 gathers the course's committed measurements into a model-card-style report
(``llmsafety.eval_report``) and reads the survey's paper list for trends. Each piece the report
relies on is written here in its simplest form, with no model and no file:

- a Wilson score interval for a rate known only by its counts (``eval_report.wilson_interval``);
- the rule that says whether a finding supports its claim (``eval_report.claim_status``);
- a finding's number as the report prints it (``eval_report.format_result``);
- distinct papers per year and area (``llmsafety.papers.trends.papers_per_area_year``).

Rates are shares in [0, 1]; an interval is ``(low, high)`` beside its estimate.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from llmsafety.exercises import Exercise
from llmsafety.exercises.lesson02 import make_papers

LESSON = 13


# --------------------------------------------------------------------------------------------
# 1. A Wilson interval from counts
# --------------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """``(rate, low, high)``: ``successes / n`` and its Wilson score interval.

    With ``z`` the ``1 - (1 - level) / 2`` quantile of the standard normal
    (``NormalDist().inv_cdf``) and ``p = successes / n``: the centre is
    ``(p + z²/2n) / (1 + z²/n)`` and the half-width ``z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)``.
    With no success the low end is 0, with all successes the high end is 1 (exactly: round-off
    leaves 3e-17); clip the others to [0, 1]. ``n = 0``: three NaNs.
    """
    if n <= 0:
        return float("nan"), float("nan"), float("nan")
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = successes / n
    shrink = 1 + z * z / n  # pulls the centre towards 1/2: a small n says little
    centre = (p + z * z / (2 * n)) / shrink
    half = z / shrink * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: round-off leaves 3e-17
    high = 1.0 if successes == n else min(1.0, centre + half)
    return float(p), float(low), float(high)


def _random_counts(rng: np.random.Generator) -> tuple[int, int, float]:
    n = int(rng.integers(1, 201))
    return int(rng.integers(0, n + 1)), n, float(rng.choice([0.8, 0.9, 0.95, 0.99]))


WILSON_INTERVAL = Exercise(
    lesson=LESSON,
    name="wilson_interval",
    title="A Wilson interval from counts",
    difficulty=2,
    importance=2,
    minutes=10,
    reference=wilson_interval,
    cases=[
        (21, 48, 0.95),  # the untuned Target's 21 of 48 prompts labelled 'comply'
        (4, 4, 0.95),    # all reproduced: the bootstrap says [1, 1]; Wilson still leaves room below
        (0, 10, 0.95),   # none: the low end is exactly 0, not a tiny negative number
        (5, 20, 0.9),    # the level matters: z = 1.645, not 1.96
        (0, 0, 0.95),    # nothing measured: undefined
    ],
    random_case=_random_counts,
)


# --------------------------------------------------------------------------------------------
# 2. Is the claim supported?
# --------------------------------------------------------------------------------------------


def claim_status(estimate: float, low: float, high: float, null: float | None, human_checked: bool) -> str:
    """``"descriptive"``, ``"no data"``, ``"not shown"``, ``"supported"`` or ``"judge only"``.

    Decide in this order: no ``null`` (the number claims nothing beyond itself) is
    ``"descriptive"``; a NaN estimate or bound is ``"no data"``; an interval that contains
    ``null``, its ends included, is ``"not shown"``; otherwise ``"supported"`` if the outcomes were
    labelled by people (``human_checked``), else ``"judge only"``.
    """
    if null is None:
        return "descriptive"
    if any(math.isnan(v) for v in (estimate, low, high)):
        return "no data"
    if low <= null <= high:  # an interval that ends at the null value does not exclude it
        return "not shown"
    return "supported" if human_checked else "judge only"


def _random_claim(rng: np.random.Generator) -> tuple[float, float, float, float | None, bool]:
    estimate = float(np.round(rng.uniform(-0.6, 0.6), 3))
    low = float(np.round(estimate - rng.uniform(0.0, 0.4), 3))
    high = float(np.round(estimate + rng.uniform(0.0, 0.4), 3))
    null = None if rng.random() < 0.15 else float(rng.choice([0.0, 0.0, 0.0, 0.2]))
    if rng.random() < 0.1:
        estimate = low = high = float("nan")
    return estimate, low, high, null, bool(rng.random() < 0.5)


CLAIM_STATUS = Exercise(
    lesson=LESSON,
    name="claim_status",
    title="Is the claim supported?",
    difficulty=1,
    importance=3,
    minutes=8,
    reference=claim_status,
    cases=[
        (0.062, -0.062, 0.198, 0.0, True),    # DART - MART by human labels: the interval holds 0
        (0.025, 0.0, 0.062, 0.0, False),      # an interval that ends at 0 does not exclude it
        (0.476, 0.214, 0.696, 0.0, True),     # risk removed, human labels: supported
        (0.453, 0.25, 0.656, 0.0, False),     # over-refusal by the refusal detector: judge only
        (-0.094, -0.312, -0.05, 0.0, False),  # a fall is a change too
        (0.3, 0.25, 0.35, 0.2, True),         # a claim against 20%, not against 0
        (0.438, 0.292, 0.583, None, True),    # a plain rate claims nothing: descriptive
        (float("nan"), float("nan"), float("nan"), None, False),  # descriptive comes first
        (float("nan"), float("nan"), float("nan"), 0.0, True),    # nothing measured
    ],
    random_case=_random_claim,
)


# --------------------------------------------------------------------------------------------
# 3. A finding's number as the report prints it
# --------------------------------------------------------------------------------------------


def format_result(estimate: float, low: float, high: float, n: int, kind: str) -> str:
    """The number, its interval and n, as one string.

    - ``"rate"``: 100 x each value with one decimal, ``%`` after the estimate:
      ``"43.8% [29.2, 58.3] (n=48)"``;
    - ``"difference"``: 100 x each value, one decimal, *every* number signed, `` pts`` after the
      estimate: ``"+6.2 pts [-6.2, +19.8] (n=48)"``;
    - ``"agreement"``: the values as they are, three decimals: ``"0.617 [0.531, 0.707] (n=333)"``.

    A NaN estimate gives ``"n/a (n=<n>)"``; a NaN bound gives ``[no CI]`` in place of the interval.
    """
    if math.isnan(estimate):
        return f"n/a (n={n})"
    scale, spec, unit = {"rate": (100, ".1f", "%"), "difference": (100, "+.1f", " pts"),
                         "agreement": (1, ".3f", "")}[kind]
    if math.isnan(low) or math.isnan(high):
        interval = "[no CI]"
    else:
        interval = f"[{scale * low:{spec}}, {scale * high:{spec}}]"
    return f"{scale * estimate:{spec}}{unit} {interval} (n={n})"


def _random_result(rng: np.random.Generator) -> tuple[float, float, float, int, str]:
    kind = str(rng.choice(["rate", "difference", "agreement"]))
    centre = rng.uniform(0, 1) if kind != "difference" else rng.uniform(-0.5, 0.5)
    low, high = centre - rng.uniform(0, 0.3), centre + rng.uniform(0, 0.3)
    values = [float(centre), float(low), float(high)]
    if rng.random() < 0.1:
        values[1] = values[2] = float("nan")
    return (*values, int(rng.integers(1, 400)), kind)


FORMAT_RESULT = Exercise(
    lesson=LESSON,
    name="format_result",
    title="A finding's number as the report prints it",
    difficulty=1,
    importance=2,
    minutes=8,
    reference=format_result,
    cases=[
        (0.4375, 0.2916667, 0.5833333, 48, "rate"),
        (0.0625, -0.0625, 0.1979167, 48, "difference"),  # signs on every number, positive ones too
        (0.0, -0.1354167, 0.125, 48, "difference"),      # no change is "+0.0", still signed
        (0.6170, 0.5311, 0.7069, 333, "agreement"),      # kappa is not a percentage
        (0.5, float("nan"), float("nan"), 2, "rate"),    # a number without an interval says so
        (float("nan"), float("nan"), float("nan"), 0, "rate"),
    ],
    random_case=_random_result,
)


# --------------------------------------------------------------------------------------------
# 4. Distinct papers per year and area
# --------------------------------------------------------------------------------------------


def papers_per_area_year(df: pd.DataFrame, areas: list[str]) -> pd.DataFrame:
    """Distinct papers per year (rows) and top-level area (columns, exactly ``areas``, in that order).

    Drop entries without a year or ``top_category``, and areas not in ``areas``. Count distinct
    ``paper_id``s per (year, area): a paper listed twice in one area counts once there, listed in
    two areas it counts in both. Rows: every year from the first to the last kept, gaps as 0;
    an area of ``areas`` without papers is a column of 0.
    """
    kept = df.dropna(subset=["year", "top_category"])
    kept = kept[kept["top_category"].isin(areas)]
    pairs = kept.drop_duplicates(subset=["paper_id", "top_category"])  # a paper once per area
    table = pd.crosstab(pairs["year"].astype(int), pairs["top_category"])
    years = range(int(table.index.min()), int(table.index.max()) + 1)  # no silent gaps on an x-axis
    return table.reindex(index=years, columns=list(areas), fill_value=0)


_AREA_IDS = {
    "Robustness to Attack": ["robustness-to-attack/jailbreaking", "robustness-to-attack/red-teaming"],
    "Governance": ["governance/proposals/technical-oversight-proposals", "governance/policies/policy-comparison"],
    "Technology Roadmaps / Strategies to LLM Safety in Practice": [
        "technology-roadmaps-strategies-to-llm-safety-in-practice/evaluation",
        "technology-roadmaps-strategies-to-llm-safety-in-practice/deployment"],
    "Misuse": ["misuse/deepfakes"],
}
_ROADMAP = "Technology Roadmaps / Strategies to LLM Safety in Practice"

# Two areas, a gap year (2021), a paper in two sections of one area, a paper in two areas, an
# undated paper, an area not asked for, and an area asked for that has no paper.
EXAMPLE = make_papers([
    ("p1", 2020, "governance/proposals/technical-oversight-proposals"),
    ("p2", 2022, "governance/policies/policy-comparison"),
    ("p2", 2022, "governance/proposals/technical-oversight-proposals"),  # same area twice: once
    ("p3", 2023, "technology-roadmaps-strategies-to-llm-safety-in-practice/evaluation"),
    ("p3", 2023, "governance/policies/policy-comparison"),  # two areas: once in each
    ("p4", None, "governance/policies/policy-comparison"),  # no year
    ("p5", 2024, "misuse/deepfakes"),  # an area not asked for
])


def _random_area_papers(rng: np.random.Generator) -> tuple[pd.DataFrame, list[str]]:
    areas = list(_AREA_IDS)
    n_papers = int(rng.integers(2, 8))
    years = [None if rng.random() < 0.15 else int(rng.integers(2019, 2025)) for _ in range(n_papers)]
    rows = [(f"p{p}", years[p], str(rng.choice(_AREA_IDS[str(rng.choice(areas))])))
            for p in (int(rng.integers(n_papers)) for _ in range(int(rng.integers(3, 12))))]
    wanted = [a for a in areas if rng.random() < 0.7] or [areas[0]]
    rng.shuffle(wanted)
    # at least one dated entry in a wanted area, so the table has rows
    rows.append(("anchor", int(rng.integers(2019, 2025)), _AREA_IDS[wanted[0]][0]))
    return make_papers(rows), wanted


PAPERS_PER_AREA_YEAR = Exercise(
    lesson=LESSON,
    name="papers_per_area_year",
    title="Distinct papers per year and area",
    difficulty=2,
    importance=2,
    minutes=10,
    reference=papers_per_area_year,
    cases=[
        (EXAMPLE, ["Governance", _ROADMAP]),
        (EXAMPLE, [_ROADMAP, "Governance", "Agent Safety"]),  # the given order; an empty area is zeros
    ],
    random_case=_random_area_papers,
    n_random=10,  # pandas calls take milliseconds each; the fixed cases hold the traps
)


EXERCISES = [WILSON_INTERVAL, CLAIM_STATUS, FORMAT_RESULT, PAPERS_PER_AREA_YEAR]  # the order of the lesson
