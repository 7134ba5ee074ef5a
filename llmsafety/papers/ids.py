"""Ids for the parsed rows: ``paper_id`` (one per paper, wherever listed) and ``taxonomy_id``."""

from __future__ import annotations

import difflib
import re
import unicodedata

from llmsafety.taxonomy import load_taxonomy, slugify


# Titles in problem messages (here and in llmsafety.papers.load) are cut to one readable line.
def _shorten(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


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
                problems.append(_problem(rows[i], f"its arXiv link {arxiv_id} is also the link of "
                                         f"'{_shorten(rows[first]['title'] or '?', 50)}' (line "
                                         f"{rows[first]['line']}); one link is probably wrong, kept as two papers"))
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
                problems.append(_problem(rows[i], f"same title as line {rows[first]['line']} but arXiv "
                                         f"{rows[i]['arxiv_id'] or 'none'} instead of "
                                         f"{rows[first]['arxiv_id'] or 'none'}; kept as two papers"))

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


def _problem(row: dict, problem: str) -> dict:
    """One entry of the parse report: the row's line and title, and what is wrong with it."""
    return {"line": row["line"], "title": row["title"] or "?", "problem": problem}
