"""``plot_papers_per_year``: unique papers per year, stacked by top-level area (matplotlib)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from llmsafety.papers.queries import _survey_order

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def plot_papers_per_year(df: pd.DataFrame) -> Figure:
    """Stacked bars: unique papers per year, one colour per top-level area.

    A paper listed in two areas counts once in each; papers without a year are left out (the
    figure says how many).
    """
    from matplotlib.figure import Figure

    dated = df.dropna(subset=["year", "top_category"])
    if dated.empty:
        raise ValueError("no papers with a year and a category to plot")
    pairs = dated.drop_duplicates(subset=["paper_id", "top_category"])
    table = pd.crosstab(pairs["year"].astype(int), pairs["top_category"])
    years = range(int(table.index.min()), int(table.index.max()) + 1)
    order = [c for c in _survey_order(df) if c in table.columns]
    table = table.reindex(index=years, columns=order, fill_value=0)

    fig = Figure(figsize=(11, 5.2), layout="constrained")
    ax = fig.subplots()
    colours = _category_colours(_survey_order(df))
    bottom = pd.Series(0, index=table.index)
    for category in order:
        ax.bar(table.index, table[category], bottom=bottom, label=category,
               color=colours[category], edgecolor="white", linewidth=0.5)
        bottom = bottom + table[category]
    ax.set_xlabel("year")
    ax.set_ylabel("papers")
    ax.set_xticks(list(years))
    ax.tick_params(axis="x", labelrotation=90 if len(years) > 20 else 0)
    ax.set_title("Papers per year in the LLM safety survey's paper list")
    ax.spines[["top", "right"]].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()  # legend top to bottom = stack top to bottom
    ax.legend(handles[::-1], labels[::-1], title="top-level area", loc="upper left",
              fontsize="small", frameon=False)
    undated = df.loc[df["year"].isna(), "paper_id"].nunique()
    if undated:
        ax.annotate(f"{undated} paper(s) without a year not shown", xy=(0, -0.14),
                    xycoords="axes fraction", fontsize="small", color="grey")
    return fig


def _category_colours(categories: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {c: palette(i % 10) for i, c in enumerate(categories)}
