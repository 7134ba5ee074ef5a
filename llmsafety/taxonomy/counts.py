"""Counting papers per taxonomy node: :func:`paper_counts` and the helpers that read a paper
frame (or a plain list of ids) for :meth:`Taxonomy.paper_counts <.tree.Taxonomy.paper_counts>`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from llmsafety._io import is_missing as _is_missing

if TYPE_CHECKING:
    import pandas as pd

    from llmsafety.taxonomy.tree import Taxonomy


def paper_counts(papers: Any, taxonomy: Taxonomy | None = None, *, distinct: bool = True) -> pd.Series:
    """Papers per taxonomy node including descendants; see :meth:`Taxonomy.paper_counts`."""
    # Imported here: load imports tree, which imports this module.
    from llmsafety.taxonomy.load import load_taxonomy

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


