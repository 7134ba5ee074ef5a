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
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import os
import re
import unicodedata
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from llmsafety._cache import atomic_write_bytes, env_path
from llmsafety._cache import cache_dir as _user_cache_dir
from llmsafety.taxonomy import TOP_LEVEL_NAMES, load_taxonomy, slugify

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

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

PAPER_LIST_REPO = "tjunlp-lab/Awesome-LLM-Safety-Papers"
# The list changes upstream; the parser, tests and lessons are written against this commit.
PAPER_LIST_COMMIT = "6749bf77aa508e549451671fe00cc1f2afa725a0"
PAPER_LIST_URL = (
    f"https://raw.githubusercontent.com/{PAPER_LIST_REPO}/{PAPER_LIST_COMMIT}/README.md"
)
SOURCE_ENV_VAR = "LLMSAFETY_PAPERS_SOURCE"
DOWNLOAD_TIMEOUT_S = 20.0

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


class PaperListWarning(UserWarning):
    """Some entries of the paper list could not be fully read (they are kept, with gaps)."""


class PaperListParseError(ValueError):
    """The file is not a readable paper list, or (``strict=True``) some entries are incomplete."""


class PaperListUnavailableError(ConnectionError):
    """The paper list could not be downloaded and no cached copy exists."""


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


def _shorten(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _read_source(
    source: str | os.PathLike | None, *, refresh: bool, cache_dir: str | os.PathLike | None
) -> tuple[str, str]:
    """The list's text and a name for it (path or URL) to use in messages."""
    from_env = False
    if source is None:
        source = env_path(SOURCE_ENV_VAR)
        from_env = source is not None
        if source is None:
            source = PAPER_LIST_URL  # read at call time, so tests can point it elsewhere
    name = os.fspath(source)

    if _is_url(name):
        path = _cached_download(name, refresh=refresh, cache_dir=cache_dir)
    else:
        path = Path(name).expanduser()
        if path.is_dir() and (path / "README.md").is_file():
            path = path / "README.md"
        if not path.is_file():
            hint = f" (from ${SOURCE_ENV_VAR})" if from_env else ""
            raise FileNotFoundError(
                f"paper list not found: {path}{hint}. Pass a copy of README.md of "
                f"https://github.com/{PAPER_LIST_REPO}: load_papers('path/to/README.md'), "
                f"`llmsafety papers --source PATH`, or ${SOURCE_ENV_VAR}=PATH."
            )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PaperListParseError(f"{name} is not UTF-8 text ({err}); is it the README?") from err
    return text, name


def _is_url(text: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) is not None


def _cached_download(url: str, *, refresh: bool, cache_dir: str | os.PathLike | None) -> Path:
    folder = Path(cache_dir).expanduser() if cache_dir is not None else _user_cache_dir("papers")
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    basename = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").rsplit("/", 1)[-1]) or "list"
    target = folder / f"{digest}-{basename}"
    if target.is_file() and not refresh:
        return target
    try:
        data = _download(url)
    except PaperListUnavailableError as err:
        if target.is_file():
            warnings.warn(
                f"{err}; using the copy cached at {target}", PaperListWarning, stacklevel=4
            )
            return target
        raise PaperListUnavailableError(
            f"{err}, and no cached copy exists in {folder}. Work offline by passing a local copy "
            f"of the list's README.md: load_papers('path/to/README.md'), or set "
            f"{SOURCE_ENV_VAR}=path/to/README.md (`llmsafety papers --source PATH` on the command "
            f"line). The file is README.md of https://github.com/{PAPER_LIST_REPO}."
        ) from err
    atomic_write_bytes(target, data)
    return target


def _download(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "llmsafety"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise PaperListUnavailableError(f"could not download {url} ({reason})") from err
    if not data.strip():
        raise PaperListUnavailableError(f"could not download {url} (empty response)")
    return data


# --------------------------------------------------------------------------------------------
# Parsing: the Table of Contents gives the tree, the body gives the entries
# --------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_TOC_ITEM = re.compile(
    r"^(?P<indent>[ \t]*)(?:[*+-]|\d+[.)])[ \t]+"
    r"(?:\[(?P<name>[^\]]+)\]\((?P<target>[^)]*)\)|(?P<plain>\S.*?))[ \t]*$"
)
_ENTRY_START = re.compile(r"^[ \t]*(?:\d+[.)]|[*+-])[ \t]+(?=\S)")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_HTML_TAG = re.compile(r"<[^>]+>")
_EXPLICIT_ANCHOR = re.compile(r"""<a\s+(?:name|id)\s*=\s*["']([^"']+)["']|\{#([^}]+)\}""")
_YEAR = re.compile(r"(?<![\d.])(19[5-9]\d|20\d\d)(?![\d])")
_FUZZY_HEADING_MATCH = 0.85


def _github_anchor(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, each space a '-'."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@dataclass(eq=False)
class _Section:
    """A node of the list's Table of Contents."""

    name: str
    anchor: str
    parent: _Section | None
    order: int  # position in the TOC, top to bottom
    children: list[_Section] = field(default_factory=list)

    def lineage(self) -> list[_Section]:
        node, path = self, []
        while node is not None:
            path.append(node)
            node = node.parent
        return path[::-1]


def _parse_paper_list(text: str, origin: str) -> tuple[list[dict], list[dict]]:
    if not text.strip():
        raise PaperListParseError(f"{origin} is empty; expected the paper list's README.md")
    lines = text.splitlines()
    toc_roots, toc_order, body_start = _parse_toc(lines, origin)
    papers_root = next((s for s in toc_order if slugify(s.name) == "papers"), None)

    rows: list[dict] = []
    problems: list[dict] = []
    current: _Section | None = None
    heading_level: dict[int, int] = {}  # id(section) -> '#' count of the heading that opened it
    stray_heading: tuple[int, str] | None = None  # a heading not in the TOC, awaiting entries
    subsection: str | None = None
    block: list[tuple[int, str]] = []
    in_fence = False

    def flush() -> None:
        nonlocal stray_heading
        if not block:
            return
        row, missing = _parse_entry(block)
        block.clear()
        row["section_path"] = _section_names(current, papers_root)
        row["subsection"] = subsection
        rows.append(row)
        if missing:
            problems.append({"line": row["line"], "title": row["title"] or "?", "problem": missing})
        if stray_heading is not None:
            where = " > ".join(row["section_path"]) or "no section"
            problems.append(
                {
                    "line": stray_heading[0],
                    "title": stray_heading[1],
                    "problem": f"heading is not in the Table of Contents; its entries are filed "
                    f"under '{where}'",
                }
            )
            stray_heading = None

    for number, line in enumerate(lines[body_start:], start=body_start + 1):
        if _FENCE.match(line):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level, raw = len(heading.group(1)), heading.group(2)
            name = _clean_heading(raw)
            anchor = next((a or b for a, b in _EXPLICIT_ANCHOR.findall(raw)), None)
            section = _match_heading(name, anchor, current, toc_roots, toc_order)
            subsection = None
            if section is not None:
                current, stray_heading = section, None
                heading_level[id(section)] = level
            else:
                # Not in the TOC: the '#' count is the only hint where it belongs.
                ancestors = current.lineage() if current else []
                kept = [s for s in ancestors if heading_level.get(id(s), 0) < level]
                current = kept[-1] if kept else None
                stray_heading = (number, name)
            continue
        if _ENTRY_START.match(line) and _looks_like_entry(line):
            flush()
            block.append((number, line))
            continue
        if _is_label(line) and (not block or _block_is_complete(block)):
            # e.g. "**Code Jailbreaking**" inside Refusal Suppression: a group with no TOC entry.
            flush()
            subsection = _clean_label(line)
            continue
        if block:
            block.append((number, line))
    flush()

    if not rows:
        raise PaperListParseError(
            f"{origin} has a Table of Contents but no numbered paper entries "
            '(like `1. **"Title"**.`); is it the paper list\'s README.md?'
        )
    return rows, problems


def _parse_toc(lines: list[str], origin: str) -> tuple[list[_Section], list[_Section], int]:
    """The TOC's tree, its nodes in order, and the index of the first line after it."""
    start = None
    in_fence = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        heading = _HEADING.match(line)
        if not in_fence and heading and slugify(_clean_heading(heading.group(2))) in {
            "table-of-contents",
            "contents",
        }:
            start = i + 1
            break
    if start is None:
        raise PaperListParseError(
            f"{origin} has no 'Table of Contents' heading, so it is not the paper list's "
            f"README.md (https://github.com/{PAPER_LIST_REPO})"
        )

    roots: list[_Section] = []
    order: list[_Section] = []
    stack: list[tuple[int, _Section]] = []
    end = len(lines)
    for i in range(start, len(lines)):
        line = lines[i]
        if _HEADING.match(line):
            end = i
            break
        item = _TOC_ITEM.match(line)
        if not item:
            continue
        indent = len(item.group("indent").expandtabs(4))
        name = _clean_heading(item.group("name") or item.group("plain"))
        target = (item.group("target") or "").strip()
        anchor = target[1:] if target.startswith("#") else slugify(name)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else None
        section = _Section(name=name, anchor=anchor.lower(), parent=parent, order=len(order))
        (parent.children if parent else roots).append(section)
        order.append(section)
        stack.append((indent, section))
    if not order:
        raise PaperListParseError(f"{origin} has a 'Table of Contents' heading but no items under it")
    return roots, order, end


def _clean_heading(text: str) -> str:
    text = _HTML_TAG.sub("", text)
    text = re.sub(r"\{#[^}]*\}", "", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [name](link) -> name
    return " ".join(text.replace("*", "").replace("`", "").split())


def _match_heading(
    name: str,
    anchor: str | None,
    current: _Section | None,
    roots: list[_Section],
    order: list[_Section],
) -> _Section | None:
    """The TOC node a body heading stands for.

    Nearest first: children of the current node, of its parent, ... up to the top level (so a
    second "Evaluation" finds the Evaluation of the area we are in); then any later node in TOC
    order (the body follows the TOC, so a heading that skips a level is still found). Exact
    (anchor or name) matches come before fuzzy ones ("Capability Evluation").
    """
    levels: list[list[_Section]] = []
    node = current
    while True:
        levels.append(node.children if node is not None else roots)
        if node is None:
            break
        node = node.parent
    later = order[current.order + 1 :] if current is not None else order
    key, github = slugify(name), _github_anchor(name)

    def exact(section: _Section) -> bool:
        return (
            (anchor is not None and section.anchor == anchor.lower())
            or slugify(section.name) == key
            or section.anchor in (key, github)
        )

    def similarity(section: _Section) -> float:
        return difflib.SequenceMatcher(None, slugify(section.name), key).ratio()

    for candidates in [*levels, later]:
        for section in candidates:
            if exact(section):
                return section
    for candidates in [*levels, later]:
        if candidates:
            best = max(candidates, key=similarity)
            if similarity(best) >= _FUZZY_HEADING_MATCH:
                return best
    return None


def _section_names(section: _Section | None, papers_root: _Section | None) -> tuple[str, ...]:
    """The TOC names from below "Papers" down to ``section``."""
    if section is None:
        return ()
    path = section.lineage()
    if papers_root is not None:
        if papers_root not in path:
            return tuple(s.name for s in path)  # outside "Papers": no taxonomy node
        path = path[path.index(papers_root) + 1 :]
    return tuple(s.name for s in path)


def _looks_like_entry(line: str) -> bool:
    # A numbered item is an entry; a bullet only when it carries a bold or quoted title.
    return bool(re.match(r"^[ \t]*\d", line)) or "**" in line or '"' in line or "“" in line


def _is_label(line: str) -> bool:
    """A short title-like line that is neither heading nor entry, e.g. "Chemical Weaponization"."""
    text = _clean_label(line)
    if not text or len(text) > 60 or len(text.split()) > 8:
        return False
    if re.search(r"[\[\]()]|https?:|\bet al\b", line) or _YEAR.search(text):
        return False
    return text[0].isupper() and not text.endswith((".", ",", ";"))


def _clean_label(line: str) -> str:
    return " ".join(_HTML_TAG.sub("", line).replace("*", "").replace("_", " ").split()).rstrip(":")


def _block_is_complete(block: list[tuple[int, str]]) -> bool:
    """Whether an entry already has its metadata (a year or a link), so a label may follow."""
    text = " ".join(line for _, line in block)
    after_title = text.split("**")[-1] if text.count("**") >= 2 else text
    return bool(_YEAR.search(after_title) or "](" in text or "http" in text or "[" in after_title)


# --------------------------------------------------------------------------------------------
# One entry: `N. Alias: **"Title"**.`, then `*Authors et al*. Venue Year. [[Paper](url)] ...`
# --------------------------------------------------------------------------------------------

_URL_IN_PARENS = r"(?P<url>(?:\\.|[^()\\\n]|\([^()\n]*\))+)"
_LINK = re.compile(
    r"\[\[(?P<name2>[^\[\]]+)\]\(\s*" + _URL_IN_PARENS.replace("url", "url2") + r"\s*\)\]"
    r"|\[(?P<name>[^\[\]]+)\]\(\s*" + _URL_IN_PARENS + r"\s*\)"
    r"|\[\s*(?P<bare>https?://[^\]\s]+)\s*\]"
    r"|\[(?P<placeholder>[A-Za-z][\w .+-]{0,30})\]"
    r"|<?(?P<raw>https?://[^\s\]\)>]+)>?"
)
_PAPER_LINK_NAMES = {"paper", "pdf", "arxiv", "book", "blog", "article", "doi", "report", "link"}
_CODE_LINK_NAMES = {"github", "code", "gitlab", "repo", "repository"}
_ARXIV_PATTERNS = [
    # new-style ids, any link form: abs / pdf / html / DOI 10.48550, optional version and .pdf
    re.compile(r"arxiv\.org/(?:abs|pdf|html|format)/(\d{4}\.\d{4,5})(?:v\d+)?", re.I),
    re.compile(r"10\.48550/arxiv\.(\d{4}\.\d{4,5})(?:v\d+)?", re.I),
    re.compile(r"\barxiv:\s*(\d{4}\.\d{4,5})(?:v\d+)?", re.I),
    # old-style ids such as hep-th/9901001 or cs.CL/0112017
    re.compile(r"arxiv\.org/(?:abs|pdf)/([a-z-]+(?:\.[a-z]{2})?/\d{7})(?:v\d+)?", re.I),
]


def _parse_entry(block: list[tuple[int, str]]) -> tuple[dict, str]:
    """One row from an entry's lines, and what could not be read ('' when complete)."""
    line_number = block[0][0]
    text = " ".join(line.strip() for _, line in block)
    text = _HTML_TAG.sub("", _ENTRY_START.sub("", text, count=1)).strip()
    missing: list[str] = []

    alias, title, rest = _split_title(text)
    if title is None:
        missing.append("no title in **\"...\"**")
        title = _fallback_title(text)

    links, link_start = _find_links(rest)
    meta = rest[:link_start] if link_start is not None else rest
    authors, venue, year = _split_meta(meta)

    if not authors:
        missing.append("no authors")
    if not venue:
        missing.append("no venue")
    if year is None:
        missing.append("no year")
    if not links:
        missing.append("no link")
    for name, url in links:
        if url is None:
            missing.append(f"link [{name}] has no URL")

    url = _pick_link(links, _PAPER_LINK_NAMES)
    if url is None:
        url = next((u for n, u in links if u and n.lower() not in _CODE_LINK_NAMES), None)
        if links and url is None and all(u is not None for _, u in links):
            missing.append("no paper link")
    code_url = _pick_code_link(links, exclude=url)
    arxiv_id = _arxiv_id([u for _, u in links if u] + [meta])

    row = {
        "paper_id": None,
        "title": title,
        "alias": alias,
        "authors": authors,
        "venue": venue,
        "year": year,
        "url": url,
        "arxiv_id": arxiv_id,
        "code_url": code_url,
        "links": links,
        "section_path": (),
        "taxonomy_id": None,
        "top_category": None,
        "subsection": None,
        "line": line_number,
    }
    return row, ", ".join(missing)


def _split_title(text: str) -> tuple[str | None, str | None, str]:
    """(alias, title, text after the title); title None when it is not marked up."""
    match = re.search(r"\*\*+(.+?)\*\*+", text)
    if match is None:
        match = re.search(r"[\"“](.+?)[\"”]", text)
    if match is None:
        return None, None, text
    title = match.group(1).strip()
    title = re.sub(r'^["“”\s]+|["“”\s.]+$', "", title)  # outer quotes only; "Competency" stays
    title = " ".join(title.replace("*", "").split())
    alias = text[: match.start()].strip().rstrip(":-–—").strip().strip("*").strip() or None
    return alias, title or None, text[match.end() :]


def _fallback_title(text: str) -> str:
    head = re.split(r"\s\*|\[|\.\s", text, maxsplit=1)[0]
    return " ".join(head.replace("*", "").replace('"', "").split()) or text[:80]


def _find_links(text: str) -> tuple[list[tuple[str, str | None]], int | None]:
    """Every link after the title as (name, url); url None for a bare ``[Paper]``."""
    links: list[tuple[str, str | None]] = []
    first = None
    for match in _LINK.finditer(text):
        groups = match.groupdict()
        if groups["placeholder"] and first is None and not re.match(
            r"^\s*(?:\[[^\]]*\]\s*)+\s*$", text[match.start() :]
        ):
            continue  # a bracket inside the venue text, not a link list
        if first is None:
            first = match.start()
        if groups["name2"] is not None:
            name, url = groups["name2"], groups["url2"]
        elif groups["name"] is not None:
            name, url = groups["name"], groups["url"]
        elif groups["bare"] is not None:
            url = groups["bare"]
            name = _name_for_url(url, first_link=not links)
        elif groups["raw"] is not None:
            url = groups["raw"]
            name = _name_for_url(url, first_link=not links)
        else:
            name, url = groups["placeholder"], None
        links.append((name.strip(), _clean_url(url) if url else None))
    return links, first


def _clean_url(url: str) -> str:
    url = re.sub(r"\\(.)", r"\1", url.strip())  # markdown escapes: \( \) \_
    return url.replace(" ", "%20")


def _name_for_url(url: str, *, first_link: bool) -> str:
    host = re.sub(r"^https?://(www\.)?", "", url.lower())
    if host.startswith(("github.com", "gitlab.com")):
        return "GitHub"
    return "Paper" if first_link or host.startswith("arxiv.org") else "Link"


def _pick_link(links: list[tuple[str, str | None]], names: set[str]) -> str | None:
    return next((u for n, u in links if u and n.lower() in names), None)


def _pick_code_link(links: list[tuple[str, str | None]], exclude: str | None) -> str | None:
    """The code link: a link named GitHub/Code, else a GitHub/GitLab URL under another name."""
    named = _pick_link(links, _CODE_LINK_NAMES)
    if named:
        return named
    return next(
        (
            u
            for _, u in links
            if u and u != exclude and re.match(r"https?://(www\.)?(github|gitlab)\.com/", u)
        ),
        None,
    )


def _arxiv_id(texts: list[str]) -> str | None:
    for text in texts:
        for pattern in _ARXIV_PATTERNS:
            match = pattern.search(text)
            if match:
                found = match.group(1)
                return found.lower() if "/" in found else found
    return None


def _split_meta(meta: str) -> tuple[str | None, str | None, int | None]:
    """Authors, venue and year from e.g. ``*Andy Zou et al*. arXiv 2023.``."""
    meta = meta.strip()
    italic = re.search(r"\*\s*([^*]+?)\s*\*", meta)
    before = meta[: italic.start()] if italic else meta
    if italic and not re.search(r"[A-Za-z]", before):
        authors, after = italic.group(1), meta[italic.end() :]
        # "*Joshua Meltzer* et al." and "*Sandra Mitrović* *et al*."
        tail = re.match(r"\s*\*?\s*et\s+al\.?\s*\*?", after)
        if tail:
            authors, after = f"{authors} et al", after[tail.end() :]
        # "*Albert Q. Jiang et al. arXiv* 2023.": the venue slipped into the italics
        inside = re.match(r"(.*?\bet al)\.?\s+(\S.*)$", authors)
        if inside:
            authors, after = inside.group(1), f"{inside.group(2)} {after}"
    else:
        # No italics ("Leo Gao et al. arXiv 2024."): split at "et al", else at the last ". "
        plain = " ".join(meta.replace("*", " ").split()).lstrip(".,;: ")
        years = list(_YEAR.finditer(plain))
        head = plain[: years[-1].start()] if years else plain
        tail_text = plain[len(head) :]
        split = re.search(r"\bet al\.?", head) or None
        if split:
            authors, venue_head = head[: split.start()] + "et al", head[split.end() :]
        elif ". " in head.strip():
            cut = head.strip().rfind(". ")
            authors, venue_head = head.strip()[:cut], head.strip()[cut + 1 :]
        else:
            authors, venue_head = None, head
        after = f"{venue_head} {tail_text}"
    authors = _clean_authors(authors)
    venue, year = _split_venue_year(after)
    return authors, venue, year


def _clean_authors(authors: str | None) -> str | None:
    if not authors:
        return None
    authors = " ".join(authors.replace("*", " ").split())
    authors = re.sub(r"\bet al\.?$", "et al", authors).strip(" .,;:")
    return authors or None


def _split_venue_year(text: str) -> tuple[str | None, int | None]:
    text = " ".join(text.replace("*", " ").split()).strip(" .,;:")
    years = list(_YEAR.finditer(text))
    year = None
    if years:
        last = years[-1]
        year = int(last.group(1))
        at_end = not text[last.end() :].strip(" .,;:")
        at_start = not text[: last.start()].strip(" .,;:")
        if at_end or at_start:
            text = (text[: last.start()] + " " + text[last.end() :]).strip()
    else:
        short = re.search(r"\b([A-Za-z][A-Za-z&-]*?)'?(\d{2})$", text)  # "AAMAS24"
        if short:
            year = 2000 + int(short.group(2))
            text = text[: short.start()] + short.group(1)
    venue = " ".join(text.split()).strip(" .,;:")
    return venue or None, year


# --------------------------------------------------------------------------------------------
# paper_id: one id for one paper, wherever it is listed
# --------------------------------------------------------------------------------------------


def _normalise_title(title: str | None) -> str:
    text = unicodedata.normalize("NFKD", title or "").casefold()
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def _same_title(a: str, b: str) -> bool:
    if not a or not b:
        return False
    return a in b or b in a or difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def _assign_paper_ids(rows: list[dict], problems: list[dict]) -> None:
    """Join entries that are the same paper: same arXiv id, else same normalised title.

    The list has a few copy-paste slips (one arXiv link under two different titles, one title
    with two arXiv links); those entries are kept apart and reported.
    """
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[find(j)] = find(i)

    titles = [_normalise_title(r["title"]) for r in rows]
    by_arxiv: dict[str, list[int]] = {}
    by_title: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row["arxiv_id"]:
            by_arxiv.setdefault(row["arxiv_id"], []).append(i)
        if titles[i]:
            by_title.setdefault(titles[i], []).append(i)

    for arxiv_id, members in by_arxiv.items():
        for i in members[1:]:
            same = next((j for j in members if j < i and _same_title(titles[i], titles[j])), None)
            if same is not None:
                union(same, i)
            else:
                first = members[0]
                problems.append(
                    {
                        "line": rows[i]["line"],
                        "title": rows[i]["title"] or "?",
                        "problem": f"its arXiv link {arxiv_id} is also the link of "
                        f"'{_shorten(rows[first]['title'] or '?', 50)}' (line "
                        f"{rows[first]['line']}); one link is probably wrong, kept as two papers",
                    }
                )
    for members in by_title.values():
        ids = {rows[i]["arxiv_id"] for i in members if rows[i]["arxiv_id"]}
        if len(ids) <= 1:
            for i in members[1:]:
                union(members[0], i)
            continue
        for i in members[1:]:  # same title, different arXiv ids: join only equal ids
            j = next(j for j in members if rows[j]["arxiv_id"] == rows[i]["arxiv_id"])
            union(j, i)
            if j == i:
                first = members[0]
                problems.append(
                    {
                        "line": rows[i]["line"],
                        "title": rows[i]["title"] or "?",
                        "problem": f"same title as line {rows[first]['line']} but arXiv "
                        f"{rows[i]['arxiv_id'] or 'none'} instead of "
                        f"{rows[first]['arxiv_id'] or 'none'}; kept as two papers",
                    }
                )

    components: dict[int, list[int]] = {}
    for i in range(len(rows)):
        components.setdefault(find(i), []).append(i)
    used: set[str] = set()
    for members in sorted(components.values(), key=min):
        arxiv_ids = [rows[i]["arxiv_id"] for i in members if rows[i]["arxiv_id"]]
        candidate = f"arxiv:{arxiv_ids[0]}" if arxiv_ids else ""
        if not candidate or candidate in used:
            candidate = "title:" + (slugify(titles[members[0]]) or f"line-{rows[members[0]]['line']}")
        paper_id, n = candidate, 2
        while paper_id in used:
            paper_id, n = f"{candidate}-{n}", n + 1
        used.add(paper_id)
        for i in members:
            rows[i]["paper_id"] = paper_id


# --------------------------------------------------------------------------------------------
# taxonomy_id: the section path in the survey taxonomy (llmsafety.taxonomy)
# --------------------------------------------------------------------------------------------


def _assign_taxonomy_ids(rows: list[dict], problems: list[dict]) -> None:
    """``taxonomy_id``/``top_category`` from each row's section path, checked against the taxonomy.

    A section the taxonomy lacks gets its nearest ancestor that it has, and is reported once.
    """
    taxonomy = load_taxonomy()
    resolved: dict[tuple[str, ...], tuple[str | None, str | None]] = {}
    for row in rows:
        path = row["section_path"]
        if path not in resolved:
            ids = ["/".join(slugify(n) for n in path[: k + 1]) for k in range(len(path))]
            known = [i for i in ids if i in taxonomy]
            node_id = known[-1] if known else None
            top = taxonomy[known[0]].top.name if known else None
            resolved[path] = (node_id, top)
            if not path:
                problems.append(
                    {
                        "line": row["line"],
                        "title": row["title"] or "?",
                        "problem": "not under any section of the Table of Contents",
                    }
                )
            elif node_id != ids[-1]:
                count = sum(1 for r in rows if r["section_path"] == path)
                problems.append(
                    {
                        "line": row["line"],
                        "title": " > ".join(path),
                        "problem": f"section is not in the survey taxonomy; its {count} "
                        f"entr{'y' if count == 1 else 'ies'} get taxonomy id {node_id!r}",
                    }
                )
        row["taxonomy_id"], row["top_category"] = resolved[path]


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


# --------------------------------------------------------------------------------------------
# BibTeX
# --------------------------------------------------------------------------------------------

_CONFERENCE = re.compile(
    r"\b(conference|proceedings|workshop|symposium|findings|track|submitted to|ACL|EMNLP|NAACL|"
    r"EACL|AACL|COLING|LREC|IJCNLP|NeurIPS|NIPS|ICML|ICLR|AAAI|IJCAI|CVPR|ICCV|ECCV|KDD|SIGKDD|"
    r"SIGIR|WWW|WSDM|FAccT|CHI|USENIX|CCS|ICWSM|COLM|UAI|AAMAS|AISTATS|CoNLL|I?CASSP|ASONAM|"
    r"EAAMO|HLT|NoDaLiDa|CCL|GeBNLP|LT-EDI|FL4NLP|CUI|HCI|IEEE SP|CIKM|NLPCSS)\b",
    re.I,
)
_WEB = re.compile(r"\b(blog|news|website|forum|web)\b", re.I)
_STOPWORDS = set(
    "a an the on of in for with to and or via by from is are be can do does how what when why "
    "your our its it at as towards toward".split()
)
_BIBTEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "{": r"\{",
    "}": r"\}",
}


def to_bibtex(df: pd.DataFrame) -> str:
    """BibTeX for the papers in ``df``, one entry per ``paper_id``, in list order.

    Types are guessed from the venue (arXiv and journals: ``@article``; conferences and
    workshops: ``@inproceedings``; blogs: ``@misc``). Keys look like ``zou2023universal``; keys
    that collide get suffixes ``a``, ``b``, ... Entries with an arXiv id carry ``eprint`` and
    ``archivePrefix`` fields.
    """
    groups = list(df.groupby("paper_id", sort=False))
    records = [_bibtex_record(group) for _, group in groups]
    keys = [_bibtex_key(r) for r in records]
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    seen: dict[str, int] = {}
    entries = []
    for key, record in zip(keys, records):
        if counts[key] > 1:
            n = seen.get(key, 0)
            seen[key] = n + 1
            key = key + _letters(n)
        entries.append(_bibtex_entry(key, record))
    return "\n\n".join(entries) + ("\n" if entries else "")


def _letters(n: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa."""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(ord("a") + r) + out
    return out


def _bibtex_record(group: pd.DataFrame) -> dict:
    """The fields of one paper from its rows: the first row with a non-shouting title wins."""
    rows = group.to_dict("records")
    best = next((r for r in rows if not _is_shouting(r["title"])), rows[0])
    record = dict(best)
    for name in ("arxiv_id", "code_url", "url", "year", "authors", "venue"):
        if _missing(record.get(name)):
            record[name] = next((r[name] for r in rows if not _missing(r.get(name))), None)
    if _is_shouting(record["title"]):
        record["title"] = _title_case(record["title"], record.get("alias"))
    return record


def _missing(value) -> bool:
    return value is None or (not isinstance(value, (list, tuple)) and pd.isna(value))


def _is_shouting(title) -> bool:
    letters = [c for c in str(title or "") if c.isalpha()]
    return len(letters) >= 8 and all(c.isupper() for c in letters)


def _title_case(title: str, alias) -> str:
    alias = alias if isinstance(alias, str) else ""
    words = []
    for i, word in enumerate(title.split()):
        core = word.strip(":,.;!?()\"'")
        if alias and core.casefold() == alias.casefold():
            words.append(word.replace(core, alias))
        elif i > 0 and core.lower() in _STOPWORDS and not words[-1].endswith(":"):
            words.append(word.lower())
        else:
            words.append("-".join(p[:1].upper() + p[1:].lower() for p in word.split("-")))
    return " ".join(words)


def _ascii_letters(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return re.sub(r"[^a-z0-9]", "", text.encode("ascii", "ignore").decode().lower())


_ORGANISATION = re.compile(
    r"\b(team|group|institute|forum|house|alliance|lab|labs|inc|corporation|company|foundation|"
    r"council|commission|office|association|piper)\b",
    re.I,
)


def _is_organisation(authors: str) -> bool:
    """"White House", "Gemini Team, Google": one corporate author, kept whole in BibTeX."""
    return " et al" not in authors and " and " not in authors and bool(_ORGANISATION.search(authors))


def _first_author_surname(authors) -> str:
    if _missing(authors):
        return ""
    if _is_organisation(str(authors)):
        return str(authors).split()[0]
    first = re.split(r",?\s+and\s+|\s+et al|&", str(authors))[0].strip()
    if "," in first:
        head, tail = [p.strip() for p in first.split(",", 1)]
        if len(head.split()) == 1:  # "Dixon, Lucas"
            return head
        first = head
    tokens = first.split()
    if len(tokens) > 1 and re.fullmatch(r"[A-Z]{1,3}", tokens[-1]):  # "Zou A", "Le Coze JC"
        return "".join(tokens[:-1])
    return tokens[-1] if tokens else ""


def _bibtex_key(record: dict) -> str:
    surname = _ascii_letters(_first_author_surname(record.get("authors"))) or "anon"
    year = str(record["year"]) if not _missing(record.get("year")) else "nd"
    words = [_ascii_letters(w) for w in re.split(r"[\s\-:/]+", record.get("title") or "")]
    word = next((w for w in words if w and w not in _STOPWORDS), "paper")
    return f"{surname}{year}{word}"


def _bibtex_authors(authors) -> str | None:
    if _missing(authors):
        return None
    text = str(authors).strip()
    if _is_organisation(text):
        return "{" + _bibtex_escape(text) + "}"
    others = re.search(r"\s*\bet al\.?$", text)
    if others:
        text = text[: others.start()]
    names: list[str] = []
    for part in re.split(r"\s*,?\s+and\s+|\s*&\s*", text):
        pieces = [p.strip() for p in part.split(",") if p.strip()]
        if len(pieces) == 2 and len(pieces[0].split()) == 1:
            names.append(f"{pieces[0]}, {pieces[1]}")  # "Dixon, Lucas" is one name
            continue
        for piece in pieces:
            tokens = piece.split()
            if len(tokens) > 1 and re.fullmatch(r"[A-Z]{1,3}", tokens[-1]):
                piece = f"{' '.join(tokens[:-1])}, {tokens[-1]}"  # "Zou A" -> "Zou, A"
            names.append(piece)
    if others:
        names.append("others")
    return " and ".join(_bibtex_escape(n) for n in names) or None


def _bibtex_escape(text: str) -> str:
    if text.count("{") != text.count("}"):
        text = text.replace("{", "(").replace("}", ")")
    return "".join(_BIBTEX_ESCAPES.get(ch, ch) for ch in text)


def _bibtex_title(title: str) -> str:
    """Escape, and brace words whose capitals must survive a bibliography style (LLMs, GPT-4)."""
    out = []
    for word in title.split():
        match = re.fullmatch(r"([^\w]*)([\w][\w\-.]*[\w]|[\w])([^\w]*)", word)
        if match and any(_keeps_capitals(part) for part in match.group(2).split("-")):
            lead, core, trail = match.groups()
            out.append(f"{_bibtex_escape(lead)}{{{_bibtex_escape(core)}}}{_bibtex_escape(trail)}")
        else:
            out.append(_bibtex_escape(word))
    return " ".join(out)


def _keeps_capitals(word: str) -> bool:
    """"LLMs", "GPT", "ChatGPT": capitals a style must not lower; "Language" is not."""
    letters = [c for c in word if c.isalpha()]
    return (len(letters) >= 2 and all(c.isupper() for c in letters)) or any(
        c.isupper() for c in word[1:]
    )


def _bibtex_url(url: str) -> str:
    return url.replace(" ", "%20").replace("{", "%7B").replace("}", "%7D").replace("\\", "%5C")


def _bibtex_entry(key: str, record: dict) -> str:
    venue = record.get("venue") if not _missing(record.get("venue")) else None
    arxiv_id = record.get("arxiv_id") if not _missing(record.get("arxiv_id")) else None
    fields: list[tuple[str, str]] = [("title", _bibtex_title(record["title"] or "Untitled"))]
    authors = _bibtex_authors(record.get("authors"))
    if authors:
        fields.append(("author", authors))

    if venue is None or _WEB.search(venue):
        kind = "misc"
        if venue:
            fields.append(("howpublished", _bibtex_escape(venue)))
    elif re.search(r"\barxiv\b|preprint", venue, re.I):
        kind = "article"
        journal = f"arXiv preprint arXiv:{arxiv_id}" if arxiv_id else "arXiv preprint"
        fields.append(("journal", _bibtex_escape(journal)))
    elif _CONFERENCE.search(venue):
        kind = "inproceedings"
        fields.append(("booktitle", _bibtex_escape(venue)))
    else:
        kind = "article"
        fields.append(("journal", _bibtex_escape(venue)))

    if not _missing(record.get("year")):
        fields.append(("year", str(int(record["year"]))))
    url = record.get("url")
    if not _missing(url):
        fields.append(("url", _bibtex_url(url)))
        doi = re.search(r"doi\.org/(10\.\S+)", url)
        if doi:
            fields.append(("doi", _bibtex_url(doi.group(1))))
    if arxiv_id:
        fields += [("eprint", arxiv_id), ("archivePrefix", "arXiv")]
    body = ",\n".join(f"  {name:<13} = {{{value}}}" for name, value in fields)
    return f"@{kind}{{{key},\n{body}\n}}"


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def plot_papers_per_year(df: pd.DataFrame) -> Figure:
    """Stacked bars: unique papers per year, one colour per top-level area.

    A paper listed in two areas counts once in each; papers without a year are left out (the
    figure says how many).
    """
    from matplotlib.figure import Figure

    dated = df.dropna(subset=["year", "top_category"])
    if dated.empty:
        raise ValueError("no papers with a year and a category to plot")
    pairs = dated.drop_duplicates(subset=["paper_id", "top_category"])
    table = pd.crosstab(pairs["year"].astype(int), pairs["top_category"])
    years = range(int(table.index.min()), int(table.index.max()) + 1)
    order = [c for c in _survey_order(df) if c in table.columns]
    table = table.reindex(index=years, columns=order, fill_value=0)

    fig = Figure(figsize=(11, 5.2), layout="constrained")
    ax = fig.subplots()
    colours = _category_colours(_survey_order(df))
    bottom = pd.Series(0, index=table.index)
    for category in order:
        ax.bar(table.index, table[category], bottom=bottom, label=category,
               color=colours[category], edgecolor="white", linewidth=0.5)
        bottom = bottom + table[category]
    ax.set_xlabel("year")
    ax.set_ylabel("papers")
    ax.set_xticks(list(years))
    ax.tick_params(axis="x", labelrotation=90 if len(years) > 20 else 0)
    ax.set_title("Papers per year in the LLM safety survey's paper list")
    ax.spines[["top", "right"]].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()  # legend top to bottom = stack top to bottom
    ax.legend(handles[::-1], labels[::-1], title="top-level area", loc="upper left",
              fontsize="small", frameon=False)
    undated = df.loc[df["year"].isna(), "paper_id"].nunique()
    if undated:
        ax.annotate(f"{undated} paper(s) without a year not shown", xy=(0, -0.14),
                    xycoords="axes fraction", fontsize="small", color="grey")
    return fig


def _category_colours(categories: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {c: palette(i % 10) for i, c in enumerate(categories)}
