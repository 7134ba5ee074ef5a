"""``load_papers``: read the list (``source``), parse it (``parser``), give ids (``ids``), warn once."""

from __future__ import annotations

import os
import warnings

import pandas as pd

from llmsafety.papers.ids import _assign_paper_ids, _assign_taxonomy_ids, _shorten
from llmsafety.papers.parser import _parse_paper_list
from llmsafety.papers.source import PaperListParseError, PaperListWarning, _read_source

COLUMNS = [
    "paper_id",
    "title",
    "alias",
    "authors",
    "venue",
    "year",
    "url",
    "arxiv_id",
    "code_url",
    "links",
    "section_path",
    "taxonomy_id",
    "top_category",
    "subsection",
    "line",
]


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_papers(
    source: str | os.PathLike | None = None,
    *,
    refresh: bool = False,
    cache_dir: str | os.PathLike | None = None,
    strict: bool = False,
) -> pd.DataFrame:
    """Read the paper list into a DataFrame, one row per entry.

    Parameters
    ----------
    source
        A path or an http(s) URL of the list's README. ``None``: ``$LLMSAFETY_PAPERS_SOURCE`` if
        set, else the README pinned to commit ``PAPER_LIST_COMMIT``, downloaded once into the user
        cache and reused offline.
    refresh
        Download a URL again even if a cached copy exists.
    cache_dir
        Where downloads are kept (default: ``llmsafety._cache.cache_dir("papers")``).
    strict
        Raise ``PaperListParseError`` instead of warning when entries cannot be fully read.

    Returns
    -------
    pandas.DataFrame
        Columns ``COLUMNS``; ``df.attrs["parse_problems"]`` lists what could not be read (dicts
        with ``line``, ``title``, ``problem``) and ``df.attrs["source"]`` names the file read.
    """
    text, origin = _read_source(source, refresh=refresh, cache_dir=cache_dir)
    rows, problems = _parse_paper_list(text, origin)
    _assign_paper_ids(rows, problems)
    _assign_taxonomy_ids(rows, problems)
    problems.sort(key=lambda p: p["line"])

    if problems:
        report = _problem_report(problems, origin)
        if strict:
            raise PaperListParseError(report)
        warnings.warn(report, PaperListWarning, stacklevel=2)

    df = pd.DataFrame(rows, columns=COLUMNS)
    df["year"] = df["year"].astype("Int64")
    df["line"] = df["line"].astype(int)
    df.attrs["source"] = origin
    df.attrs["parse_problems"] = problems
    return df


def _problem_report(problems: list[dict], origin: str) -> str:
    lines = [
        f"{len(problems)} problem(s) reading the paper list {origin} "
        "(rows are kept with the missing fields empty; see df.attrs['parse_problems']):"
    ]
    lines += [f"  line {p['line']}: {_shorten(p['title'])}: {p['problem']}" for p in problems]
    return "\n".join(lines)
