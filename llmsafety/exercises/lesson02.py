"""Lesson 02 exercises: counting and filtering the survey's paper list with pandas.

``llmsafety.papers.load_papers()`` gives one row per *entry* of the list, with the columns
``llmsafety.papers.COLUMNS``. The ones used here:

- ``paper_id``: the paper (its arXiv id, else its normalised title). A paper listed in two
  sections has two rows with the same ``paper_id``, so counting rows counts entries, not papers;
- ``year``: an integer, or ``<NA>`` when the entry gives none (dtype ``Int64``);
- ``taxonomy_id``: the section, as a taxonomy id (``"robustness-to-attack/jailbreaking"``);
- ``top_category``: the name of its top-level area (``"Robustness to Attack"``).

The cases are small hand-made frames with the same columns (``make_papers``), so the exercises
run without the real list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsafety.exercises import Exercise
from llmsafety.papers import COLUMNS
from llmsafety.taxonomy import load_taxonomy

_TAX = load_taxonomy()


def make_papers(rows: list[tuple[str, int | None, str]]) -> pd.DataFrame:
    """A paper-list frame from ``(paper_id, year, taxonomy_id)`` rows, as ``load_papers`` makes it.

    ``top_category`` and ``section_path`` are derived from the id; columns the exercises do not
    use (authors, venue, links ...) stay empty.
    """
    records = []
    for line, (paper_id, year, taxonomy_id) in enumerate(rows, start=1):
        parts = taxonomy_id.split("/")
        prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
        # Names from the taxonomy where the node exists; a made-up id keeps its slugs.
        path = tuple(_TAX[p].name if p in _TAX else parts[k] for k, p in enumerate(prefixes))
        records.append({
            "paper_id": paper_id, "title": f"Paper {paper_id}", "year": year, "links": [],
            "section_path": path, "taxonomy_id": taxonomy_id, "top_category": path[0],
            "line": line,
        })
    df = pd.DataFrame(records, columns=COLUMNS)
    df["year"] = df["year"].astype("Int64")  # as load_papers: missing years are <NA>
    return df


# Three areas, nested ids and a repeated paper: the shapes that trip up a count.
EXAMPLE = make_papers([
    ("2307.15043", 2023, "robustness-to-attack/jailbreaking"),
    ("2307.15043", 2023, "robustness-to-attack/red-teaming"),  # same paper, second section
    ("2310.08419", 2023, "robustness-to-attack/jailbreaking"),
    ("2202.03286", 2022, "robustness-to-attack/red-teaming"),
    ("2401.00001", 2024, "value-misalignment/privacy"),
    ("undated-survey", None, "value-misalignment/privacy"),  # no year
    ("2402.00002", 2024, "misuse/weaponization"),
    ("2402.00002", 2024, "misuse/deepfakes"),
])

# Real taxonomy ids at several depths, for random frames.
_IDS = [
    "robustness-to-attack/jailbreaking",
    "robustness-to-attack/red-teaming",
    "robustness-to-attack/defense",
    "value-misalignment/privacy",
    "value-misalignment/toxicity",
    "misuse/weaponization",
    "misuse/deepfakes",
    "governance/policies",
]


def random_papers(rng: np.random.Generator) -> pd.DataFrame:
    """4 to 12 entries of at most 8 papers; a paper keeps one year, some papers have none."""
    n_papers = int(rng.integers(2, 9))
    years = [None if rng.random() < 0.15 else int(rng.integers(2020, 2025)) for _ in range(n_papers)]
    rows = []
    for _ in range(int(rng.integers(4, 13))):
        p = int(rng.integers(n_papers))
        rows.append((f"p{p}", years[p], _IDS[int(rng.integers(len(_IDS)))]))
    return make_papers(rows)


# --------------------------------------------------------------------------------------------
# 1. Papers per year
# --------------------------------------------------------------------------------------------


def papers_per_year(df: pd.DataFrame) -> dict[int, int]:
    """``{year: number of distinct papers}`` over the rows that have a year.

    Distinct ``paper_id``s, not rows: a paper listed in two sections is one paper.
    """
    dated = df.dropna(subset=["year"])
    counts = dated.groupby("year")["paper_id"].nunique()
    return {int(year): int(n) for year, n in counts.items()}


PAPERS_PER_YEAR = Exercise(
    name="papers_per_year",
    lesson=2,
    title="Papers per year",
    difficulty=1,
    importance=2,
    minutes=5,
    reference=papers_per_year,
    cases=[(EXAMPLE,)],
    random_case=lambda rng: (random_papers(rng),),
    n_random=10,  # pandas calls take milliseconds each; the fixed cases hold the traps
)


# --------------------------------------------------------------------------------------------
# 2. Entries in a category from a year on
# --------------------------------------------------------------------------------------------


def in_category_since(df: pd.DataFrame, prefix: str, year_from: int) -> pd.DataFrame:
    """The rows (all columns, original index and order) in category ``prefix`` from ``year_from`` on.

    A row is in the category when its ``taxonomy_id`` is ``prefix`` or lies below it
    (``prefix + "/..."``): "misuse/deepfakes" does *not* contain "misuse/deepfakes-audio".
    Rows without a year are dropped (nobody knows if they are recent enough).
    """
    ids = df["taxonomy_id"].fillna("")
    in_category = (ids == prefix) | ids.str.startswith(prefix + "/")
    # year >= year_from is <NA> for a missing year; fillna(False) drops those rows.
    recent = (df["year"] >= year_from).fillna(False).astype(bool)
    return df[in_category & recent]


def _random_filter_case(rng: np.random.Generator) -> tuple[pd.DataFrame, str, int]:
    df = random_papers(rng)
    taxonomy_id = _IDS[int(rng.integers(len(_IDS)))]
    prefix = taxonomy_id if rng.random() < 0.5 else taxonomy_id.split("/")[0]  # leaf or area
    return df, prefix, int(rng.integers(2020, 2025))


IN_CATEGORY_SINCE = Exercise(
    name="in_category_since",
    lesson=2,
    title="Entries in a category from a year on",
    difficulty=2,
    importance=2,
    minutes=10,
    reference=in_category_since,
    cases=[
        (EXAMPLE, "robustness-to-attack", 2023),  # an area: every id below it
        (EXAMPLE, "value-misalignment/privacy", 2020),  # the undated row is dropped
        # A sibling whose id starts with the prefix's text must not match.
        (make_papers([("a", 2024, "misuse/deepfakes"), ("b", 2024, "misuse/deepfakes-audio"),
                      ("c", 2023, "misuse/deepfakes/voice")]), "misuse/deepfakes", 2022),
    ],
    random_case=_random_filter_case,
    n_random=10,
)


# --------------------------------------------------------------------------------------------
# 3. Distinct papers per top-level area
# --------------------------------------------------------------------------------------------


def papers_per_area(df: pd.DataFrame) -> dict[str, int]:
    """``{top_category: number of distinct papers}`` for the areas that have any.

    A paper listed twice in one area counts once there; listed in two areas, it counts in both.
    """
    counts = df.dropna(subset=["top_category"]).groupby("top_category")["paper_id"].nunique()
    return {area: int(n) for area, n in counts.items()}


PAPERS_PER_AREA = Exercise(
    name="papers_per_area",
    lesson=2,
    title="Distinct papers per top-level area",
    difficulty=1,
    importance=3,
    minutes=5,
    reference=papers_per_area,
    cases=[(EXAMPLE,)],
    random_case=lambda rng: (random_papers(rng),),
    n_random=10,  # pandas calls take milliseconds each; the fixed cases hold the traps
)


EXERCISES = [PAPERS_PER_YEAR, IN_CATEGORY_SINCE, PAPERS_PER_AREA]
