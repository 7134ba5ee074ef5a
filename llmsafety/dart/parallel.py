"""Several DART runs at once, one process each: variants or seeds side by side on one machine.

    results = run_side_by_side({"dart": (dart_config, "runs/dart"), "mart": (mart_config, "runs/mart")},
                               on_phase_end=lambda name, phase, result: dashboards[name].update(phase, result))

Why processes: on a CPU most of a small run's time is per-token overhead in Python (one decoding
step, one layer call at a time) that a second torch thread cannot overlap. Two runs of one thread
each keep two cores busy where one run of two threads leaves one mostly idle. Each worker gets
``cpu_count // processes`` threads (at least one); on a GPU the runs share the device.

A run here is exactly :func:`~llmsafety.dart.run_dart` in a fresh (spawned) process: same files,
same resume, same checks. The caller's process only watches: it polls each run's ``state.json``
and, after every phase one of them finishes, calls ``on_phase_end(name, phase, result)`` with that
run's :func:`~llmsafety.dart.load_result`. Phases write through atomic renames, so a poll never
reads half a file. A run that fails raises its error here, after the others have finished; what
any run completed stays on disk and ``--resume`` continues it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from llmsafety.dart.config import DARTConfig
from llmsafety.dart.loop import DARTResult, load_result, run_dart


def threads_per_run(processes: int, cpus: int | None = None) -> int:
    """Torch threads for each of ``processes`` runs sharing ``cpus`` cores (default: all of them)."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus // max(1, processes))


def _worker_init(threads: int) -> None:
    import warnings

    import torch

    torch.set_num_threads(threads)
    # A worker's stderr is the caller's (a notebook cell): keep the libraries' deprecation notices
    # about their own internals (transformers 5 renaming gradient checkpointing) out of it.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft|accelerate)\b")


def _run(config: DARTConfig, out: str, stop_after: str | None) -> str:
    run_dart(config, out, resume=True, progress=False, stop_after=stop_after)
    return out


def _completed(out: Path) -> list[str]:
    from llmsafety.dart import manifest

    try:
        return list(manifest.read_state(out).completed) if (out / "state.json").exists() else []
    except Exception:  # a state file being replaced this instant: read it at the next poll
        return []


def run_side_by_side(
    runs: Mapping[str, tuple[DARTConfig, str | Path]],
    *,
    processes: int = 2,
    on_phase_end: Callable[[str, str, DARTResult], None] | None = None,
    stop_after: str | None = None,
    poll_s: float = 1.0,
) -> dict[str, DARTResult]:
    """Run (or resume) each ``name -> (config, output_dir)`` in its own process, ``processes`` at a time.

    ``stop_after``: as in :func:`~llmsafety.dart.run_dart`, for every run. Returns ``name -> DARTResult``
    read from disk once every run has stopped.
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    for name, item in runs.items():
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], DARTConfig)):
            raise TypeError(f"runs[{name!r}] must be a (DARTConfig, output_dir) pair, got {item!r}")
        item[0].validate()
    import multiprocessing

    outs = {name: Path(out) for name, (_, out) in runs.items()}
    seen = {name: _completed(out) for name, out in outs.items()}
    # spawn, not fork: a forked copy of a process that has torch (and its thread pools) loaded can hang
    with ProcessPoolExecutor(max_workers=min(processes, len(runs)) or 1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(threads_per_run(processes),)) as pool:
        futures = {name: pool.submit(_run, config, str(outs[name]), stop_after) for name, (config, _) in runs.items()}
        while True:
            all_done = all(f.done() for f in futures.values())  # read before polling: no phase is missed
            for name, out in outs.items():
                completed = _completed(out)
                if on_phase_end is not None:
                    for phase in completed[len(seen[name]):] if completed[: len(seen[name])] == seen[name] else completed:
                        on_phase_end(name, phase, load_result(out))
                seen[name] = completed
            if all_done:
                break
            time.sleep(poll_s)
        errors = {name: f.exception() for name, f in futures.items() if f.exception() is not None}
    if errors:
        name, err = next(iter(errors.items()))
        raise RuntimeError(f"DART run {name!r} ({outs[name]}) failed: {err!r}; what it completed is on disk, "
                           "and running again resumes it") from err
    return {name: load_result(out) for name, out in outs.items()}
