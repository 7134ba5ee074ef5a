"""Tests of llmsafety.papers: the parser on the real list and on small hand-written fixtures."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from llmsafety import papers as papers_module
from llmsafety._cache import env_path
from llmsafety.papers import (
    PaperListParseError,
    PaperListUnavailableError,
    PaperListWarning,
    counts_by_category,
    filter_papers,
    load_papers,
    plot_papers_per_year,
    search,
    to_bibtex,
)
from llmsafety.papers import source as papers_source
from llmsafety.taxonomy import TOP_LEVEL_NAMES, load_taxonomy

FIXTURES = Path(__file__).parent / "fixtures"
IRREGULAR = FIXTURES / "papers_irregular.md"
CLEAN = FIXTURES / "papers_clean.md"

# The real list (upstream commit 6749bf7): $LLMSAFETY_PAPERS_SOURCE, else shared/ next to the repo.
SHARED_README = Path(
    env_path("LLMSAFETY_PAPERS_SOURCE")
    or Path(__file__).resolve().parents[2] / "shared/data/awesome-llm-safety-papers/README.md"
)
needs_shared = pytest.mark.skipif(
    not SHARED_README.is_file(),
    reason=f"the paper list's README is not at {SHARED_README} (set LLMSAFETY_PAPERS_SOURCE)",
)


def _load_quietly(source) -> tuple[pd.DataFrame, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_papers(source)
    return df, [w for w in caught if issubclass(w.category, PaperListWarning)]


@pytest.fixture(scope="module")
def irregular():
    return _load_quietly(IRREGULAR)


@pytest.fixture(scope="module")
def shared():
    return _load_quietly(SHARED_README)


def _row(df: pd.DataFrame, **where) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for column, value in where.items():
        mask &= df[column] == value
    matches = df[mask]
    assert len(matches) == 1, f"{len(matches)} rows match {where}"
    return matches.iloc[0]


# --------------------------------------------------------------------------------------------
# The real list
# --------------------------------------------------------------------------------------------


def _entries_per_area_by_line_scan(path: Path) -> dict[str, int]:
    """An independent count: numbered lines between the body headings of the eight areas."""
    counts: dict[str, int] = {}
    area = None
    in_papers = False
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^\s*#+\s+(.*?)\s*$", line)
        if heading:
            name = heading.group(1)
            in_papers = in_papers or name == "Papers"
            if in_papers and name in TOP_LEVEL_NAMES:
                area = name
            continue
        if area and re.match(r"^\s*\d+\.\s+\S", line):
            counts[area] = counts.get(area, 0) + 1
    return counts


@needs_shared
def test_shared_list_has_426_entries_each_in_the_taxonomy(shared):
    df, _ = shared
    assert len(df) == 426
    taxonomy = load_taxonomy()
    assert df["taxonomy_id"].notna().all()
    assert all(node_id in taxonomy for node_id in df["taxonomy_id"])
    assert set(df["top_category"]) == set(TOP_LEVEL_NAMES)
    assert df["line"].is_monotonic_increasing
    assert df["title"].notna().all() and (df["title"].str.len() > 3).all()


@needs_shared
def test_shared_counts_per_area_match_a_line_scan(shared):
    df, _ = shared
    entries = counts_by_category(df, unique=False)
    assert list(entries.index) == list(TOP_LEVEL_NAMES)
    assert entries.to_dict() == _entries_per_area_by_line_scan(SHARED_README)
    unique = counts_by_category(df)
    assert (unique <= entries).all()
    # "Jailbreaking ChatGPT via Prompt Engineering" alone is listed four times in Robustness.
    assert unique["Robustness to Attack"] <= entries["Robustness to Attack"] - 3


@needs_shared
def test_shared_same_paper_in_several_sections_shares_a_paper_id(shared):
    df, _ = shared
    gcg = df[df["arxiv_id"] == "2307.15043"]
    assert len(gcg) == 3  # privacy leakage, white-box attacks, automated red teaming
    assert gcg["paper_id"].nunique() == 1
    assert gcg["taxonomy_id"].nunique() == 3
    # Same paper, once with an arXiv link and once without (AutoDAN, Zhu et al.): joined by title.
    autodan = df[df["title"].str.casefold().str.startswith("autodan: interpretable")]
    assert len(autodan) == 2 and autodan["paper_id"].nunique() == 1
    # An upper-case copy of a title is the same paper (AutoDAN, Liu et al.).
    stealthy = df[df["arxiv_id"] == "2310.04451"]
    assert stealthy["title"].str.isupper().any() and stealthy["paper_id"].nunique() == 1
    assert df["paper_id"].nunique() < len(df)


@needs_shared
def test_shared_gcg_entry_field_by_field(shared):
    df, _ = shared
    gcg = _row(df, alias="GCG")
    assert gcg["title"] == "Universal and Transferable Adversarial Attacks on Aligned Language Models"
    assert gcg["authors"] == "Andy Zou et al"
    assert (gcg["venue"], gcg["year"]) == ("arXiv", 2023)
    assert gcg["arxiv_id"] == "2307.15043"
    assert gcg["url"] == "https://arxiv.org/abs/2307.15043"
    assert gcg["code_url"] == "https://github.com/llm-attacks/llm-attacks"
    assert gcg["section_path"] == ("Robustness to Attack", "Red Teaming", "Automated Red Teaming")
    assert gcg["taxonomy_id"] == "robustness-to-attack/red-teaming/automated-red-teaming"
    assert gcg["top_category"] == "Robustness to Attack"
    assert ("Github", "https://github.com/llm-attacks/llm-attacks") in gcg["links"]


@needs_shared
def test_shared_mart_and_dart_entries(shared):
    df, _ = shared
    mart = _row(df, alias="MART")
    assert mart["title"].startswith("MART: Improving LLM Safety with Multi-round Automatic")
    assert (mart["authors"], mart["venue"], mart["year"]) == ("Suyu Ge et al", "NAACL", 2024)
    assert mart["taxonomy_id"] == "robustness-to-attack/red-teaming/automated-red-teaming"
    assert pd.isna(mart["arxiv_id"])  # listed with its ACL Anthology link only
    # DART (arXiv 2407.03876) is listed under its later title, APRT, in Red Teaming > Evaluation.
    dart = _row(df, arxiv_id="2407.03876")
    assert dart["alias"] == "APRT"
    assert dart["section_path"] == ("Robustness to Attack", "Red Teaming", "Evaluation")
    assert dart["code_url"] == "https://github.com/tjunlp-lab/APRT"


@needs_shared
def test_shared_toc_names_win_over_body_headings(shared):
    df, _ = shared
    # The body has "## Governance", "###### Cyber attacks" and "##### Capability Evluation".
    governance = df[df["top_category"] == "Governance"]
    assert len(governance) > 0
    assert all(path[0] == "Governance" and len(path) == 3 for path in governance["section_path"])
    assert (df["section_path"].str[-1] == "Cyber Attacks").sum() == 2
    capability = df[df["section_path"].str[-1] == "Capability Evaluation"]
    assert set(capability["taxonomy_id"]) == {"autonomous-ai-risks/evaluation/capability-evaluation"}
    # Three areas have an "Evaluation" child; each body "Evaluation" lands in its own area.
    evaluation_ids = {i for i in df["taxonomy_id"] if i.endswith("/evaluation")}
    assert {"robustness-to-attack/red-teaming/evaluation", "misuse/weaponization/evaluation",
            "agent-safety/evaluation"} <= evaluation_ids


@needs_shared
def test_shared_arxiv_ids_are_normalised(shared):
    df, _ = shared
    ids = df["arxiv_id"].dropna()
    assert ids.str.fullmatch(r"\d{4}\.\d{4,5}").all()
    # pdf links, abs links and arXiv DOIs all give the bare id
    assert _row(df, url="https://arxiv.org/pdf/2310.04451")["arxiv_id"] == "2310.04451"
    doi = df[df["url"].fillna("").str.contains("10.48550/arXiv.2309.00770", regex=False)]
    assert list(doi["arxiv_id"]) == ["2309.00770"]


@needs_shared
def test_shared_incomplete_entries_are_reported_once(shared):
    df, caught = shared
    assert len(caught) == 1
    problems = df.attrs["parse_problems"]
    assert problems and all({"line", "title", "problem"} <= set(p) for p in problems)
    message = str(caught[0].message)
    for problem in problems:
        assert f"line {problem['line']}:" in message
    by_title = {p["title"]: p["problem"] for p in problems}
    assert "no link" in by_title["Scaling monosemanticity: Extracting interpretable features from claude 3 sonnet"]
    assert "no year" in by_title["The Threat of Offensive AI to Organizations"]
    assert sum("[Paper] has no URL" in p for p in by_title.values()) == 4
    # Reported rows are kept.
    assert "Scaling monosemanticity" in " ".join(df["title"])


# --------------------------------------------------------------------------------------------
# Hand-written fixtures with the list's irregularities
# --------------------------------------------------------------------------------------------


def test_fixture_fields_of_irregular_entries(irregular):
    df, _ = irregular
    assert len(df) == 15

    persona = _row(df, alias="PersonaX")  # missing closing quote, "*A* *et al*", italic venue
    assert persona["title"] == "Persona Prompts Make Models Misbehave"
    assert (persona["authors"], persona["venue"], persona["year"]) == (
        "Charles Babbage et al", "ACL", 2024)

    copy = df[df["line"] == 60].iloc[0]  # doubled closing quote, "*A* et al.", "2023.*"
    assert copy["title"] == "Saying No Is Hard: Suppressing Refusals in Toy Chat Models"
    assert (copy["authors"], copy["venue"], copy["year"]) == ("Ada Lovelace et al", "arXiv", 2023)
    assert copy["arxiv_id"] == "2301.00001"  # html link

    spanning = _row(df, arxiv_id="2202.00004")  # title over two lines, venue inside the italics
    assert spanning["title"] == "Red Teaming Language Models with Language Models, Again"
    assert (spanning["authors"], spanning["venue"]) == ("Barbara Liskov et al", "arXiv")

    old = _row(df, arxiv_id="hep-th/9901001")  # old-style id with version; no italics
    assert (old["authors"], old["venue"], old["year"]) == ("Claude Shannon", "arXiv", 1999)

    toygcg = _row(df, alias="ToyGCG")  # upper-case title, export.arxiv.org, [Code] link
    assert toygcg["arxiv_id"] == "2303.00003"
    assert toygcg["code_url"] == "https://github.com/example/toy-gcg"

    assert _row(df, alias="ToyBench")["url"] == "https://openreview.net/forum?id=AbC(1)"
    shells = _row(df, line=101)  # a bare [https://...] link
    assert shells["url"] == "https://example.org/shells"
    assert shells["links"] == [("Paper", "https://example.org/shells")]
    autonomy = _row(df, line=117)  # "AAMAS23"
    assert (autonomy["venue"], autonomy["year"]) == ("AAMAS", 2023)
    first = _row(df, line=44)
    assert first["arxiv_id"] == "2301.00001"  # "abs/2301.00001v2"
    assert first["links"] == [
        ("Paper", "https://arxiv.org/abs/2301.00001v2"),
        ("GitHub", "https://github.com/example/saying-no"),
    ]
    assert df["year"].dtype == "Int64"


def test_fixture_sections_follow_the_toc(irregular):
    df, _ = irregular
    by_line = df.set_index("line")
    assert by_line.loc[50, "subsection"] == "Code Jailbreaking"  # a bold label, not a heading
    assert by_line.loc[50, "taxonomy_id"].endswith("/refusal-suppression")
    assert pd.isna(by_line.loc[56, "subsection"])
    assert by_line.loc[97, "section_path"][-1] == "Cyber Attacks"  # body: "Cyber attacks"
    assert by_line.loc[117, "taxonomy_id"] == "autonomous-ai-risks/evaluation/capability-evaluation"
    assert by_line.loc[85, "taxonomy_id"] == "robustness-to-attack/red-teaming/evaluation"
    assert by_line.loc[107, "taxonomy_id"] == "misuse/weaponization/evaluation"
    # "## Governance" in the body is still the top-level area under "Papers".
    assert by_line.loc[133, "section_path"] == (
        "Governance", "Proposals", "Technical Oversight Proposals")
    # A heading missing from the TOC files its entries under the nearest enclosing section.
    assert by_line.loc[123, "taxonomy_id"] == "autonomous-ai-risks"


def test_fixture_paper_ids_join_the_same_paper(irregular):
    df, _ = irregular
    same = df[df["title"] == "Saying No Is Hard: Suppressing Refusals in Toy Chat Models"]
    assert len(same) == 3 and same["paper_id"].nunique() == 1
    assert same["paper_id"].iloc[0] == "arxiv:2301.00001"
    assert df["paper_id"].nunique() == 13


def test_fixture_problems_in_one_warning_and_in_attrs(irregular):
    df, caught = irregular
    assert len(caught) == 1
    message = str(caught[0].message)
    problems = df.attrs["parse_problems"]
    assert [(p["line"], p["problem"]) for p in problems] == [
        (79, "link [Paper] has no URL"),
        (97, "no year"),
        (121, "heading is not in the Table of Contents; its entries are filed under "
              "'Autonomous AI Risks'"),
        (133, "no link"),
    ]
    assert str(IRREGULAR) in message
    assert "line 97: Towards Phishing Detection With Small Models: no year" in message


def test_strict_raises_with_every_problem():
    with pytest.raises(PaperListParseError) as error:
        load_papers(IRREGULAR, strict=True)
    for line in (79, 97, 121, 133):
        assert f"line {line}:" in str(error.value)


def test_clean_list_loads_without_warning_even_when_strict():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = load_papers(CLEAN, strict=True)
    assert len(df) == 2 and df.attrs["parse_problems"] == []
    assert list(df["taxonomy_id"]) == ["value-misalignment/privacy", "agent-safety/language-agent"]
    assert list(df.columns[: len(papers_module.COLUMNS)]) == papers_module.COLUMNS


# --------------------------------------------------------------------------------------------
# Bad inputs and where the list comes from
# --------------------------------------------------------------------------------------------


def test_empty_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "README.md"
    empty.write_text("  \n")
    with pytest.raises(PaperListParseError, match="is empty") as error:
        load_papers(empty)
    assert str(empty) in str(error.value)


def test_file_without_toc_is_not_a_list():
    with pytest.raises(PaperListParseError, match="Table of Contents") as error:
        load_papers(FIXTURES / "papers_not_a_list.md")
    assert "papers_not_a_list.md" in str(error.value)


def test_toc_without_entries_is_not_a_list():
    with pytest.raises(PaperListParseError, match="no numbered paper entries") as error:
        load_papers(FIXTURES / "papers_toc_only.md")
    assert "papers_toc_only.md" in str(error.value)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "README.md"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_papers(missing)


def test_env_var_is_the_default_source(monkeypatch):
    monkeypatch.setenv("LLMSAFETY_PAPERS_SOURCE", str(CLEAN))
    assert load_papers().attrs["source"] == str(CLEAN)


def test_offline_without_cache_says_how_to_pass_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMSAFETY_PAPERS_SOURCE", "")  # empty counts as unset
    monkeypatch.setattr(papers_source, "PAPER_LIST_URL", "http://127.0.0.1:9/README.md")
    monkeypatch.setattr(papers_source, "DOWNLOAD_TIMEOUT_S", 2.0)
    start = time.monotonic()
    with pytest.raises(PaperListUnavailableError) as error:
        load_papers(cache_dir=tmp_path)
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert "127.0.0.1:9" in message
    assert "load_papers('path/to/README.md')" in message and "LLMSAFETY_PAPERS_SOURCE" in message
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    assert isinstance(error.value, ConnectionError)


def test_download_is_cached_reused_and_refreshed(tmp_path):
    upstream = tmp_path / "upstream" / "README.md"
    upstream.parent.mkdir()
    upstream.write_bytes(CLEAN.read_bytes())
    url = upstream.as_uri()  # a file:// URL goes through the same download-and-cache path
    cache = tmp_path / "cache"

    assert len(load_papers(url, cache_dir=cache)) == 2
    assert len(list(cache.iterdir())) == 1

    upstream.write_bytes(IRREGULAR.read_bytes())  # upstream changes: the cache still answers
    assert len(load_papers(url, cache_dir=cache)) == 2
    with pytest.warns(PaperListWarning):
        refreshed = load_papers(url, cache_dir=cache, refresh=True)
    assert len(refreshed) == 15

    upstream.unlink()  # offline: a refresh falls back to the cached copy, with a warning
    with pytest.warns(PaperListWarning, match="cached"):
        assert len(load_papers(url, cache_dir=cache, refresh=True)) == 15


# --------------------------------------------------------------------------------------------
# search, filter_papers, counts_by_category
# --------------------------------------------------------------------------------------------


def test_search_is_case_insensitive_over_title_alias_authors_venue(irregular):
    df, _ = irregular
    assert set(search(df, "red TEAMING")["line"]) == {72, 85}
    assert set(search(df, "personax")["line"]) == {56}  # alias
    assert set(search(df, "lovelace")["line"]) == {44, 60, 107}  # authors
    assert set(search(df, "workshop on toy")["line"]) == {50}  # venue, words in any order
    assert set(search(df, '"models, again"')["line"]) == {72}  # a quoted phrase
    assert search(df, "no such words here").empty
    with pytest.raises(ValueError, match="non-empty"):
        search(df, "  ")


def test_filter_by_id_prefix_name_and_years(irregular):
    df, _ = irregular
    red = filter_papers(df, "robustness-to-attack/red-teaming")
    assert set(red["line"]) == {68, 72, 77, 79, 85}
    assert set(filter_papers(df, "Automated Red Teaming")["line"]) == {68, 72, 77, 79}
    assert set(filter_papers(df, "misuse")["line"]) == {97, 101, 107}
    # A name several nodes share selects all of them.
    assert set(filter_papers(df, "Evaluation")["line"]) == {85, 107, 117}
    recent = filter_papers(df, year_from=2024)
    assert set(recent["line"]) == {56, 79, 123, 133}
    assert set(filter_papers(df, "robustness-to-attack", 2022, 2022)["line"]) == {72}
    assert 97 not in set(filter_papers(df, year_to=2100)["line"])  # no year: dropped


def test_filter_rejects_bad_input(irregular):
    df, _ = irregular
    with pytest.raises(ValueError, match="unknown category 'red-team'") as error:
        filter_papers(df, "red-team")
    assert "'misuse' (Misuse)" in str(error.value)  # lists the valid top-level ids
    with pytest.raises(ValueError, match="after"):
        filter_papers(df, year_from=2024, year_to=2020)
    with pytest.raises(ValueError, match="integer year"):
        filter_papers(df, year_from="2020")


def test_counts_by_category_in_survey_order(irregular):
    df, _ = irregular
    papers = counts_by_category(df)
    assert list(papers.index) == list(TOP_LEVEL_NAMES)
    # By hand from the fixture: 9 entries (8 papers) in Robustness, 3 in Misuse, ...
    assert papers.to_dict() == {
        "Value Misalignment": 0, "Robustness to Attack": 8, "Misuse": 3,
        "Autonomous AI Risks": 2, "Agent Safety": 0, "Interpretability for LLM Safety": 0,
        "Technology Roadmaps / Strategies to LLM Safety in Practice": 0, "Governance": 1,
    }
    assert counts_by_category(df, unique=False)["Robustness to Attack"] == 9


# --------------------------------------------------------------------------------------------
# BibTeX
# --------------------------------------------------------------------------------------------

_ENTRY = re.compile(r"@(article|inproceedings|misc)\{([A-Za-z0-9]+),\n((?:  \w+ += \{.*\},?\n)+)\}")


def _check_bibtex(text: str) -> dict[str, str]:
    """Parse BibTeX back: every entry well-formed, braces balanced, keys unique."""
    chunks = text.strip().split("\n\n")
    entries = {}
    for chunk in chunks:
        match = _ENTRY.fullmatch(chunk)
        assert match, f"malformed entry:\n{chunk}"
        depth = 0
        for ch in chunk:  # BibTeX counts every brace, escaped or not
            if ch in "{}":
                depth += 1 if ch == "{" else -1
                assert depth >= 0, f"unbalanced braces in:\n{chunk}"
        assert depth == 0, f"unbalanced braces in:\n{chunk}"
        assert match.group(2) not in entries, f"duplicate key {match.group(2)}"
        entries[match.group(2)] = chunk
    return entries


def test_bibtex_is_valid_with_one_entry_per_paper(irregular):
    df, _ = irregular
    entries = _check_bibtex(to_bibtex(df))
    assert len(entries) == df["paper_id"].nunique()
    assert {"smith2023safera", "smith2023saferb"} <= set(entries)  # a collision gets a/b
    assert "lovelace2023saying" in entries
    saying = entries["lovelace2023saying"]
    assert saying.startswith("@article") and "eprint        = {2301.00001}" in saying
    assert "archivePrefix = {arXiv}" in saying
    assert entries["babbage2024persona"].startswith("@inproceedings")
    assert "booktitle     = {ACL}" in entries["babbage2024persona"]
    assert entries["franklin2024toy"].startswith("@misc")
    special = entries["cunningham2024oversight"]
    assert r"Oversight \& Audits: \{Braces\} and 100\%" in special and r"\_" in special
    # The upper-case title is written in title case; "and others" stands for "et al".
    assert "Greedy Coordinate Search for Toy Adversarial Suffixes" in entries["dijkstra2023greedy"]
    assert "author        = {Edsger Dijkstra and others}" in entries["dijkstra2023greedy"]
    assert "{ToyBench}" in entries["major2023toybench"]  # capitals protected


def test_bibtex_keys_are_stable(irregular):
    df, _ = irregular
    assert to_bibtex(df) == to_bibtex(df.copy())
    subset = df[df["line"] == 44]
    assert to_bibtex(subset).startswith("@article{lovelace2023saying,")


@needs_shared
def test_bibtex_of_the_shared_list(shared):
    df, _ = shared
    entries = _check_bibtex(to_bibtex(df))
    assert len(entries) == df["paper_id"].nunique()
    assert "zou2023universal" in entries
    assert "eprint        = {2307.15043}" in entries["zou2023universal"]


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def test_plot_papers_per_year_stacks_areas(irregular, tmp_path):
    df, _ = irregular
    fig = plot_papers_per_year(df)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.containers) == 4  # the four areas with dated papers
    totals: dict[int, float] = {}
    for container in ax.containers:
        for bar in container:
            year = round(bar.get_x() + bar.get_width() / 2)
            totals[year] = totals.get(year, 0) + bar.get_height()
    dated = df.dropna(subset=["year"]).drop_duplicates(["paper_id", "top_category"])
    expected = dated.groupby("year").size()
    assert {y: int(n) for y, n in totals.items() if n} == {int(y): int(n) for y, n in expected.items()}
    fig.savefig(tmp_path / "per_year.png")
    assert (tmp_path / "per_year.png").stat().st_size > 0


def test_plot_needs_dated_papers(irregular):
    df, _ = irregular
    with pytest.raises(ValueError, match="no papers"):
        plot_papers_per_year(df[df["year"].isna()])
