"""The survey's curated paper list as a pandas DataFrame: load, search, filter, count, cite, plot.

The list is the README of https://github.com/tjunlp-lab/Awesome-LLM-Safety-Papers, the companion
of "Large Language Model Safety: A Holistic Survey" (arXiv 2412.17686). It is hand-written
markdown, so the parser is forgiving: it reads the section tree from the README's own Table of
Contents (the survey's hierarchy, whatever heading levels the body uses), reads every numbered
entry it finds, and names every entry it cannot fully read in one ``PaperListWarning``.

>>> from llmsafety.papers import load_papers, search, counts_by_category
>>> papers = load_papers()                        # $LLMSAFETY_PAPERS_SOURCE, or the pinned README
>>> counts_by_category(papers)                    # unique papers per top-level area
>>> search(papers, "red teaming")[["title", "year"]]

One row per entry of the list. A paper listed in several sections has several rows that share a
``paper_id`` (its arXiv id, else its normalised title).

Modules, in the order the data flows through them:

- ``source``   the pinned URL and commit, the errors and warning, reading a file or a (cached) URL
- ``load``     ``load_papers`` and ``COLUMNS``: read, parse, assign ids, report problems once
- ``parser``   the Table of Contents and the body: which section each entry is under
- ``entry``    one entry: title, alias, authors, venue, year, links, arXiv id
- ``ids``      ``paper_id`` (same paper, same id) and ``taxonomy_id``/``top_category``
- ``queries``  ``search``, ``filter_papers``, ``counts_by_category``
- ``bibtex``   ``to_bibtex``
- ``plot``     ``plot_papers_per_year``

Everything public is importable from ``llmsafety.papers`` itself. To change a setting such as
``PAPER_LIST_URL`` or ``DOWNLOAD_TIMEOUT_S`` at run time, set it on ``llmsafety.papers.source``.
"""

from llmsafety.papers.bibtex import to_bibtex
from llmsafety.papers.load import COLUMNS as COLUMNS
from llmsafety.papers.load import load_papers
from llmsafety.papers.plot import plot_papers_per_year
from llmsafety.papers.queries import counts_by_category, filter_papers, search
from llmsafety.papers.source import DOWNLOAD_TIMEOUT_S as DOWNLOAD_TIMEOUT_S
from llmsafety.papers.source import PAPER_LIST_COMMIT as PAPER_LIST_COMMIT
from llmsafety.papers.source import PAPER_LIST_REPO as PAPER_LIST_REPO
from llmsafety.papers.source import (
    PAPER_LIST_URL,
    PaperListParseError,
    PaperListUnavailableError,
    PaperListWarning,
)
from llmsafety.papers.source import SOURCE_ENV_VAR as SOURCE_ENV_VAR

__all__ = [
    "PAPER_LIST_URL",
    "PaperListParseError",
    "PaperListUnavailableError",
    "PaperListWarning",
    "counts_by_category",
    "filter_papers",
    "load_papers",
    "plot_papers_per_year",
    "search",
    "to_bibtex",
]
