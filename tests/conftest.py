"""Shared fixtures. Tests never touch the network: data comes from ../shared/data (CI) or is skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _shared(env: str, relative: str) -> str | None:
    value = os.environ.get(env, "").strip()
    path = Path(value) if value else SHARED / relative
    return str(path) if path.exists() else None


@pytest.fixture(scope="session")
def hh_source() -> str:
    path = _shared("LLMSAFETY_HH_SOURCE", "hh-rlhf/harmless-base-test.jsonl.gz")
    if path is None:
        pytest.skip("hh-rlhf harmless test file not found: set LLMSAFETY_HH_SOURCE")
    return path


@pytest.fixture(scope="session")
def papers_source() -> str:
    path = _shared("LLMSAFETY_PAPERS_SOURCE", "awesome-llm-safety-papers/README.md")
    if path is None:
        pytest.skip("paper list README not found: set LLMSAFETY_PAPERS_SOURCE")
    return path


@pytest.fixture(scope="session", autouse=True)
def _offline_and_quiet():
    # No test may reach the hub; the embedded models are all we need.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    yield
