"""The README's measured numbers come from benchmarks/results/: a rerun cannot leave it stale.

Two rules, over the README's "## Results" and "## GPU" sections:
- a table whose header row is also in a file of benchmarks/results/ must have every one of its
  rows in that same file, verbatim;
- every decimal number in those sections occurs somewhere in benchmarks/results/ (tables,
  reports, JSON), except the paper's own figures and the few listed below with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
README = (REPO / "README.md").read_text(encoding="utf-8")

# Numbers the README may state without a results file, and why.
NOT_FROM_RESULTS = {
    "53.4": "DART paper's headline (arXiv 2407.03876v1)",
    "41.7": "the paper's MART figure",
    "0.27": "GFLOP per token of SmolLM2-135M (arithmetic: 2 x 134.5M)",
}
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _tables(text: str) -> list[list[str]]:
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line.rstrip())
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def _results_texts() -> dict[str, str]:
    return {str(p.relative_to(RESULTS)): p.read_text(encoding="utf-8") for p in sorted(RESULTS.rglob("*"))
            if p.suffix in {".md", ".json", ".jsonl", ".csv"}}


def test_readme_has_one_results_and_one_gpu_section():
    assert len(re.findall(r"^## Results$", README, flags=re.M)) == 1
    assert len(re.findall(r"^## GPU$", README, flags=re.M)) == 1


@pytest.mark.parametrize("title", ["Results", "GPU"])
def test_readme_tables_match_benchmark_results(title):
    files = _results_texts()
    for table in _tables(_section(title)):
        header = table[0]
        homes = [name for name, text in files.items() if header in text]
        if not homes:
            continue  # a table the README composes itself: its numbers are checked one by one below
        for row in table[2:]:
            assert any(row in files[name] for name in homes), (
                f"README row not in {homes}: {row[:120]} - rerun the benchmark's report and copy its table")


@pytest.mark.parametrize("title", ["Results", "GPU"])
def test_every_readme_number_comes_from_benchmark_results(title):
    corpus = "\n".join(_results_texts().values())
    known = set(DECIMAL.findall(corpus))
    # a results file may print 62.6 where the README says 62.6%; also accept trailing-zero forms
    known |= {k.rstrip("0").rstrip(".") for k in known}
    text = re.sub(r"\]\([^)]*\)", "]", _section(title))  # link targets hold arXiv ids, not results
    missing = sorted({n for n in DECIMAL.findall(text)
                      if n not in known and n.rstrip("0").rstrip(".") not in known and n not in NOT_FROM_RESULTS})
    assert not missing, f"README '## {title}' states numbers found in no file of benchmarks/results/: {missing}"
