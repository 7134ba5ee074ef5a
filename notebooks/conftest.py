"""nbval runs the lessons; those that read the survey's paper list skip, saying why, without it.

The paper list has no licence, so the package does not ship it: it is downloaded once (pinned
commit) or read from ``$LLMSAFETY_PAPERS_SOURCE``. On an offline machine without a local copy the
lessons that use it cannot run; every other lesson still does.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def _paper_list_missing() -> str | None:
    from llmsafety.papers import PaperListUnavailableError, load_papers

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_papers()
    except (PaperListUnavailableError, FileNotFoundError) as err:
        return " ".join(str(err).split())[:300]
    return None


# The lessons built on the paper list; others that glance at it (lesson 03) carry on without it.
NEEDS_PAPER_LIST = {"01_survey_taxonomy.ipynb", "02_paper_explorer.ipynb", "13_governance_capstone.ipynb"}


def _needs_paper_list(notebook: Path) -> bool:
    return notebook.name in NEEDS_PAPER_LIST


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if path.suffix != ".ipynb" or path.parent != HERE or not _needs_paper_list(path):
            continue
        reason = _paper_list_missing()
        if reason:
            item.add_marker(pytest.mark.skip(
                reason=f"{path.name} reads the paper list, which is not available here "
                       f"(set LLMSAFETY_PAPERS_SOURCE to a local README.md): {reason}"))
