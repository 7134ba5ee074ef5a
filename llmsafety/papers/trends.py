"""Trends in the paper list: distinct papers per area and year, their shares, and a plot.

``plot_papers_per_year`` (``llmsafety.papers.plot``) stacks all eight top-level areas in one bar
per year. A trend question is narrower: did governance grow faster than the rest, which part of
the roadmap topic is newest? So the counts here come as a table (rows years, columns areas) that
can be restricted to one area's children, turned into shares of each year, and drawn as lines.

The list is curated by the survey's authors, not sampled: its counts describe what the survey
chose to cite, and its last year is incomplete (the survey was posted in December 2024). There is
no sampling error to put an interval on; the bias is in the curation, which no interval shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from llmsafety.papers.queries import _survey_order

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["papers_per_area_year", "area_shares", "plot_area_trends"]


def _area_column(df: pd.DataFrame, within: str | None) -> pd.Series:
    """The "area" of each row: its top-level name, or the child of ``within`` it lies under."""
    if within is None:
        return df["top_category"]
    prefix = within.strip("/") + "/"
    ids = df["taxonomy_id"].fillna("")
    below = ids.str.startswith(prefix)
    # "governance/proposals/technical-oversight-proposals" -> "proposals" for within="governance"
    child = ids.str.slice(len(prefix)).str.split("/").str[0]
    return child.where(below)


def papers_per_area_year(
    df: pd.DataFrame,
    areas: Sequence[str] | None = None,
    *,
    within: str | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
) -> pd.DataFrame:
    """Distinct papers per year (rows) and area (columns).

    Parameters
    ----------
    df
        The paper list (``load_papers()``): one row per entry, with ``paper_id``, ``year``
        (``Int64``, ``<NA>`` when unknown), ``top_category`` and ``taxonomy_id``.
    areas
        The columns, in this order; areas not named are left out and a named area without papers
        is a column of zeros. ``None``: every area found, top-level ones in the survey's order.
    within
        A taxonomy id: count by the child of that node each entry lies under (``"governance"`` ->
        ``proposals``, ``policies``, ``visions``) instead of by top-level area.
    year_from, year_to
        Keep only these years (inclusive). The rows are every year from ``year_from`` (else the
        first year kept) to ``year_to`` (else the last), gaps included as zeros, so a plot's
        x-axis is not silently uneven.

    A paper listed twice in one area counts once there; listed in two areas it counts in both
    (``counts_by_category`` counts the same way). Entries without a year or area are dropped.
    """
    frame = df.assign(_area=_area_column(df, within)).dropna(subset=["year", "_area"])
    if year_from is not None:
        frame = frame[frame["year"] >= year_from]
    if year_to is not None:
        frame = frame[frame["year"] <= year_to]
    if areas is None:
        found = list(dict.fromkeys(frame["_area"]))
        order = [a for a in _survey_order(df) if a in found] if within is None else sorted(found)
        areas = order + [a for a in found if a not in order]
    areas = list(areas)
    frame = frame[frame["_area"].isin(areas)]
    if frame.empty:
        return pd.DataFrame(0, index=pd.Index([], name="year", dtype=int), columns=areas)
    pairs = frame.drop_duplicates(subset=["paper_id", "_area"])  # a paper once per area
    table = pd.crosstab(pairs["year"].astype(int), pairs["_area"])
    first = int(table.index.min()) if year_from is None else year_from
    last = int(table.index.max()) if year_to is None else year_to
    table = table.reindex(index=range(first, last + 1), columns=areas, fill_value=0).astype(int)
    table.index.name, table.columns.name = "year", None
    return table


def area_shares(counts: pd.DataFrame) -> pd.DataFrame:
    """Each year's counts as shares of that year's total (rows sum to 1; a year with none is NaN).

    With a paper in two areas counted in both, the total is of (paper, area) pairs, not papers.
    """
    totals = counts.sum(axis=1)
    return counts.div(totals.where(totals > 0), axis=0)


def plot_area_trends(counts: pd.DataFrame, *, share: bool = False, ax: Axes | None = None,
                     title: str | None = None) -> Axes:
    """One line per area over the years: counts, or with ``share=True`` each year's shares.

    The total per year is printed under each x tick: a share of 3 papers and a share of 150 look
    the same on a line, and the reader should see which is which.
    """
    import matplotlib.pyplot as plt

    if counts.empty:
        raise ValueError("no papers to plot: the counts table is empty")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    values = area_shares(counts) if share else counts
    for area in values.columns:
        ax.plot(values.index, values[area], marker="o", label=area)
    totals = counts.sum(axis=1)
    ax.set_xticks(list(values.index), [f"{y}\n(n={int(totals[y])})" for y in values.index], fontsize=8)
    ax.set_ylabel("share of the year's papers" if share else "distinct papers")
    if share:
        ax.set_ylim(0, 1)  # shares: a fixed range, so that a small year's noise does not look like a trend
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
