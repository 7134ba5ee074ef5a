"""The whole tree: :class:`Taxonomy`, with look-up by id, search, text and paper counts.

Its DataFrame export, widget and figure are drawn by :mod:`.views`; build one with
:func:`~.load.load_taxonomy`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from llmsafety.taxonomy.counts import _ids_and_keys, _taxonomy_column
from llmsafety.taxonomy.node import RISK_AREA, TOPIC, TaxonomyNode, slugify
from llmsafety.taxonomy.views import explorer_widget, icicle_figure, node_html, taxonomy_frame

if TYPE_CHECKING:  # heavy imports only where a view is built
    import ipywidgets
    import pandas as pd
    from matplotlib.figure import Figure

_NO_DEFAULT: Any = object()  # marks "no default given" in Taxonomy.get


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
        return taxonomy_frame(self)

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
        return explorer_widget(self, papers)

    def _node_html(
        self, node: TaxonomyNode, papers: pd.DataFrame | None, counts: pd.Series | None
    ) -> str:
        return node_html(self, node, papers, counts)

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
        return icicle_figure(self, papers, node_id, width)
