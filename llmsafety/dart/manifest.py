"""Manifests: what each finished DART phase wrote, so that a damaged run is noticed, never used.

A DART run is written phase by phase over minutes to days, and read back later: by ``--resume``,
by :func:`~llmsafety.dart.loop.load_result`, by ``llmsafety dart report``. In between, a process
can be killed in the middle of ``np.save``, a disk can fill up, a file can be edited, copied
halfway or deleted. Without a record of what was written, such damage either crashes far from
its cause (``Unterminated string starting at: line 1 column 9``, no file named) or, worse, goes
unseen: an ``attacks.jsonl`` cut after a complete line parses fine and counts fewer attacks.

So when a phase finishes, its marker in ``state.json`` comes with a *manifest*: the relative
path, size and sha256 of every file the phase wrote (an adapter directory as its files)::

    {"completed": ["eval_0", "red_1"],
     "manifests": {"eval_0": {"eval_0.json": {"size": 3933, "sha256": "9f2c..."}},
                   "red_1": {"iter_1/attacks.jsonl": {...}, "iter_1/red_adapter/adapter_config.json": {...}, ...}},
     "config": {...the DARTConfig the phases ran with...}}

Marker and manifest are written together, atomically, and only after all the phase's files, so
a phase is either finished with a manifest or not finished at all. Readers check the manifest of
every phase they use: a missing, cut or changed file is reported by name with the phase that
wrote it; ``--resume`` redoes that phase and every phase after it (they were computed from it),
and ``load_result`` refuses to produce numbers. Runs made before manifests existed have only
``completed``; their files are still parsed and cross-checked (counts that must agree), not hashed.

What each phase writes is declared here (:data:`PHASE_OUTPUTS`), next to the checks of those files.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmsafety._io import DamagedFileError, read_json, read_jsonl, write_json

STATE_FILE = "state.json"

# ============================================================================ what a phase writes

# Paths relative to the run directory, ``{t}`` the phase's iteration; a trailing "/" is a directory
# recorded as all its files (an adapter saved by peft). Keep this in step with the phases in
# loop.py: record_phase fails loudly when a phase did not write one of these.
PHASE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "eval": ("eval_{t}.json",),
    "red": ("iter_{t}/red_adapter/", "iter_{t}/attack_embeddings.npy", "iter_{t}/attacks.jsonl",
            "iter_{t}/red_log.json"),
    "target": ("iter_{t}/target_adapter/", "iter_{t}/selection.jsonl", "iter_{t}/target_log.json"),
}
# Outputs a phase may leave out: the refusal_sft control's "red" phase trains no Red LLM. When one
# is written it is in the manifest like any other file, so its loss is noticed all the same.
OPTIONAL_OUTPUTS = frozenset({"iter_{t}/red_adapter/"})


def phase_outputs(phase: str, *, required_only: bool = False) -> list[str]:
    """The outputs of ``phase`` (e.g. ``red_1``), relative to the run directory."""
    kind, _, t = phase.rpartition("_")
    if kind not in PHASE_OUTPUTS or not t.isdigit():
        raise ValueError(f"unknown DART phase {phase!r}: phases are eval_T, red_T and target_T")
    return [template.format(t=int(t)) for template in PHASE_OUTPUTS[kind]
            if not (required_only and template in OPTIONAL_OUTPUTS)]


def resume_command(out: Path) -> str:
    return f"llmsafety dart run --config {out / 'config.json'} --out {out} --resume"


# ============================================================================ state.json

@dataclass
class RunState:
    """The content of state.json: finished phases, their manifests, the config they ran with."""

    completed: list[str] = field(default_factory=list)
    manifests: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    config: dict[str, Any] | None = None  # None: a run made before state.json recorded it

    def keep(self, phases: list[str]) -> "RunState":
        """This state with only ``phases`` finished (the ones to redo dropped)."""
        return RunState(list(phases), {p: m for p, m in self.manifests.items() if p in phases}, self.config)


def read_state(out: Path) -> RunState:
    """state.json of run ``out``; none yet is a run with nothing finished."""
    path = Path(out) / STATE_FILE
    if not path.exists():
        return RunState()
    # Without state.json nothing says which files are finished work: the only safe repair is to
    # redo every phase, which deleting it does. Say so instead of guessing.
    what_to_do = (f"it records which phases of the run finished and what they wrote, so nothing "
                  f"in {out} can be trusted without it. Restore it from a backup, or delete it and run "
                  f"`{resume_command(Path(out))}` to redo every phase")
    try:
        data = read_json(path)
    except DamagedFileError as err:
        raise DamagedFileError(path, f"{err.problem}; {what_to_do}") from None
    completed = data.get("completed") if isinstance(data, dict) else None
    manifests = data.get("manifests", {}) if isinstance(data, dict) else None
    config = data.get("config") if isinstance(data, dict) else None
    if (not isinstance(completed, list) or not all(isinstance(p, str) for p in completed)
            or not isinstance(manifests, dict) or not isinstance(config, (dict, type(None)))):
        raise DamagedFileError(path, "not a DART state file (it needs 'completed': a list of phase "
                                     f"names, optional 'manifests' and 'config' mappings); {what_to_do}")
    return RunState(completed, manifests, config)


def write_state(out: Path, state: RunState) -> None:
    """Write state.json atomically: readers see the old state or the new one, never a mix."""
    data: dict[str, Any] = {"completed": state.completed,
                            "manifests": {p: state.manifests[p] for p in state.completed if p in state.manifests}}
    if state.config is not None:
        data["config"] = state.config
    write_json(Path(out) / STATE_FILE, data)


# ============================================================================ recording a phase

def file_record(path: Path, *, sync: bool = False) -> dict[str, Any]:
    """Size and sha256 of a file; ``sync`` flushes it to disk first.

    record_phase syncs: np.save and peft's save_pretrained do not fsync, and the marker that follows
    must not reach the disk before the data it vouches for (a power cut would leave a finished
    phase with empty files).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if sync:
            os.fsync(f.fileno())
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
        size = f.tell()
    return {"size": size, "sha256": digest.hexdigest()}


def _files_of(out: Path, relpath: str) -> list[Path]:
    path = out / relpath
    if relpath.endswith("/"):
        # temporary files of an interrupted write start with "." (see llmsafety._cache): not outputs
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")) if path.is_dir() else []
    return [path] if path.is_file() else []


def record_phase(out: Path, phase: str) -> dict[str, dict[str, Any]]:
    """The manifest of a phase that has just written its outputs: {relpath: {size, sha256}}."""
    out = Path(out)
    manifest = {}
    required = phase_outputs(phase, required_only=True)
    for relpath in phase_outputs(phase):
        files = _files_of(out, relpath)
        if not files and relpath not in required:
            continue
        if not files:  # a bug in the phase, not damage: never mark such a phase finished
            raise RuntimeError(f"phase {phase} finished without writing {relpath} (see PHASE_OUTPUTS in {__name__})")
        for f in files:
            manifest[f.relative_to(out).as_posix()] = file_record(f, sync=True)
    return manifest


# ============================================================================ checking a run

@dataclass(frozen=True)
class Damage:
    """One problem: ``path`` (relative to the run directory) of ``phase`` is not what it wrote."""

    phase: str
    path: str
    problem: str

    def __str__(self) -> str:
        if self.path == STATE_FILE:  # the record of the phase is wrong, not a file it wrote
            return f"{self.path}, phase {self.phase}: {self.problem}"
        return f"{self.path} (written by phase {self.phase}): {self.problem}"


@dataclass
class RunCheck:
    """What can be used of a run: the finished phases up to the first damaged one."""

    sound: list[str]                                            # finished phases that can be used, in order
    redo: list[str]                                             # finished phases --resume would redo
    damage: list[Damage] = field(default_factory=list)          # what is wrong (first damaged phase first)
    unverified: list[str] = field(default_factory=list)         # sound, but no manifest (older runs): parsed only

    @property
    def ok(self) -> bool:
        return not self.damage


def verify_manifest(out: Path, phase: str, manifest: Any) -> list[Damage]:
    """Each file of the manifest is there with its recorded size and sha256."""
    if not isinstance(manifest, dict) or not manifest:
        return [Damage(phase, STATE_FILE, "its manifest in state.json is empty or malformed")]
    problems = []
    for relpath, record in manifest.items():
        path = Path(out) / relpath
        if not (isinstance(record, dict) and isinstance(record.get("size"), int) and isinstance(record.get("sha256"), str)):
            problems.append(Damage(phase, relpath, "its manifest entry in state.json is malformed"))
        elif not path.is_file():
            problems.append(Damage(phase, relpath, "missing"))
        elif path.stat().st_size != record["size"]:
            problems.append(Damage(phase, relpath, f"{path.stat().st_size} bytes, the phase wrote "
                                                   f"{record['size']}: cut short or changed since"))
        elif file_record(path)["sha256"] != record["sha256"]:
            problems.append(Damage(phase, relpath, "changed since the phase wrote it (same size, other sha256)"))
    return problems


def parse_outputs(out: Path, phase: str) -> list[Damage]:
    """Each output of the phase is there and reads as what it is; counts that must agree do.

    The check for runs without a manifest, and ``llmsafety dart check``'s second look. An
    adapter is checked without loading a model: its config parses, its weights file is whole.
    """
    out = Path(out)
    problems: list[Damage] = []
    loaded: dict[str, Any] = {}
    required = phase_outputs(phase, required_only=True)
    for relpath in phase_outputs(phase):
        path = out / relpath
        if relpath not in required and not path.exists():
            continue
        try:
            if relpath.endswith("/"):
                problems += [Damage(phase, relpath + name, why) for name, why in _adapter_problems(path)]
            elif not path.is_file():
                problems.append(Damage(phase, relpath, "missing"))
            elif path.suffix == ".json":
                loaded[path.name] = read_json(path)
            elif path.suffix == ".jsonl":
                loaded[path.name] = read_jsonl(path)
            elif path.suffix == ".npy":
                import numpy as np

                loaded[path.name] = np.load(path, allow_pickle=False)
        except DamagedFileError as err:
            problems.append(Damage(phase, relpath, err.problem if err.line is None else f"line {err.line}: {err.problem}"))
        except (ValueError, EOFError, OSError) as err:  # np.load of a cut .npy
            problems.append(Damage(phase, relpath, f"unreadable ({err})"))
    return problems + _count_problems(phase, phase_outputs(phase), loaded)


def _adapter_problems(adapter: Path) -> list[tuple[str, str]]:
    if not adapter.is_dir():
        return [("", "missing")]
    problems = []
    try:
        if not isinstance(read_json(adapter / "adapter_config.json"), dict):
            problems.append(("adapter_config.json", "not a JSON object"))
    except FileNotFoundError:
        problems.append(("adapter_config.json", "missing"))
    except DamagedFileError as err:
        problems.append(("adapter_config.json", err.problem))
    weights = adapter / "adapter_model.safetensors"
    if weights.is_file():
        why = _safetensors_problem(weights)
        if why:
            problems.append((weights.name, why))
    elif not (adapter / "adapter_model.bin").is_file():
        problems.append((weights.name, "missing (and no adapter_model.bin)"))
    return problems


def _safetensors_problem(path: Path) -> str | None:
    """Whether a .safetensors file is whole: its header parses and describes exactly its size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 0 or n > size - 8:
            return f"cut short: {size} bytes, not even its header"
        try:
            header = json.loads(f.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "its header is not valid safetensors JSON"
    if 8 + n + end != size:
        return f"{size} bytes, its header describes {8 + n + end}: cut short or changed"
    return None


def _count_problems(phase: str, outputs: list[str], loaded: dict[str, Any]) -> list[Damage]:
    """Counts one file of a phase records about another: a JSONL file cut after a whole line
    parses, but then holds fewer rows than the log counted."""
    where = {Path(p).name: p for p in outputs}
    problems = []

    def agree(rows_file: str, rows: Any, log_file: str, count: Any, what: str) -> None:
        if rows is not None and isinstance(count, int) and len(rows) != count:
            problems.append(Damage(phase, where[rows_file], f"{len(rows)} {what}, but {log_file} counted {count}"))

    red_log = loaded.get("red_log.json")
    if isinstance(red_log, dict) and isinstance(red_log.get("red_metrics"), dict):
        n = red_log["red_metrics"].get("n_attacks")
        agree("attacks.jsonl", loaded.get("attacks.jsonl"), "red_log.json", n, "attacks")
        agree("attack_embeddings.npy", loaded.get("attack_embeddings.npy"), "red_log.json", n, "embeddings")
    target_log = loaded.get("target_log.json")
    if isinstance(target_log, dict):
        agree("selection.jsonl", loaded.get("selection.jsonl"), "target_log.json",
              target_log.get("n_selected"), "selected attacks")
    return problems


def check_run(out: Path, state: RunState, phases: list[str], *, deep: bool = False,
              every_phase: bool = False) -> RunCheck:
    """Check the finished phases of a run in order; the first damaged one and all after it are redone.

    ``phases``: the phases the run's config has, in order. Phases with a manifest are checked
    against it (``deep`` also parses their files); phases without one (older runs) are parsed.
    ``every_phase``: keep checking after the first damaged phase, to report everything.
    """
    out = Path(out)
    result = RunCheck(sound=[], redo=[])
    for i, phase in enumerate(state.completed):
        if result.damage and not every_phase:
            break
        expected = phases[i] if i < len(phases) else None
        if phase != expected:
            problem = (f"finished phase {i + 1} is {phase!r}, but the run's phases are "
                       f"{', '.join(phases)}" if expected is None else
                       f"finished phase {i + 1} is {phase!r} where {expected!r} belongs: out of order")
            result.damage.append(Damage(phase, STATE_FILE, problem))
            break  # nothing after a phase out of order can be matched to the config
        if phase in state.manifests:
            problems = verify_manifest(out, phase, state.manifests[phase])
            if deep and not problems:
                problems = parse_outputs(out, phase)
        else:
            problems = parse_outputs(out, phase)
        if not problems and not result.damage:
            result.sound.append(phase)
            if phase not in state.manifests:
                result.unverified.append(phase)
        result.damage += problems
    result.redo = state.completed[len(result.sound):]
    return result


# ============================================================================ the config

def config_changes(state: RunState, config: dict[str, Any], defaults: dict[str, Any] | None = None) -> list[str]:
    """Fields of ``config`` (config.json now) that differ from the config the finished phases ran with.

    ``defaults``: the value of a field added to DARTConfig since the phases ran (what loading their
    config.json gives it), so that a new field alone is no change.
    """
    if state.config is None:  # older runs did not record it
        return []
    used = {**(defaults or {}), **state.config}
    missing = "(no such field)"
    keys = list(config) + [k for k in used if k not in config]
    return [f"{k}: the phases ran with {used.get(k, missing)!r}, config.json now says {config.get(k, missing)!r}"
            for k in keys if used.get(k, missing) != config.get(k, missing)]


# ============================================================================ errors

class RunDamagedError(ValueError):
    """A run's files are not what its phases wrote: no numbers come from it until it is redone."""

    def __init__(self, out: Path, check: RunCheck):
        self.out, self.check = Path(out), check
        first = check.damage[0].phase
        problems = "; ".join(str(d) for d in check.damage if d.phase == first)
        super().__init__(f"{out}: {problems}. Nothing from phase {first} on is used: run "
                         f"`{resume_command(Path(out))}` to redo it and the phases after it "
                         f"({', '.join(check.redo)})")


class RunConfigChangedError(ValueError):
    """config.json was edited after phases ran with another config."""

    def __init__(self, out: Path, changes: list[str]):
        self.out, self.changes = Path(out), changes
        super().__init__(f"{Path(out) / 'config.json'} was changed after the run's phases ran: "
                         f"{'; '.join(changes)}. Put the old values back (state.json keeps them under "
                         f"'config'), or start the new config in another output directory")


class RunDamageWarning(UserWarning):
    """--resume found damage and redoes the phases it concerns."""


def warn_redo(out: Path, check: RunCheck) -> None:
    problems = "; ".join(str(d) for d in check.damage)
    warnings.warn(f"{out}: {problems}. Redoing {', '.join(check.redo)} instead of using them",
                  RunDamageWarning, stacklevel=4)  # points at the caller of run_dart
