"""``to_bibtex``: one BibTeX entry per paper, with guessed entry types and readable keys."""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

from llmsafety._io import is_missing as _missing

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
