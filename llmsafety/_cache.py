"""Where llmsafety keeps what it downloads or converts, and how it writes it safely."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir(sub: str | None = None) -> Path:
    """The user cache directory: ``$LLMSAFETY_CACHE`` or ``~/.cache/llmsafety``."""
    root = os.environ.get("LLMSAFETY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "llmsafety"
    )
    path = Path(root) / sub if sub else Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A reader never sees a half-written file, and a crash leaves the old file (or none).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def env_path(name: str) -> str | None:
    """An environment variable holding a path; empty counts as unset."""
    value = os.environ.get(name, "").strip()
    return value or None
