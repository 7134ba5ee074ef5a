"""The taxonomy of the survey "Large Language Model Safety: A Holistic Survey" as a tree.

The survey (Shi et al., 2024, arXiv 2412.17686) sorts LLM safety research into four *risk
areas* (Value Misalignment, Robustness to Attack, Misuse, Autonomous AI Risks) and four related
*topics* (Agent Safety, Interpretability, Technology Roadmaps, Governance). Its paper list
(tjunlp-lab/Awesome-LLM-Safety-Papers) files every paper under a node of that tree. This module
loads the tree from ``taxonomy/taxonomy.yaml`` (shipped as ``llmsafety.taxonomy_data``) and lets
you look nodes up, search them, print them, explore them in a widget and draw them.

Every node has an id made from its path of names, so ids never drift from names::

    slugify("Black-box Attacks") == "black-box-attacks"
    "robustness-to-attack/jailbreaking/black-box-attacks/role-play"

Typical use::

    from llmsafety.taxonomy import load_taxonomy
    tax = load_taxonomy()
    print(tax.render("robustness-to-attack", max_depth=1))
    tax["value-misalignment/privacy"].description
    tax.find("watermark")
"""

from __future__ import annotations

import difflib
import functools
import html
import importlib.resources
import re
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # heavy imports only where a view is built
    import ipywidgets
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "TOP_LEVEL_NAMES",
    "RISK_AREAS",
    "TOPICS",
    "RISK_AREA",
    "TOPIC",
    "Taxonomy",
    "TaxonomyError",
    "TaxonomyNode",
    "default_taxonomy_path",
    "load_taxonomy",
    "paper_counts",
    "slugify",
]

#: The survey's eight top-level areas, in the survey's order.
TOP_LEVEL_NAMES: tuple[str, ...] = (
    "Value Misalignment",
    "Robustness to Attack",
    "Misuse",
    "Autonomous AI Risks",
    "Agent Safety",
    "Interpretability for LLM Safety",
    "Technology Roadmaps / Strategies to LLM Safety in Practice",
    "Governance",
)
#: The four areas the survey reviews as risks (with methods and evaluation for each).
RISK_AREAS: tuple[str, ...] = TOP_LEVEL_NAMES[:4]
#: The four further topics the survey discusses.
TOPICS: tuple[str, ...] = TOP_LEVEL_NAMES[4:]

#: Values of :attr:`TaxonomyNode.kind`.
RISK_AREA = "risk area"
TOPIC = "topic"

_NODE_KEYS = {"name", "description", "key_terms", "children"}
_NO_DEFAULT: Any = object()  # marks "no default given" in Taxonomy.get


def slugify(name: str) -> str:
    """Lower-case ``name`` and join its runs of letters and digits with "-".

    >>> slugify("Technology Roadmaps / Strategies to LLM Safety in Practice")
    'technology-roadmaps-strategies-to-llm-safety-in-practice'
    """
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class TaxonomyError(ValueError):
    """The taxonomy YAML is malformed; the message names the file and the bad node."""


@dataclass(frozen=True, eq=False, repr=False)
class TaxonomyNode:
    """One node of the taxonomy: an area, a sub-area or a leaf.

    Attributes
    ----------
    id : str
        Slugs of the path joined by "/", e.g. ``"value-misalignment/privacy"``.
    name : str
        The name the survey's paper list uses, e.g. ``"Privacy"``.
    description : str
        Two to four sentences explaining the node to a student.
    key_terms : tuple of str
        A few terms worth knowing (and searching for) in this area.
    depth : int
        0 for the eight top-level areas, 1 for their children, and so on.
    path : tuple of str
        Names from the top-level area down to this node.
    kind : str
        ``"risk area"`` or ``"topic"``: which half of the survey the node's area belongs to.
    parent : TaxonomyNode or None
    children : tuple of TaxonomyNode
    """

    id: str
    name: str
    description: str
    key_terms: tuple[str, ...]
    depth: int
    path: tuple[str, ...]
    kind: str
    # Set once while the tree is built (the loader links parents and children), never after.
    parent: TaxonomyNode | None = None
    children: tuple[TaxonomyNode, ...] = ()

    @property
    def slug(self) -> str:
        """The last part of the id: ``slugify(name)``."""
        return self.id.rsplit("/", 1)[-1]

    @property
    def top(self) -> TaxonomyNode:
        """The top-level area this node belongs to (itself for a top-level node)."""
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def walk(self) -> Iterator[TaxonomyNode]:
        """This node and all its descendants, depth-first in the survey's order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def __repr__(self) -> str:
        return f"TaxonomyNode({self.id!r})"


class Taxonomy:
    """The whole tree: look-up by id, search, tables, text, widget and figure.

    Build one with :func:`load_taxonomy`. Iterating yields every node depth-first.

    Attributes
    ----------
    roots : tuple of TaxonomyNode
        The top-level areas, in the survey's order.
    survey : Mapping
        Citation data of the survey: title, authors, year, arxiv_id, url, paper_list, citation.
    source : str
        Where the tree was read from.
    """

    def __init__(self, roots: Sequence[TaxonomyNode], *, survey: Mapping[str, Any], source: str):
        self.roots: tuple[TaxonomyNode, ...] = tuple(roots)
        self.survey: Mapping[str, Any] = MappingProxyType(dict(survey))
        self.source = source
        self._by_id: dict[str, TaxonomyNode] = {n.id: n for root in self.roots for n in root.walk()}

    # ----------------------------------------------------------------- look-up
    @property
    def risk_areas(self) -> tuple[TaxonomyNode, ...]:
        return tuple(r for r in self.roots if r.kind == RISK_AREA)

    @property
    def topics(self) -> tuple[TaxonomyNode, ...]:
        return tuple(r for r in self.roots if r.kind == TOPIC)

    @property
    def ids(self) -> tuple[str, ...]:
        """All node ids, depth-first."""
        return tuple(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[TaxonomyNode]:
        return iter(self._by_id.values())

    def __contains__(self, item: object) -> bool:
        if isinstance(item, TaxonomyNode):
            return self._by_id.get(item.id) is item
        return isinstance(item, str) and item in self._by_id

    def __getitem__(self, node_id: str) -> TaxonomyNode:
        try:
            return self._by_id[node_id]
        except (KeyError, TypeError):
            raise KeyError(
                f"no taxonomy node with id {node_id!r}; closest ids: "
                f"{', '.join(self._closest_ids(str(node_id))) or '(none)'}. "
                "Ids are slug paths such as 'value-misalignment/privacy'; list them with tax.ids."
            ) from None

    def get(self, node_id: str, default: Any = _NO_DEFAULT) -> TaxonomyNode | Any:
        """The node with this id; without ``default``, a missing id raises a helpful KeyError."""
        if default is not _NO_DEFAULT and node_id not in self._by_id:
            return default
        return self[node_id]

    def walk(self, node_id: str | None = None) -> Iterator[TaxonomyNode]:
        """Nodes depth-first: the whole tree, or the subtree under ``node_id``."""
        if node_id is None:
            return iter(self)
        return self[node_id].walk()

    def leaves(self, node_id: str | None = None) -> list[TaxonomyNode]:
        """Nodes without children, in order (under ``node_id`` if given)."""
        return [n for n in self.walk(node_id) if n.is_leaf]

    def node_for_path(self, path: Sequence[str] | str) -> TaxonomyNode:
        """The node reached by following names from a top-level area downwards.

        Names are compared by slug, so ``"Cyber attacks"`` finds ``"Cyber Attacks"``. A string
        is split on ``" > "``.

        Raises
        ------
        KeyError
            Naming the path, the first name that does not match and the closest nodes.
        """
        names = [p.strip() for p in path.split(" > ")] if isinstance(path, str) else list(path)
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(f"a taxonomy path is a non-empty sequence of names, got {path!r}")
        node: TaxonomyNode | None = None
        for name in names:
            candidates = self.roots if node is None else node.children
            wanted = slugify(name)
            match = next((c for c in candidates if c.slug == wanted), None)
            if match is None:
                where = "the top-level areas" if node is None else f"the children of {node.id!r}"
                close = difflib.get_close_matches(
                    wanted, [c.slug for c in candidates], n=3, cutoff=0.5
                )
                suggestions = [c.id for c in candidates if c.slug in close]
                suggestions = suggestions or self._closest_ids(wanted)
                raise KeyError(
                    f"no taxonomy node for path {' > '.join(names)!r}: {name!r} is not among "
                    f"{where}; closest nodes: {', '.join(suggestions) or '(none)'}"
                )
            node = match
        assert node is not None
        return node

    def find(self, query: str) -> list[TaxonomyNode]:
        """Nodes whose name, description or key terms contain every word of ``query``.

        Case-insensitive; results come in tree order.
        """
        words = query.lower().split()
        if not words:
            raise ValueError("find() needs a non-empty query, e.g. tax.find('jailbreak')")
        hits = []
        for node in self:
            text = " ".join((node.name, node.description, *node.key_terms)).lower()
            if all(w in text for w in words):
                hits.append(node)
        return hits

    def _closest_ids(self, query: str, n: int = 3) -> list[str]:
        """Ids that look like ``query``: same last slug first, then similar strings."""
        query_slug = "/".join(slugify(part) for part in query.split("/"))
        last = query_slug.rsplit("/", 1)[-1]
        same_leaf = [i for i in self._by_id if i.rsplit("/", 1)[-1] == last]
        similar = difflib.get_close_matches(query_slug, list(self._by_id), n=n, cutoff=0.4)
        leaf_similar = [
            i
            for s in difflib.get_close_matches(last, {i.rsplit("/", 1)[-1] for i in self._by_id}, n=n)
            for i in self._by_id
            if i.rsplit("/", 1)[-1] == s
        ]
        ordered = list(dict.fromkeys(same_leaf + similar + leaf_similar))
        return ordered[:n]

    # ----------------------------------------------------------------- tables and text
    def to_dataframe(self) -> pd.DataFrame:
        """One row per node, depth-first: id, name, depth, parent_id, area, kind, is_leaf,
        n_children, key_terms (joined with "; "), description."""
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
            for n in self
        ]
        return pd.DataFrame(rows)

    def render(
        self,
        node_id: str | None = None,
        max_depth: int | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> str:
        """The tree as indented text.

        Parameters
        ----------
        node_id : str, optional
            Render only this node and its descendants.
        max_depth : int, optional
            How many levels below the starting level to show (0 shows only the top-level
            areas, or only ``node_id``).
        counts : mapping of id to int, optional
            A number to show next to each node, e.g. ``tax.paper_counts(papers)``; ids
            missing from it show 0.
        """
        if max_depth is not None and max_depth < 0:
            raise ValueError(f"max_depth must be >= 0 or None, got {max_depth}")
        if counts is not None:
            unknown = [k for k in counts.keys() if k not in self._by_id]
            if unknown:
                raise ValueError(
                    f"counts has ids that are not in the taxonomy: {unknown[:5]}; "
                    "use ids such as 'value-misalignment/privacy' (see tax.ids)"
                )
        starts = self.roots if node_id is None else (self[node_id],)
        lines: list[str] = []

        def label(node: TaxonomyNode) -> str:
            return f"{node.name} ({int(counts.get(node.id, 0))})" if counts is not None else node.name

        def add(node: TaxonomyNode, prefix: str, level: int) -> None:
            if max_depth is not None and level > max_depth:
                return
            kids = node.children if max_depth is None or level < max_depth else ()
            for i, child in enumerate(kids):
                last = i == len(kids) - 1
                lines.append(f"{prefix}{'└── ' if last else '├── '}{label(child)}")
                add(child, prefix + ("    " if last else "│   "), level + 1)

        for start in starts:
            lines.append(label(start))
            add(start, "", 0)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return (
            f"<Taxonomy of arXiv {self.survey.get('arxiv_id', '?')}: {len(self.roots)} areas, "
            f"{len(self)} nodes, {len(self.leaves())} leaves, from {Path(self.source).name}>"
        )

    # ----------------------------------------------------------------- papers
    def paper_counts(self, papers: Any, *, distinct: bool = True) -> pd.Series:
        """Papers per node, each node counting the papers of its whole subtree.

        Parameters
        ----------
        papers : DataFrame or iterable of str
            A frame with a ``taxonomy_id`` column (``llmsafety.papers.load_papers()``), or the
            ids themselves. Rows without an id are skipped.
        distinct : bool
            With a ``paper_id`` column, a paper listed under two sub-areas counts once for
            their common ancestors (and once in each sub-area).

        Returns
        -------
        pandas.Series
            int counts indexed by node id in tree order (0 where a node has no papers).
        """
        import pandas as pd

        ids, keys = _ids_and_keys(papers, distinct)
        members: dict[str, set] = {node_id: set() for node_id in self._by_id}
        unknown: list[str] = []
        for node_id, key in zip(ids, keys):
            if node_id is None:
                continue
            if node_id not in members:
                unknown.append(node_id)
                continue
            node: TaxonomyNode | None = self._by_id[node_id]
            while node is not None:
                members[node.id].add(key)
                node = node.parent
        if unknown:
            raise ValueError(
                f"{len(unknown)} papers have taxonomy ids that are not in this taxonomy, e.g. "
                f"{sorted(set(unknown))[:5]}; label papers with tax.node_for_path(...).id"
            )
        return pd.Series({k: len(v) for k, v in members.items()}, name="papers", dtype="int64")

    def papers_under(self, papers: pd.DataFrame, node_id: str) -> pd.DataFrame:
        """The rows of ``papers`` filed under ``node_id`` or any of its descendants."""
        self[node_id]  # a clear KeyError for a bad id
        column = _taxonomy_column(papers)
        ids = column.fillna("").astype(str)
        return papers[(ids == node_id) | ids.str.startswith(node_id + "/")]

    # ----------------------------------------------------------------- widget
    def explorer(self, papers: pd.DataFrame | None = None) -> ipywidgets.Widget:
        """An ipywidgets explorer: pick a node on the left, read about it on the right.

        With ``papers`` (a frame with ``taxonomy_id``), each node shows how many papers its
        subtree holds and the titles of up to 10 of them.
        """
        import ipywidgets as widgets

        counts = self.paper_counts(papers) if papers is not None else None
        # Non-breaking spaces: browsers collapse ordinary leading spaces in <select> options.
        options = [
            (
                "\u00a0\u00a0\u00a0" * n.depth
                + n.name
                + (f"  ({counts[n.id]})" if counts is not None else ""),
                n.id,
            )
            for n in self
        ]
        select = widgets.Select(
            options=options,
            value=self.roots[0].id,
            rows=24,
            description="",
            layout=widgets.Layout(width="42%", min_width="280px"),
        )
        panel = widgets.HTML(layout=widgets.Layout(width="56%", padding="0 0 0 12px"))

        def show(_change: object = None) -> None:
            panel.value = self._node_html(self[select.value], papers, counts)

        select.observe(show, names="value")
        show()
        return widgets.HBox([select, panel])

    def _node_html(
        self, node: TaxonomyNode, papers: pd.DataFrame | None, counts: pd.Series | None
    ) -> str:
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
            subset = self.papers_under(papers, node.id)
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
    def plot(
        self,
        papers: pd.DataFrame | None = None,
        *,
        node_id: str | None = None,
        width: float = 14.0,
    ) -> Figure:
        """Draw the tree as an icicle chart: areas on the left, sub-areas to their right.

        Each leaf gets one row; a node spans the rows of its leaves. One colour per
        top-level area, lighter with depth. With ``papers``, every label carries the paper
        count of its subtree and a bar panel on the right compares the leaves.

        Parameters
        ----------
        papers : DataFrame, optional
            A frame with a ``taxonomy_id`` column (``llmsafety.papers.load_papers()``).
        node_id : str, optional
            Draw only this subtree.
        width : float
            Figure width in inches; the height follows from the number of leaves.
        """
        from matplotlib.colors import to_rgb
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        counts = self.paper_counts(papers) if papers is not None else None
        starts = self.roots if node_id is None else (self[node_id],)
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
        area_colour = {r.id: to_rgb(palette[i % len(palette)]) for i, r in enumerate(self.roots)}

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

        scope = "" if node_id is None else f": {self[node_id].name}"
        title = f"LLM safety taxonomy{scope} (Shi et al., arXiv {self.survey.get('arxiv_id', '')})"
        if counts is not None:
            title += " with papers from the paper list"
        fig.suptitle(title, x=0.2 / width, y=1 - 0.12 / height, ha="left", va="top", fontsize=11)
        return fig


# --------------------------------------------------------------------- loading
def default_taxonomy_path() -> Path:
    """Where the packaged ``taxonomy.yaml`` lives.

    It is read through ``importlib.resources`` (package ``llmsafety.taxonomy_data``). In a
    source checkout that has not been pip-installed that package does not exist, so the
    file next to the package (``taxonomy/taxonomy.yaml``) is used instead.
    """
    try:
        resource = importlib.resources.files("llmsafety.taxonomy_data") / "taxonomy.yaml"
        if resource.is_file():
            return Path(str(resource))
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "taxonomy" / "taxonomy.yaml"


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate the taxonomy (the packaged one by default, cached).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    TaxonomyError
        (a ValueError) If the YAML is malformed; the message names the bad node.
    """
    if path is None:
        return _load_default()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _load_default() -> Taxonomy:
    return _load(default_taxonomy_path())


def _load(path: Path) -> Taxonomy:
    if not path.is_file():
        raise FileNotFoundError(
            f"taxonomy file not found: {path}; call load_taxonomy() without a path for the "
            "packaged taxonomy"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise TaxonomyError(f"{path} is not valid YAML: {err}") from None
    return _build(data, str(path))


def _build(data: Any, source: str) -> Taxonomy:
    """Check the parsed YAML and turn it into linked nodes with derived ids."""

    def fail(where: str, problem: str) -> TaxonomyError:
        return TaxonomyError(f"{source}: {where}: {problem}")

    if not isinstance(data, Mapping):
        raise fail("top level", "expected a mapping with keys survey, risk_areas, topics, areas")
    for key in ("survey", "risk_areas", "topics", "areas"):
        if key not in data:
            raise fail("top level", f"missing key {key!r}")
    survey = data["survey"]
    if not isinstance(survey, Mapping) or not survey.get("arxiv_id"):
        raise fail("survey", "expected a mapping with at least an arxiv_id")
    areas = data["areas"]
    if not isinstance(areas, list) or not areas:
        raise fail("areas", "expected a non-empty list of top-level areas")

    kinds: dict[str, str] = {}
    for key, kind in (("risk_areas", RISK_AREA), ("topics", TOPIC)):
        names = data[key]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise fail(key, "expected a list of top-level area names")
        for name in names:
            if name in kinds:
                raise fail(key, f"{name!r} is listed as both a risk area and a topic (or twice)")
            kinds[name] = kind

    by_id: dict[str, TaxonomyNode] = {}

    def build(raw: Any, where: str, parent: TaxonomyNode | None, kind: str) -> TaxonomyNode:
        if not isinstance(raw, Mapping):
            raise fail(where, f"expected a mapping with name/description/key_terms, got {raw!r}")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip() or not slugify(name):
            raise fail(where, f"missing or empty 'name' (got {name!r})")
        path = (*parent.path, name) if parent else (name,)
        label = f"node {' > '.join(path)!r}"
        extra = set(raw) - _NODE_KEYS
        if extra:
            raise fail(label, f"unknown keys {sorted(extra)}; allowed: {sorted(_NODE_KEYS)}")
        description = raw.get("description")
        if not isinstance(description, str) or not description.strip():
            raise fail(label, "missing or empty 'description'")
        key_terms = raw.get("key_terms")
        if (
            not isinstance(key_terms, list)
            or not key_terms
            or not all(isinstance(t, str) and t.strip() for t in key_terms)
        ):
            raise fail(label, f"'key_terms' must be a non-empty list of strings, got {key_terms!r}")
        children_raw = raw.get("children") or []
        if not isinstance(children_raw, list):
            raise fail(label, f"'children' must be a list, got {children_raw!r}")

        node_id = f"{parent.id}/{slugify(name)}" if parent else slugify(name)
        if node_id in by_id:
            raise fail(label, f"duplicate id {node_id!r} (same slug as {by_id[node_id].path!r})")
        node = TaxonomyNode(
            id=node_id,
            name=name.strip(),
            description=" ".join(description.split()),
            key_terms=tuple(t.strip() for t in key_terms),
            depth=len(path) - 1,
            path=path,
            kind=kind,
            parent=parent,
        )
        by_id[node_id] = node
        children = tuple(
            build(child, f"{label}, child {i}", node, kind) for i, child in enumerate(children_raw)
        )
        object.__setattr__(node, "children", children)  # the one place nodes are completed
        return node

    roots = []
    for i, raw in enumerate(areas):
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if name not in kinds:
            raise fail(
                f"areas[{i}] ({name!r})",
                "every top-level area must be listed under risk_areas or topics",
            )
        roots.append(build(raw, f"areas[{i}]", None, kinds[name]))
    missing = set(kinds) - {r.name for r in roots}
    if missing:
        raise fail("risk_areas/topics", f"names without a top-level area: {sorted(missing)}")
    return Taxonomy(roots, survey=survey, source=source)


# --------------------------------------------------------------------- helpers
def paper_counts(papers: Any, taxonomy: Taxonomy | None = None, *, distinct: bool = True) -> pd.Series:
    """Papers per taxonomy node including descendants; see :meth:`Taxonomy.paper_counts`."""
    return (taxonomy or load_taxonomy()).paper_counts(papers, distinct=distinct)


def _taxonomy_column(papers: Any) -> pd.Series:
    columns = getattr(papers, "columns", None)
    if columns is None or "taxonomy_id" not in columns:
        raise ValueError(
            "papers must be a DataFrame with a 'taxonomy_id' column, such as "
            "llmsafety.papers.load_papers()"
        )
    return papers["taxonomy_id"]


def _ids_and_keys(papers: Any, distinct: bool) -> tuple[list[str | None], list[Any]]:
    """Taxonomy ids of the papers, and what makes two rows the same paper."""
    if hasattr(papers, "columns"):
        ids = [None if _is_missing(v) else str(v) for v in _taxonomy_column(papers)]
        if distinct and "paper_id" in papers.columns:
            keys = list(papers["paper_id"])
        else:
            keys = list(range(len(ids)))
        return ids, keys
    if isinstance(papers, (str, bytes)) or not isinstance(papers, Iterable):
        raise ValueError(
            f"papers must be a DataFrame with 'taxonomy_id' or an iterable of ids, got {type(papers).__name__}"
        )
    ids = [None if _is_missing(v) else str(v) for v in papers]
    return ids, list(range(len(ids)))


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _fit(text: str, max_chars: int, max_lines: int) -> str:
    """Wrap ``text`` into at most ``max_lines`` lines of ``max_chars``, ending in "…" if cut."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(textwrap.wrap(paragraph, max_chars) or [""])
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(1, max_chars - 1)].rstrip() + "…"
    return "\n".join(lines)
