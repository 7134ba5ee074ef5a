"""The taxonomy's views: the DataFrame export, the ipywidgets explorer and the icicle figure.

These are the bodies of :meth:`Taxonomy.to_dataframe <.tree.Taxonomy.to_dataframe>`,
:meth:`~.tree.Taxonomy.explorer` and :meth:`~.tree.Taxonomy.plot`, which call them; use the methods.
"""

from __future__ import annotations

import html
import textwrap
from typing import TYPE_CHECKING

from llmsafety.taxonomy.counts import _is_missing

if TYPE_CHECKING:  # heavy imports only where a view is built
    import ipywidgets
    import pandas as pd
    from matplotlib.figure import Figure

    from llmsafety.taxonomy.node import TaxonomyNode
    from llmsafety.taxonomy.tree import Taxonomy


# ----------------------------------------------------------------- tables
def taxonomy_frame(tax: Taxonomy) -> pd.DataFrame:
    """The body of :meth:`Taxonomy.to_dataframe`: one row per node, depth-first."""
    import pandas as pd

    rows = [
        {
            "id": n.id,
            "name": n.name,
            "depth": n.depth,
            "parent_id": n.parent.id if n.parent else None,
            "area": n.top.name,
            "kind": n.kind,
            "is_leaf": n.is_leaf,
            "n_children": len(n.children),
            "key_terms": "; ".join(n.key_terms),
            "description": n.description,
        }
        for n in tax
    ]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------- widget
def explorer_widget(tax: Taxonomy, papers: pd.DataFrame | None) -> ipywidgets.Widget:
    """The body of :meth:`Taxonomy.explorer`."""
    import ipywidgets as widgets

    counts = tax.paper_counts(papers) if papers is not None else None
    # Non-breaking spaces: browsers collapse ordinary leading spaces in <select> options.
    options = [
        (
            "\u00a0\u00a0\u00a0" * n.depth
            + n.name
            + (f"  ({counts[n.id]})" if counts is not None else ""),
            n.id,
        )
        for n in tax
    ]
    select = widgets.Select(
        options=options,
        value=tax.roots[0].id,
        rows=24,
        description="",
        layout=widgets.Layout(width="42%", min_width="280px"),
    )
    panel = widgets.HTML(layout=widgets.Layout(width="56%", padding="0 0 0 12px"))

    def show(_change: object = None) -> None:
        panel.value = tax._node_html(tax[select.value], papers, counts)

    select.observe(show, names="value")
    show()
    return widgets.HBox([select, panel])


def node_html(
    tax: Taxonomy, node: TaxonomyNode, papers: pd.DataFrame | None, counts: pd.Series | None
) -> str:
    """The body of :meth:`Taxonomy._node_html`: the explorer's panel for one node."""
    esc = html.escape
    crumbs = " › ".join(esc(p) for p in node.path)
    parts = [
        f"<div style='font-size:0.85em;color:#666'>{crumbs}</div>",
        f"<h3 style='margin:0.2em 0'>{esc(node.name)}</h3>",
        f"<div><code>{esc(node.id)}</code> &middot; {esc(node.kind)}: {esc(node.top.name)}</div>",
        f"<p>{esc(node.description)}</p>",
        "<p><b>Key terms:</b> " + " &middot; ".join(esc(t) for t in node.key_terms) + "</p>",
    ]
    if node.children:
        parts.append(
            "<p><b>Sub-areas:</b> " + ", ".join(esc(c.name) for c in node.children) + "</p>"
        )
    if papers is not None and counts is not None:
        parts.append(f"<p><b>Papers in this subtree:</b> {int(counts[node.id])}</p>")
        subset = tax.papers_under(papers, node.id)
        if "paper_id" in subset.columns:
            subset = subset.drop_duplicates("paper_id")
        items = []
        for _, row in subset.head(10).iterrows():
            title = esc(str(row.get("title", "")))
            url = row.get("url")
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                title = f"<a href='{esc(url)}' target='_blank'>{title}</a>"
            year = row.get("year")
            when = f" ({int(year)})" if year is not None and not _is_missing(year) else ""
            items.append(f"<li>{title}{when}</li>")
        if items:
            more = len(subset) - len(items)
            parts.append("<ol style='margin-top:0'>" + "".join(items) + "</ol>")
            if more > 0:
                parts.append(f"<div style='color:#666'>… and {more} more</div>")
    return "\n".join(parts)


# ----------------------------------------------------------------- figure
def icicle_figure(
    tax: Taxonomy, papers: pd.DataFrame | None, node_id: str | None, width: float
) -> Figure:
    """The body of :meth:`Taxonomy.plot`: the tree as an icicle chart."""
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    counts = tax.paper_counts(papers) if papers is not None else None
    starts = tax.roots if node_id is None else (tax[node_id],)
    nodes = [n for s in starts for n in s.walk()]
    leaves = [n for n in nodes if n.is_leaf]
    base_depth = starts[0].depth
    n_levels = max(n.depth for n in nodes) - base_depth + 1

    # Rows: leaves in order; a node spans from its first to its last leaf.
    row_of = {leaf.id: i for i, leaf in enumerate(leaves)}
    span: dict[str, tuple[int, int]] = {}
    for n in reversed(nodes):  # children before parents
        if n.is_leaf:
            span[n.id] = (row_of[n.id], row_of[n.id] + 1)
        else:
            span[n.id] = (span[n.children[0].id][0], span[n.children[-1].id][1])

    # Column widths in inches: deeper columns hold the longest names.
    row_in, fontsize = 0.27, 7.5
    bar_in = 2.2 if counts is not None else 0.0
    tree_in = width - bar_in - 0.4
    weights = [1.0, 1.15, 1.35, 1.35][:n_levels] + [1.35] * max(0, n_levels - 4)
    col_in = [tree_in * w / sum(weights) for w in weights]
    col_x = [sum(col_in[:i]) for i in range(n_levels)]
    height = max(2.5, row_in * len(leaves) + 0.9)

    fig = Figure(figsize=(width, height))
    top_frac = 1 - 0.55 / height
    bottom_frac = 0.15 / height
    ax = fig.add_axes((0.2 / width, bottom_frac, tree_in / width, top_frac - bottom_frac))
    ax.set_xlim(0, tree_in)
    ax.set_ylim(len(leaves), 0)
    ax.axis("off")

    palette = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
        "#59a14f", "#edc948", "#b07aa1", "#9c755f",
    ]  # Tableau 10: distinct and colour-blind-friendly enough for 8 areas
    area_colour = {r.id: to_rgb(palette[i % len(palette)]) for i, r in enumerate(tax.roots)}

    def shade(rgb: tuple[float, float, float], level: int) -> tuple[float, ...]:
        mix = min(0.15 + 0.2 * level, 0.8)  # lighter with depth, text stays readable
        return tuple(c + (1 - c) * mix for c in rgb)

    line_in = fontsize * 1.25 / 72
    # Average glyph widths of the default font, in em: bold is wider.
    char_in = {True: fontsize * 0.62 / 72, False: fontsize * 0.54 / 72}
    for n in nodes:
        level = n.depth - base_depth
        y0, y1 = span[n.id]
        x0 = col_x[level]
        w = tree_in - x0 if n.is_leaf else col_in[level]
        ax.add_patch(
            Rectangle(
                (x0, y0), w, y1 - y0,
                facecolor=shade(area_colour[n.top.id], level),
                edgecolor="white", linewidth=1.2,
            )
        )
        text = n.name if counts is None else f"{n.name} ({counts[n.id]})"
        if level == 0 and n.depth == 0:
            text += f"\n[{n.kind}]"
        max_lines = max(1, int((y1 - y0) * row_in / line_in))
        max_chars = max(4, int((w - 0.1) / char_in[level == 0]))
        ax.text(
            x0 + 0.06, (y0 + y1) / 2, _fit(text, max_chars, max_lines),
            va="center", ha="left", fontsize=fontsize,
            fontweight="bold" if level == 0 else "normal",
        )

    if counts is not None:
        bx = fig.add_axes(
            ((0.2 + tree_in + 0.1) / width, bottom_frac, (bar_in - 0.2) / width,
             top_frac - bottom_frac),
            sharey=ax,
        )
        values = [int(counts[leaf.id]) for leaf in leaves]
        bx.barh(
            [i + 0.5 for i in range(len(leaves))], values, height=0.75,
            color=[area_colour[leaf.top.id] for leaf in leaves],
        )
        top_value = max(values) if values and max(values) > 0 else 1
        bx.set_xlim(0, top_value * 1.25)
        for i, v in enumerate(values):
            bx.text(v + top_value * 0.02, i + 0.5, str(v), va="center", fontsize=fontsize - 1)
        bx.set_ylim(len(leaves), 0)
        bx.tick_params(left=False, labelleft=False, labelsize=fontsize)
        for side in ("top", "right", "left"):
            bx.spines[side].set_visible(False)
        bx.set_xlabel("papers per leaf", fontsize=fontsize)
        bx.xaxis.set_label_position("top")
        bx.xaxis.tick_top()

    scope = "" if node_id is None else f": {tax[node_id].name}"
    title = f"LLM safety taxonomy{scope} (Shi et al., arXiv {tax.survey.get('arxiv_id', '')})"
    if counts is not None:
        title += " with papers from the paper list"
    fig.suptitle(title, x=0.2 / width, y=1 - 0.12 / height, ha="left", va="top", fontsize=11)
    return fig


def _fit(text: str, max_chars: int, max_lines: int) -> str:
    """Wrap ``text`` into at most ``max_lines`` lines of ``max_chars``, ending in "…" if cut."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(textwrap.wrap(paragraph, max_chars) or [""])
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(1, max_chars - 1)].rstrip() + "…"
    return "\n".join(lines)
