"""Where the paper list comes from: its pinned URL, the errors and warning, reading a file or URL.

A URL is downloaded once into the user cache and reused offline; a failed download falls back to
the cached copy, else raises ``PaperListUnavailableError`` saying how to pass a local copy.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from llmsafety._cache import atomic_write_bytes, env_path
from llmsafety._cache import cache_dir as _user_cache_dir

PAPER_LIST_REPO = "tjunlp-lab/Awesome-LLM-Safety-Papers"
# The list changes upstream; the parser, tests and lessons are written against this commit.
PAPER_LIST_COMMIT = "6749bf77aa508e549451671fe00cc1f2afa725a0"
PAPER_LIST_URL = (
    f"https://raw.githubusercontent.com/{PAPER_LIST_REPO}/{PAPER_LIST_COMMIT}/README.md"
)
SOURCE_ENV_VAR = "LLMSAFETY_PAPERS_SOURCE"
DOWNLOAD_TIMEOUT_S = 20.0


class PaperListWarning(UserWarning):
    """Some entries of the paper list could not be fully read (they are kept, with gaps)."""


class PaperListParseError(ValueError):
    """The file is not a readable paper list, or (``strict=True``) some entries are incomplete."""


class PaperListUnavailableError(ConnectionError):
    """The paper list could not be downloaded and no cached copy exists."""


# --------------------------------------------------------------------------------------------
# Reading a file or a URL (downloaded once, then cached)
# --------------------------------------------------------------------------------------------


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
