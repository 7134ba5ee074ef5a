"""The list as a document: its Table of Contents (the section tree) and the entries under each heading.

``_parse_paper_list`` walks the body, files every entry under the TOC section whose heading it
is in (``_match_heading``), and hands each entry's lines to ``llmsafety.papers.entry``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from llmsafety.papers.entry import _ENTRY_START, _HTML_TAG, _YEAR, _parse_entry
from llmsafety.papers.source import PAPER_LIST_REPO, PaperListParseError
from llmsafety.taxonomy import slugify

# --------------------------------------------------------------------------------------------
# Parsing: the Table of Contents gives the tree, the body gives the entries
# --------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_TOC_ITEM = re.compile(
    r"^(?P<indent>[ \t]*)(?:[*+-]|\d+[.)])[ \t]+"
    r"(?:\[(?P<name>[^\]]+)\]\((?P<target>[^)]*)\)|(?P<plain>\S.*?))[ \t]*$"
)
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_EXPLICIT_ANCHOR = re.compile(r"""<a\s+(?:name|id)\s*=\s*["']([^"']+)["']|\{#([^}]+)\}""")
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
