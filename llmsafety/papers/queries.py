"""Questions about the loaded DataFrame: ``search``, ``filter_papers``, ``counts_by_category``."""

from __future__ import annotations

import difflib
import re

import pandas as pd

from llmsafety.taxonomy import TOP_LEVEL_NAMES, load_taxonomy, slugify

# --------------------------------------------------------------------------------------------
# Working with the DataFrame
# --------------------------------------------------------------------------------------------

_SEARCH_FIELDS = ("title", "alias", "authors", "venue")


def search(df: pd.DataFrame, query: str) -> pd.DataFrame:
    """Rows whose title, alias, authors or venue contain every word of ``query``.

    Case-insensitive plain-text matching; ``"red teaming"`` in double quotes is one phrase.
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"search query must be a non-empty string, got {query!r}")
    terms = [a or b for a, b in re.findall(r'"([^"]+)"|(\S+)', query.casefold())]
    haystack = df[list(_SEARCH_FIELDS)].fillna("").astype(str).agg(" ".join, axis=1).str.casefold()
    mask = pd.Series(True, index=df.index)
    for term in terms:
        mask &= haystack.str.contains(term, regex=False)
    return df[mask]


def filter_papers(
    df: pd.DataFrame,
    category: str | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
) -> pd.DataFrame:
    """Rows in a category and/or a year range (inclusive).

    ``category`` is a taxonomy id or id prefix (``"robustness-to-attack/red-teaming"``) or the
    name of any node (``"Misuse"``, ``"Automated Red Teaming"``; a name several nodes share, like
    "Evaluation", selects all of them). Rows without a year are dropped when a year bound is given.
    """
    mask = pd.Series(True, index=df.index)
    if category is not None:
        ids = _resolve_category(df, category)
        ids_col = df["taxonomy_id"].fillna("")
        in_any = pd.Series(False, index=df.index)
        for node_id in ids:
            in_any |= (ids_col == node_id) | ids_col.str.startswith(node_id + "/")
        mask &= in_any
    for bound, name in ((year_from, "year_from"), (year_to, "year_to")):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise ValueError(f"{name} must be an integer year, got {bound!r}")
    if year_from is not None and year_to is not None and year_from > year_to:
        raise ValueError(f"year_from ({year_from}) is after year_to ({year_to})")
    if year_from is not None:
        mask &= (df["year"] >= year_from).fillna(False).astype(bool)
    if year_to is not None:
        mask &= (df["year"] <= year_to).fillna(False).astype(bool)
    return df[mask]


def _known_categories(df: pd.DataFrame) -> dict[str, str]:
    """Every category id the data or the taxonomy knows, mapped to its node name."""
    known = {node.id: node.name for node in load_taxonomy().walk()}
    for node_id, path in zip(df["taxonomy_id"], df["section_path"]):
        if isinstance(node_id, str):
            parts = node_id.split("/")
            for k in range(len(parts)):
                prefix = "/".join(parts[: k + 1])
                known.setdefault(prefix, path[k] if k < len(path) else parts[k])
    return known


def _resolve_category(df: pd.DataFrame, category: str) -> list[str]:
    if not isinstance(category, str) or not category.strip():
        raise ValueError(f"category must be a non-empty string, got {category!r}")
    known = _known_categories(df)
    wanted = category.strip().strip("/").lower()
    if wanted in known:
        return [wanted]
    by_name = [i for i, name in known.items() if name.casefold() == wanted.casefold()]
    by_slug = [i for i in known if i.rsplit("/", 1)[-1] == slugify(wanted)]
    if by_name or by_slug:
        return by_name or by_slug
    close = difflib.get_close_matches(wanted, list(known) + list(known.values()), n=5, cutoff=0.6)
    tops = [f"{i!r} ({n})" for i, n in known.items() if "/" not in i]
    raise ValueError(
        f"unknown category {category!r}."
        + (f" Close matches: {', '.join(repr(c) for c in close)}." if close else "")
        + f" Use a taxonomy id (or its prefix) or a node name; top-level: {', '.join(tops)}. "
        "`llmsafety taxonomy` lists every node."
    )


def _survey_order(df: pd.DataFrame) -> list[str]:
    order = list(TOP_LEVEL_NAMES)
    order += [c for c in df["top_category"].dropna().unique() if c not in order]
    return order


def counts_by_category(df: pd.DataFrame, *, unique: bool = True) -> pd.Series:
    """Papers per top-level area, in the survey's order (all eight, zeros included).

    ``unique=True`` counts distinct ``paper_id``s (a paper listed twice in an area counts once,
    a paper listed in two areas counts in both); ``unique=False`` counts entries.
    """
    known = df.dropna(subset=["top_category"])
    grouped = known.groupby("top_category")["paper_id"]
    counts = grouped.nunique() if unique else grouped.size()
    counts = counts.reindex(_survey_order(df), fill_value=0).astype(int)
    counts.index.name = "top_category"
    return counts.rename("papers" if unique else "entries")
