"""run_dart: the adversarial loop, persisted phase by phase so a killed run resumes exactly.

This file orders, resumes and checks phases; what a phase does is in :mod:`llmsafety.dart.iteration`.

Phases, in order: ``eval_0`` (the Target before any tuning), then for t = 1..T:
``red_t`` (GRPO on the Red LLM against the current Target), ``target_t`` (active-learning
selection + safety SFT of the Target), ``eval_t`` (held-out evaluation; only the last one when
``eval_each_iteration`` is off).

Every phase writes its outputs to ``output_dir`` and then appends its name to ``state.json``,
with a manifest of the files it wrote (:mod:`llmsafety.dart.manifest`); a phase that did not
finish (crash, Ctrl-C, SIGTERM) leaves no name and is redone from its start on resume. Resume and
:func:`load_result` check the manifests: a missing, cut or changed file is named with its phase,
resume redoes that phase and those after it, ``load_result`` refuses to give numbers. Every phase
loads the models it needs from disk (base checkpoint + the adapter of the last finished phase)
and seeds itself from ``(seed, iteration, phase)``, so a resumed run computes exactly what an
uninterrupted one does.

Layout::

    config.json  state.json  metrics.json  eval_0.json  eval_1.json ...
    iter_1/red_adapter/  attacks.jsonl  attack_embeddings.npy  red_log.json
           target_adapter/  selection.jsonl  target_log.json
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from llmsafety._io import DamagedFileError, read_json, read_jsonl
from llmsafety.dart import distributed, manifest
from llmsafety.dart.config import LEGACY_DEFAULTS, DARTConfig
from llmsafety.dart.evaluate import summarize
from llmsafety.dart.iteration import PHASES, RunContext, write_json_numpy, write_jsonl_numpy

# ============================================================================ small helpers

def phase_names(config: DARTConfig) -> list[str]:
    if config.variant == "system_prompt":  # a control with no training: before, and the prompted Target
        return ["eval_0", f"eval_{config.iterations}"]
    names = ["eval_0"]
    for t in range(1, config.iterations + 1):
        names += [f"red_{t}", f"target_{t}"]
        if config.eval_each_iteration or t == config.iterations:
            names.append(f"eval_{t}")
    return names


_write_json = write_json_numpy
_write_jsonl = write_jsonl_numpy


def _read_json(path: Path) -> Any:
    return read_json(path)  # errors name the file


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path)  # errors name the file and line; a last line without newline is torn


# ============================================================================ the result

@dataclass
class DARTResult:
    """Everything a run produced; ``load_result(dir)`` rebuilds it from disk."""

    output_dir: Path
    config: DARTConfig
    completed: list[str]
    evaluations: dict[int, dict[str, Any]] = field(default_factory=dict)
    iterations: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.completed == phase_names(self.config)

    def attacks(self, iteration: int | None = None) -> pd.DataFrame:
        its = [iteration] if iteration is not None else sorted(self.iterations)
        frames = [pd.DataFrame(self.iterations[t]["attacks"]).assign(iteration=t) for t in its if t in self.iterations]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def metrics(self) -> pd.DataFrame:
        """One row per evaluated iteration (0 = before tuning) with Target and Red metrics."""
        rows = []
        for t in sorted(self.evaluations):
            ev = self.evaluations[t]
            row = {"iteration": t, "violation_rate": ev["violation_rate"],
                   "ci_low": ev["violation_ci"][0], "ci_high": ev["violation_ci"][1],
                   "over_refusal": ev.get("over_refusal", float("nan"))}
            for source, s in ev.get("by_source", {}).items():
                row[f"violation_{source}"] = s["violation_rate"]
            row.update({k: v for k, v in self.iterations.get(t, {}).get("red_metrics", {}).items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = [f"DART run {self.output_dir} (variant {self.config.variant}, seed {self.config.seed}): "
                 f"{len(self.completed)}/{len(phase_names(self.config))} phases done"]
        for t in sorted(self.evaluations):
            lines.append(f"  after iteration {t}: {summarize(self.evaluations[t])}" if t else
                         f"  before tuning:     {summarize(self.evaluations[t])}")
        if 0 in self.evaluations and len(self.evaluations) > 1:
            first, last = self.evaluations[0]["violation_rate"], self.evaluations[max(self.evaluations)]["violation_rate"]
            if first > 0:
                lines.append(f"  violation risk removed: {1 - last / first:.1%}")
        return "\n".join(lines)


def load_run_config(output_dir: str | Path) -> DARTConfig:
    """The config.json of a run; a torn or invalid one is an error naming it."""
    path = Path(output_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{Path(output_dir)} is not a DART run directory (no config.json)")
    restore = ("restore it as the run was started (runs made since manifests keep a copy in state.json "
               "under 'config')")
    try:
        return DARTConfig.from_dict(read_json(path), saved_run=True)
    except DamagedFileError as err:
        raise DamagedFileError(path, f"{err.problem}; {restore}") from None
    except (ValueError, TypeError) as err:  # unknown field, bad value: DARTConfig's message names it
        raise ValueError(f"{path}: {err}; {restore}") from None


def checked_state(out: Path, config: DARTConfig) -> tuple[manifest.RunState, manifest.RunCheck]:
    """state.json of a run and the check of its finished phases against their manifests.

    Raises when nothing of the run can be matched to its config: a torn state.json, or a
    config.json edited after phases ran with other values.
    """
    state = manifest.read_state(out)
    changes = manifest.config_changes(state, config.to_dict(), {**DARTConfig().to_dict(), **LEGACY_DEFAULTS})
    if changes:
        raise manifest.RunConfigChangedError(out, changes)
    return state, manifest.check_run(out, state, phase_names(config))


def load_result(output_dir: str | Path, *, compact: bool = False) -> DARTResult:
    """The run in ``output_dir`` as far as it got.

    Every finished phase's files are checked first (against its manifest; runs without manifests:
    parsed and cross-checked). A damaged run raises an error naming the file, the phase that wrote
    it and the command that redoes it: it never yields numbers.

    ``compact``: ``output_dir`` is a compact copy of a run (what the benchmarks commit: every JSON
    and JSONL file, no adapters, embeddings or trainer folders). The files it holds are checked
    against the manifests as usual; only the absence of those left out is accepted.
    """
    out = Path(output_dir)
    config = load_run_config(out)
    state, check = checked_state(out, config)
    if compact and not check.ok:
        check = manifest.check_run(out, state, phase_names(config), every_phase=True)
        check.damage = [d for d in check.damage if not (d.problem == "missing" and _left_out_of_compact_copy(d.path))]
    if not check.ok:
        raise manifest.RunDamagedError(out, check)
    result = DARTResult(out, config, list(state.completed))
    for name in result.completed:
        kind, t = name.rsplit("_", 1)
        t = int(t)
        if kind == "eval":
            result.evaluations[t] = _read_json(out / f"eval_{t}.json")
        elif kind == "red":
            it = result.iterations.setdefault(t, {})
            it["attacks"] = _read_jsonl(out / f"iter_{t}" / "attacks.jsonl")
            it.update(_read_json(out / f"iter_{t}" / "red_log.json"))
        elif kind == "target":
            it = result.iterations.setdefault(t, {})
            it["selection"] = _read_jsonl(out / f"iter_{t}" / "selection.jsonl")
            it["target_log"] = _read_json(out / f"iter_{t}" / "target_log.json")
    return result


def _left_out_of_compact_copy(relpath: str) -> bool:
    """What a compact copy of a run leaves out: adapters, embedding arrays, trainer folders."""
    return "adapter" in relpath or relpath.endswith(".npy") or relpath.startswith("_") or "/_" in relpath


# ============================================================================ the run

def _check_output_dir(out: Path, config: DARTConfig, resume: bool) -> None:
    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / "config.json").exists():
        raise FileExistsError(f"{out} exists and is not a DART run directory: choose another output_dir")
    if not resume:
        raise FileExistsError(f"{out} already holds a DART run. Resume it with resume=True (CLI: --resume), "
                              "or choose another output directory: nothing is overwritten.")
    saved = load_run_config(out)
    if saved != config:
        diff = [f"{f.name}: saved {getattr(saved, f.name)!r} != given {getattr(config, f.name)!r}"
                for f in dataclasses.fields(config) if getattr(saved, f.name) != getattr(config, f.name)]
        raise ValueError(f"cannot resume {out}: its config differs ({'; '.join(diff)}). "
                         "Use the same config, or another output directory.")


#: What the untuned Target's evaluation (eval_0) reads of a config: two runs equal in these fields
#: have the same eval_0 (greedy replies to the same prompts, graded by the same judges).
EVAL_0_FIELDS = ("target_model", "judge", "eval_judge", "embedder", "device", "dtype", "seed", "harm_threshold",
                 "eval_hh_prompts", "eval_hh_benign_prompts", "eval_seed_prompts", "eval_benign_prompts",
                 "eval_max_new_tokens", "bootstrap_samples", "hh_source", "batch_size")


def share_untuned_evaluation(finished_run: str | Path, output_dir: str | Path, config: DARTConfig) -> bool:
    """Start a new run in ``output_dir`` with the sealed eval_0 of ``finished_run``: the evaluation of
    the untuned Target is the same for every variant of a seed, so a study computes it once.

    Returns False (and does nothing) when ``output_dir`` already holds a run. Raises ValueError naming
    the fields when the two configs differ in anything eval_0 reads (:data:`EVAL_0_FIELDS`), and when
    ``finished_run``'s eval_0 is missing or damaged.
    """
    import shutil

    source, out = Path(finished_run), Path(output_dir)
    if (out / manifest.STATE_FILE).exists():
        return False
    given = load_run_config(source)
    differ = [f"{name}: {getattr(given, name)!r} != {getattr(config, name)!r}"
              for name in EVAL_0_FIELDS if getattr(given, name) != getattr(config, name)]
    if differ:
        raise ValueError(f"cannot share {source}'s eval_0: the configs differ in what it reads ({'; '.join(differ)})")
    state, check = checked_state(source, given)
    if "eval_0" not in check.sound or "eval_0" not in state.manifests:
        raise ValueError(f"{source} has no finished, undamaged eval_0 to share: run it first")
    config.validate()
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    shutil.copy(source / "eval_0.json", out / "eval_0.json")
    manifest.write_state(out, manifest.RunState(["eval_0"], {"eval_0": state.manifests["eval_0"]}, config.to_dict()))
    return True


def run_dart(
    config: DARTConfig,
    output_dir: str | Path,
    resume: bool = True,
    *,
    progress: bool = True,
    on_phase_end: Callable[[str, DARTResult], None] | None = None,
    max_phases: int | None = None,
    stop_after: str | None = None,
) -> DARTResult:
    """Run (or resume) DART; returns every iteration's attacks, replies, scores and metrics.

    ``resume``: an existing run directory with the same config continues where it stopped;
    ``False`` refuses an existing run instead of overwriting it.
    ``on_phase_end(phase, result)``: called after each phase (the notebook dashboard uses it).
    ``max_phases``: stop after this many phases of *this call* (step-by-step runs, tests).
    ``stop_after``: stop once this phase (e.g. ``"eval_0"``) is finished; nothing to do if it already is.

    On resume every finished phase is checked against its manifest: a damaged one is redone, with
    those after it, and a :class:`~llmsafety.dart.manifest.RunDamageWarning` names the file.
    SIGTERM raises :class:`RunTerminated` (a KeyboardInterrupt): the phase under way is not marked.
    """
    if not isinstance(config, DARTConfig):
        raise TypeError(f"config must be a DARTConfig, got {type(config).__name__}")
    config.validate()
    phases = phase_names(config)
    if stop_after is not None and stop_after not in phases:  # before anything is written
        raise ValueError(f"stop_after={stop_after!r} is not a phase of this run; its phases: {', '.join(phases)}")
    out = Path(output_dir)
    main = distributed.is_main_process()  # launched on N processes: only the main one writes files
    if main:
        _check_output_dir(out, config, resume)
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "config.json").exists():
            config.save(out / "config.json")
        state = _usable_state(out, config)
    distributed.barrier()
    if not main:  # the main process has checked (and, if damaged, repaired) the state: read it
        state = checked_state(out, config)[0]
    if stop_after is not None:
        phases = phases[: phases.index(stop_after) + 1]
    todo = phases[len(state.completed):]  # the finished phases are a checked prefix
    if todo and main:
        _check_writable(out)
    progress = progress and main
    context = RunContext(config, out, progress)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(phase_names(config)), initial=len(state.completed), desc="DART phases", disable=not progress)
    done_now = 0
    with _sigterm_raises():
        for phase in todo:
            if max_phases is not None and done_now >= max_phases:
                break
            bar.set_postfix_str(phase)
            kind, t = phase.rsplit("_", 1)
            try:
                PHASES[kind](context, int(t))
            except BaseException as err:
                print(f"DART: phase {phase} stopped ({type(err).__name__}) before it finished: none of its "
                      f"files count, resume redoes it from its start", file=sys.stderr)
                raise
            distributed.barrier()  # every process's part of the phase is done (and its files written)
            if main:
                # The marker comes last, with the manifest of the files the phase wrote, in one atomic
                # write: a phase is finished with its manifest, or not finished.
                files = manifest.record_phase(out, phase)
                state = manifest.RunState(state.completed + [phase], {**state.manifests, phase: files},
                                          config.to_dict())
                manifest.write_state(out, state)
                bar.update(1)
                result = load_result(out)
                _write_json(out / "metrics.json", result.metrics().to_dict(orient="records"))
                if on_phase_end is not None:
                    on_phase_end(phase, result)
            done_now += 1
            release_memory()
            distributed.barrier()  # no process starts the next phase before the marker is written
    bar.close()
    return load_result(out)


def release_memory() -> None:
    """Give the memory of a finished phase back to the OS.

    A phase's models and trainers die in reference cycles that only the collector frees, and glibc
    keeps freed heap for reuse instead of returning it: measured on one Target phase repeated five
    times in one process, RSS after each was ~1.6 GB as is, ~1.1 GB after ``gc.collect()`` and
    ~0.5 GB after ``malloc_trim(0)``. Elsewhere than glibc the trim is skipped.
    """
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _usable_state(out: Path, config: DARTConfig) -> manifest.RunState:
    """state.json with damaged finished phases dropped: the first damaged one and every phase
    after it (they were computed from it) are redone, with a warning naming the file and phase."""
    state, check = checked_state(out, config)
    if check.ok:
        return state
    manifest.warn_redo(out, check)
    _check_writable(out)
    state = state.keep(check.sound)
    manifest.write_state(out, state)
    # metrics.json holds numbers of the phases just dropped: rewrite it from what is kept
    _write_json(out / "metrics.json", load_result(out).metrics().to_dict(orient="records"))
    return state


def _check_writable(out: Path) -> None:
    """Fail now, not after a phase's minutes of work, when the run directory cannot be written."""
    try:
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write_probe.", suffix=".tmp")
    except OSError as err:
        raise PermissionError(err.errno, f"{out} cannot be written ({err.strerror}): a DART run writes each "
                                         "phase's files there. Make it writable, or copy the run to a "
                                         "writable place and resume the copy") from None
    os.close(fd)
    os.unlink(probe)


class RunTerminated(KeyboardInterrupt):
    """The process got SIGTERM during a run.

    Raised like Ctrl-C's KeyboardInterrupt (and a subclass of it, so no ``except Exception`` in a
    library swallows it): the phase under way stops before its marker, temporary files are
    removed on the way out, and resume redoes the phase.
    """


@contextlib.contextmanager
def _sigterm_raises():
    # Python's default for SIGTERM is to die on the spot; then nothing is half-counted either (the
    # marker is written last), but a phase's cleanup does not run and the caller gets no exception.
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        yield
        return

    def handler(signum, frame):
        raise RunTerminated(f"SIGTERM (signal {signum}) during a DART run")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
