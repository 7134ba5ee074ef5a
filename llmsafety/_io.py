"""Reading and writing the JSON and JSONL files llmsafety keeps, so that damage is named, not hidden.

A run directory is written over hours and read back later, possibly after a crash, a full disk or
a hand edit. ``json.loads`` on such a file says "Expecting property name enclosed in double
quotes: line 1 column 2 (char 1)" and nothing about which file; a JSONL file cut after a complete
line parses fine and silently holds fewer records. The readers here name the file (and the line),
and treat a last line without its newline as torn, because every JSONL file we write ends with one.

Writes go through a temporary file and a rename (``atomic_write_*``, built on :mod:`llmsafety._cache`):
a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from llmsafety._cache import atomic_write_bytes as _atomic_write_bytes

__all__ = ["DamagedFileError", "atomic_write_bytes", "atomic_write_text", "read_json", "read_jsonl",
           "stable_fraction", "stable_hash", "write_json", "write_jsonl"]


class DamagedFileError(ValueError):
    """A file exists but cannot be what we wrote: not valid JSON, or cut short.

    ``path`` is the file, ``line`` the 1-based line of a JSONL file (None for a JSON file).
    A ValueError, so the command line prints it as one line instead of a traceback.
    """

    def __init__(self, path: str | os.PathLike, problem: str, line: int | None = None):
        self.path, self.problem, self.line = Path(path), problem, line
        where = f"{self.path}, line {line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}")


def _text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing" if not path.exists() else f"{path}: not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:  # binary garbage where text should be
        raise DamagedFileError(path, f"not UTF-8 text (byte {err.start})") from None


def _why(err: json.JSONDecodeError) -> str:
    return f"{err.msg} at column {err.colno}" if err.lineno == 1 else f"{err.msg} at line {err.lineno} column {err.colno}"


def read_json(path: str | os.PathLike) -> Any:
    """The value in a JSON file; a missing file is FileNotFoundError, a bad one DamagedFileError."""
    path = Path(path)
    text = _text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        problem = "empty" if not text.strip() else f"not valid JSON ({_why(err)})"
        raise DamagedFileError(path, problem) from None


def read_jsonl(path: str | os.PathLike, *, final_newline: bool = True) -> list[Any]:
    """One value per line of a JSONL file; blank lines are skipped.

    ``final_newline=True`` (files llmsafety writes): a last line without ``\\n`` is a torn write,
    even when what is there happens to parse. Pass False for files written by others.
    """
    return [value for _, value in read_jsonl_numbered(path, final_newline=final_newline)]


def read_jsonl_numbered(path: str | os.PathLike, *, final_newline: bool = True) -> list[tuple[int, Any]]:
    """``(line number, value)`` per non-blank line, for callers whose own checks name the line."""
    path = Path(path)
    text = _text(path)
    lines = text.split("\n")  # not splitlines(): it also splits on \x0b, \x1c, \u2028 ... inside strings
    if final_newline and lines[-1] != "":
        raise DamagedFileError(path, "last line has no newline: the file was cut while being written",
                               line=len(lines))
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as err:
            raise DamagedFileError(path, f"not valid JSON ({_why(err)})", line=number) from None
    return rows


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (see llmsafety._cache).

    A failure (full disk, read-only directory) leaves the old file, or none, and its error names
    ``path``: the temporary file it may otherwise name means nothing to a reader.
    """
    try:
        return _atomic_write_bytes(path, data)
    except OSError as err:
        if err.errno is not None and (err.filename is None or str(err.filename).endswith(".tmp")):
            err.filename = str(path)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any, *, default=None, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON, atomically."""
    return atomic_write_text(path, json.dumps(data, indent=indent, default=default))


def write_jsonl(path: str | os.PathLike, rows, *, default=None) -> Path:
    """Write one JSON value per line, each line ending in a newline, atomically."""
    return atomic_write_text(path, "".join(json.dumps(r, default=default) + "\n" for r in rows))


def stable_hash(text: str, salt: str = "") -> int:
    """SHA-256 of ``salt + text`` as a 256-bit integer: the same on every machine and release.

    Every hash-based split and per-phase seed in the package is built on it, so an item's side
    never depends on Python's per-process ``hash()`` or on the order items arrive in.
    """
    return int(hashlib.sha256(f"{salt}{text}".encode("utf-8")).hexdigest(), 16)


def stable_fraction(text: str, salt: str = "") -> float:
    """A number in [0, 1) from the top 32 bits of :func:`stable_hash`: ``< 0.6`` puts 60% on one side."""
    return (stable_hash(text, salt) >> 224) / 2**32


def is_missing(value: Any) -> bool:
    """True for a cell with no value: None, NaN (any float type), pandas' NA and NaT.

    A string, list, tuple, dict or array is a value, even when empty: the one rule every module
    uses for "missing" (labels, paper fields, taxonomy ids, scores).
    """
    if value is None:
        return True
    if isinstance(value, (str, bytes, list, tuple, dict, set)) or hasattr(value, "shape") and getattr(value, "ndim", 0):
        return False
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
