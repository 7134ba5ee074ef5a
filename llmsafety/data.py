"""Data for red teaming and for judging it: hh-rlhf harmless, seed attacks, benign prompts.

Four sources, each returned as a ``pandas.DataFrame``:

- :func:`load_hh_prompts` reads the first human turns of Anthropic's hh-rlhf *harmless-base*
  test split, shipped with the package (MIT; ``resources/HH_RLHF_LICENSE.md``), each with the
  default judge's ``judge_split`` (``train`` / ``heldout``) and, once labelled, whether a
  careful reader found it harmful. No network is needed. :func:`hh_eval_prompts` samples the
  held-out ones, the prompts DART-style red teaming is measured on.
- :func:`load_hh_harmless` reads the full preference pairs (a local ``.jsonl``/``.jsonl.gz``
  file, or the Hugging Face hub when online) and splits each dialogue into turns; only judge
  training and lessons on preference data need them.
- :func:`load_seed_attacks` reads the attack prompts shipped with the package
  (``resources/seed_attacks.jsonl``). Each names a harmful goal *in general terms*, in a
  style that the survey's taxonomy names (role play, refusal suppression, cipher text, ...),
  and carries the taxonomy id of that risk or attack style. They seed a red-team model, so
  they vary in length and tone; none holds operational detail.
- :func:`load_benign_prompts` reads prompts that sound alarming but are fine ("How do I
  kill a stuck Python process?"): a model that refuses them over-refuses.
- :func:`load_judge_eval_cases` reads prompt/response pairs labelled harmful or not, with a
  ``kind`` saying what makes each one easy or hard for a harm judge (a refusal that uses
  alarming words, a compliance wrapped in an apology, ...). They measure judges; they are
  not training data.

The seed attacks carry a fixed ``split``: within each taxonomy id, the prompts were ordered by
the SHA-256 of their id and the first ``round(0.3 * n)`` went to ``"eval"``, the rest to
``"train"``, so every category has both and the split never changes between releases that
keep the ids.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import socket
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from llmsafety._cache import env_path
from llmsafety.taxonomy import TOP_LEVEL_NAMES, slugify

__all__ = [
    "HH_HUB_ID",
    "HH_DATA_DIR",
    "HH_SPLITS",
    "SEED_SPLITS",
    "JUDGE_CASE_KINDS",
    "HubUnavailableError",
    "parse_hh_dialogue",
    "load_hh_harmless",
    "hh_eval_prompts",
    "load_hh_prompts",
    "HH_PROMPT_LABELS",
    "load_seed_attacks",
    "load_benign_prompts",
    "load_judge_eval_cases",
]

HH_HUB_ID = "Anthropic/hh-rlhf"
HH_DATA_DIR = "harmless-base"
HH_SPLITS = ("train", "test")
HH_SOURCE_ENV = "LLMSAFETY_HH_SOURCE"
SEED_SPLITS = ("train", "eval")
HH_JUDGE_SPLITS = ("train", "heldout")
#: Labels a careful reader gave the held-out hh prompts (``resources/labelling_protocol.md``).
HH_PROMPT_LABELS = ("harmful", "benign", "unclear")

#: What each judge evaluation case tests, and whether a reply of that kind is harmful.
JUDGE_CASE_KINDS: dict[str, bool] = {
    "refusal": False,  # harmful prompt, the reply refuses
    "refusal_with_word": False,  # a refusal that still says "kill", "bomb", "illegal", ...
    "benign_help": False,  # alarming-sounding but benign prompt, helpful reply
    "benign_refusal": False,  # benign prompt, needless refusal (over-refusal, not harm)
    "compliance": True,  # harmful prompt, the reply willingly complies
    "polite_compliance": True,  # "I'm sorry, but here is how ..."
    "compliance_with_word": True,  # complies while saying "illegal", "I cannot guarantee", ...
}

_HH_COLUMNS = [
    "prompt",
    "chosen",
    "rejected",
    "chosen_response",
    "rejected_response",
    "chosen_dialogue",
    "rejected_dialogue",
    "n_turns",
]
# A turn starts at a blank line followed by the speaker's name; the space after the colon
# is missing when the turn is empty (a few hh-rlhf replies are).
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}
_HUB_PROBE_TIMEOUT_S = 3.0


class HubUnavailableError(ConnectionError):
    """The Hugging Face hub could not be reached (or refused) and no local file was given."""


# --------------------------------------------------------------------------- jsonl reading


def _open_text(path: Path):
    if path.name.endswith(".jsonl.gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    if path.name.endswith(".jsonl"):
        return open(path, encoding="utf-8")
    raise ValueError(
        f"{str(path)!r} is neither a .jsonl nor a .jsonl.gz file; pass a JSON-lines file "
        "(one JSON object a line), optionally gzip-compressed"
    )


def _iter_jsonl(
    lines: Iterator[str], name: str, required: tuple[str, ...]
) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each non-blank line, checking the keys each needs."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name}, line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ValueError(
                f"{name}, line {number}: expected a JSON object, got {type(record).__name__}"
            )
        missing = [key for key in required if key not in record]
        if missing:
            raise ValueError(
                f"{name}, line {number}: missing key(s) {missing}; each line needs {list(required)}"
            )
        yield number, record


def _read_jsonl_file(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise FileNotFoundError(
            f"no such file: {str(path)!r}; pass the path of a .jsonl or .jsonl.gz file"
        )
    try:
        with _open_text(path) as f:
            return list(_iter_jsonl(f, str(path), required))
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"{str(path)!r} could not be read as UTF-8 JSON lines: {exc}") from exc


def _read_resource(name: str, required: tuple[str, ...]) -> list[dict]:
    resource = resources.files("llmsafety").joinpath("resources", name)
    text = resource.read_text(encoding="utf-8")
    return [record for _, record in _iter_jsonl(iter(text.splitlines()), name, required)]


# --------------------------------------------------------------------------- hh-rlhf


def parse_hh_dialogue(text: str) -> list[dict[str, str]]:
    """Split an hh-rlhf dialogue into ``[{"role": "user"|"assistant", "content": ...}, ...]``.

    Parameters
    ----------
    text : str
        A dialogue as hh-rlhf stores it: ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``.

    Raises
    ------
    ValueError
        If the text does not start with a ``Human:`` turn.
    """
    if not isinstance(text, str):
        raise ValueError(f"a dialogue must be a string, got {type(text).__name__}")
    parts = _HH_TURN.split(text)
    # parts = [text before the first turn, role, content, role, content, ...]
    if parts[0].strip() or len(parts) < 3 or parts[1] != "Human":
        raise ValueError(
            f"dialogue does not start with '\\n\\nHuman: ': {text[:60]!r}"
        )
    return [
        {"role": _HH_ROLES[role], "content": content.strip()}
        for role, content in zip(parts[1::2], parts[2::2])
    ]


def _hh_row(chosen: str, rejected: str, where: str) -> dict:
    try:
        chosen_dialogue = parse_hh_dialogue(chosen)
        rejected_dialogue = parse_hh_dialogue(rejected)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc

    def final_reply(dialogue: list[dict[str, str]]) -> str:
        return dialogue[-1]["content"] if dialogue[-1]["role"] == "assistant" else ""

    return {
        "prompt": chosen_dialogue[0]["content"],
        "chosen": chosen,
        "rejected": rejected,
        "chosen_response": final_reply(chosen_dialogue),
        "rejected_response": final_reply(rejected_dialogue),
        "chosen_dialogue": chosen_dialogue,
        "rejected_dialogue": rejected_dialogue,
        # Human and Assistant turns together; chosen and rejected differ only in the last one.
        "n_turns": len(chosen_dialogue),
    }


def _hub_host() -> str:
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    return urlparse(endpoint).hostname or "huggingface.co"


def _hub_reachable(timeout: float = _HUB_PROBE_TIMEOUT_S) -> bool:
    """A quick TCP probe, so an offline machine fails in seconds instead of retrying for minutes.

    Behind an HTTPS proxy the hub is reached through the proxy, so the proxy is probed instead.
    """
    host, port = _hub_host(), 443
    proxy = next(
        (os.environ[v] for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
         if os.environ.get(v)),
        None,
    )
    if proxy:
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        if parsed.hostname:
            host, port = parsed.hostname, parsed.port or 8080
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_flag_set() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _how_to_pass_a_file(split: str) -> str:
    return (
        f"Download hh-rlhf {HH_DATA_DIR}/{split}.jsonl.gz on a machine with access and pass its "
        f"path: load_hh_harmless({split!r}, source='path/to/{split}.jsonl.gz')"
        + (f", or set {HH_SOURCE_ENV} to it" if split == "test" else "")
        + ". Plain .jsonl works too."
    )


def _load_hh_records_from_hub(split: str) -> list[dict]:
    # With HF_HUB_OFFLINE set, `datasets` answers from its cache (or fails at once), so only
    # probe the network when it would otherwise be used.
    if not _offline_flag_set() and not _hub_reachable():
        raise HubUnavailableError(
            f"cannot reach the Hugging Face hub ({_hub_host()}) to load {HH_HUB_ID} "
            f"{HH_DATA_DIR} split {split!r}. {_how_to_pass_a_file(split)}"
        )
    try:
        import datasets

        dataset = datasets.load_dataset(HH_HUB_ID, data_dir=HH_DATA_DIR, split=split)
        return dataset.to_list()
    except Exception as exc:  # any network, cache or auth failure gets the same advice
        raise HubUnavailableError(
            f"loading {HH_HUB_ID} {HH_DATA_DIR} split {split!r} from the hub failed "
            f"({type(exc).__name__}: {exc}). {_how_to_pass_a_file(split)}"
        ) from exc


def load_hh_harmless(split: str = "test", source: str | os.PathLike | None = None) -> pd.DataFrame:
    """Anthropic hh-rlhf *harmless-base* preference pairs, one row per pair.

    Parameters
    ----------
    split : {"train", "test"}
        Which split to load from the hub (the test split has 2,312 pairs).
    source : path, "hub" or None
        A local ``.jsonl`` or ``.jsonl.gz`` file with ``chosen`` and ``rejected`` keys on
        each line; ``"hub"`` for the Hugging Face hub; ``None`` for ``$LLMSAFETY_HH_SOURCE``
        when ``split == "test"`` and it is set, else the hub.

    Returns
    -------
    pandas.DataFrame
        Columns ``prompt`` (first human turn), ``chosen``, ``rejected`` (the dialogues as
        stored), ``chosen_response``, ``rejected_response`` (the final assistant turn),
        ``chosen_dialogue``, ``rejected_dialogue`` (lists of ``{"role", "content"}`` with
        roles ``"user"``/``"assistant"``) and ``n_turns`` (turns in the chosen dialogue).

    Raises
    ------
    ValueError
        Bad split name; a file that is not ``.jsonl``/``.jsonl.gz``; a line that is not
        JSON, lacks a key or holds no ``Human:`` turn (the message names file and line).
    FileNotFoundError
        The local file does not exist.
    HubUnavailableError
        The hub was needed and could not be reached; the message says how to pass a file.
    """
    if split not in HH_SPLITS:
        raise ValueError(f"unknown hh-rlhf split {split!r}; choose one of {list(HH_SPLITS)}")
    if source is None and split == "test":
        source = env_path(HH_SOURCE_ENV)

    rows = []
    if source is None or str(source) == "hub":
        for index, record in enumerate(_load_hh_records_from_hub(split)):
            rows.append(
                _hh_row(record["chosen"], record["rejected"], f"{HH_HUB_ID} {split} row {index}")
            )
    else:
        path = Path(source).expanduser()
        for number, record in _read_jsonl_file(path, ("chosen", "rejected")):
            rows.append(_hh_row(record["chosen"], record["rejected"], f"{path}, line {number}"))
    return pd.DataFrame(rows, columns=_HH_COLUMNS)


def load_hh_prompts(judge_split: str | None = None, label: str | None = None) -> pd.DataFrame:
    """The distinct first human turns of hh-rlhf harmless-base *test*, shipped with the package.

    Parameters
    ----------
    judge_split : {"train", "heldout"} or None
        Keep the prompts the default judge was trained on (``"train"``) or never saw
        (``"heldout"``, by :func:`llmsafety.judges.is_hh_judge_heldout`); ``None`` keeps both.
    label : {"harmful", "benign", "unclear"} or None
        Keep held-out prompts with this human label; ``None`` keeps all.

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``prompt``, ``judge_split``, ``label`` and ``label_reason`` (both
        ``None`` for prompts nobody labelled), in the order of first occurrence in the split.
    """
    if judge_split is not None and judge_split not in HH_JUDGE_SPLITS:
        raise ValueError(f"unknown judge_split {judge_split!r}; choose one of {list(HH_JUDGE_SPLITS)} or None")
    if label is not None and label not in HH_PROMPT_LABELS:
        raise ValueError(f"unknown label {label!r}; choose one of {list(HH_PROMPT_LABELS)} or None")
    records = _read_resource("hh_harmless_test_prompts.jsonl", ("id", "prompt", "judge_split"))
    frame = pd.DataFrame(records, columns=["id", "prompt", "judge_split", "label", "label_reason"])
    frame = frame.astype(object).where(frame.notna(), None)
    if judge_split is not None:
        frame = frame[frame["judge_split"] == judge_split]
    if label is not None:
        frame = frame[frame["label"] == label]
    return frame.reset_index(drop=True)


def hh_eval_prompts(
    n: int, seed: int = 0, source: str | os.PathLike | None = None, label: str | None = None
) -> list[str]:
    """A deterministic sample of ``n`` distinct hh-rlhf test prompts the default judge never saw.

    Only prompts on the judge's held-out side (:func:`llmsafety.judges.is_hh_judge_heldout`)
    are drawn, so a reply is never graded by a judge trained on its prompt.

    Parameters
    ----------
    n : int
        How many prompts (at most the number of distinct held-out first turns).
    seed : int
        Seed of the sample; the same arguments always give the same list.
    source : path, "hub" or None
        ``None``: the prompts shipped with the package (no network). Otherwise a file or the
        hub, as in :func:`load_hh_harmless` (test split).
    label : {"harmful", "benign", "unclear"} or None
        Draw only prompts with this human label (shipped prompts only).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if source is None:
        distinct = list(load_hh_prompts("heldout", label=label)["prompt"])
    else:
        if label is not None:
            raise ValueError("label= needs the shipped prompts (source=None): files carry no labels")
        from llmsafety.judges import is_hh_judge_heldout

        prompts = load_hh_harmless("test", source=source)["prompt"]
        distinct = [p for p in dict.fromkeys(p for p in prompts if p and p.strip()) if is_hh_judge_heldout(p)]
    if n > len(distinct):
        raise ValueError(
            f"asked for n={n} prompts but only {len(distinct)} distinct held-out hh-rlhf test "
            "prompts" + (f" labelled {label!r}" if label else "") + " exist"
        )
    return random.Random(seed).sample(distinct, n)


# --------------------------------------------------------------------------- shipped resources


def load_seed_attacks(split: str | None = None, category: str | None = None) -> pd.DataFrame:
    """Seed attack prompts shipped with the package.

    Parameters
    ----------
    split : {"train", "eval"} or None
        Keep one split; ``None`` keeps both.
    category : str or None
        A taxonomy id or id prefix (whole path segments), e.g. ``"misuse"`` or
        ``"robustness-to-attack/jailbreaking"``, or a top-level name such as ``"Misuse"``;
        ``None`` keeps all.

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``prompt``, ``taxonomy_id``, ``top_category`` (the name of the
        top-level area, as in :func:`llmsafety.papers.load_papers`) and ``split``.
    """
    records = _read_resource("seed_attacks.jsonl", ("id", "prompt", "taxonomy_id", "split"))
    frame = pd.DataFrame(records, columns=["id", "prompt", "taxonomy_id", "split"])
    top_names = {slugify(name): name for name in TOP_LEVEL_NAMES}
    frame.insert(3, "top_category", frame["taxonomy_id"].str.split("/").str[0].map(top_names))

    if split is not None and split not in SEED_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SEED_SPLITS)} or None")
    if category is not None:
        prefix = slugify(category) if category in TOP_LEVEL_NAMES else str(category).strip("/")
        ids = frame["taxonomy_id"]
        in_category = (ids == prefix) | ids.str.startswith(prefix + "/")
        if not in_category.any():
            all_ids = sorted(set(ids))
            tops = sorted({i.split("/")[0] for i in all_ids})
            raise ValueError(
                f"no seed attacks under category {category!r}; use a top-level slug "
                f"({', '.join(tops)}) or a prefix of one of these taxonomy ids: "
                + ", ".join(all_ids)
            )
        frame = frame[in_category]
    if split is not None:
        frame = frame[frame["split"] == split]
    return frame.reset_index(drop=True)


def load_benign_prompts() -> pd.DataFrame:
    """Prompts that sound alarming but are fine to answer; columns ``id``, ``prompt``, ``topic``."""
    records = _read_resource("benign_prompts.jsonl", ("id", "prompt", "topic"))
    return pd.DataFrame(records, columns=["id", "prompt", "topic"])


def load_judge_eval_cases() -> pd.DataFrame:
    """Labelled prompt/response pairs for measuring harm judges.

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``prompt``, ``response``, ``harmful`` (bool), ``kind`` (a key of
        :data:`JUDGE_CASE_KINDS`) and ``over_refusal`` (bool; true for ``benign_refusal``).
    """
    records = _read_resource(
        "judge_eval_cases.jsonl", ("id", "prompt", "response", "harmful", "kind")
    )
    frame = pd.DataFrame(
        records, columns=["id", "prompt", "response", "harmful", "kind", "over_refusal"]
    )
    frame["harmful"] = frame["harmful"].astype(bool)
    frame["over_refusal"] = frame["over_refusal"].fillna(False).astype(bool)
    return frame
