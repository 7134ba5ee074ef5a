"""One entry of the list: its title, alias, authors, venue, year and links, as one row.

``_parse_entry`` turns the lines of one numbered entry into a row dict (the columns of
``llmsafety.papers.load.COLUMNS``) and says what it could not read.
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------------------------
# One entry: `N. Alias: **"Title"**.`, then `*Authors et al*. Venue Year. [[Paper](url)] ...`
# --------------------------------------------------------------------------------------------

# Shared with llmsafety.papers.parser, which finds the entries in the body.
_ENTRY_START = re.compile(r"^[ \t]*(?:\d+[.)]|[*+-])[ \t]+(?=\S)")
_HTML_TAG = re.compile(r"<[^>]+>")
_YEAR = re.compile(r"(?<![\d.])(19[5-9]\d|20\d\d)(?![\d])")

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
