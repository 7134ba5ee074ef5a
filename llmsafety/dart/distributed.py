"""DART on several processes: which process this is, and the four collective steps the loop needs.

``accelerate launch --num_processes N -m llmsafety dart run ...`` (or ``torchrun``) starts N copies
of the same loop. Each runs every phase in the same order, and they split the work like this:

- **Red phase**: all N train the Red LLM together. TRL's GRPOTrainer is data-parallel under
  accelerate (DDP, DeepSpeed or FSDP, from the launch config): each process samples its share of
  the step's attacks, has its own Target reply to them and its own judge grade them. The novelty
  archive is computed on the main process and sent to the others (:func:`broadcast`), and when it
  grows during the phase every process adds the whole step's attacks, gathered in process order
  (:func:`gather_arrays`), so all N score novelty against the same archive. The phase records each
  process's archive checksum and stops if they differ.
- **Target phase**: the main process samples, selects and writes the safe replies; the examples
  are sent to every process (:func:`broadcast`) and all N run the LoRA SFT data-parallel.
- **Evaluation**: the main process only (greedy decoding of ~150 prompts; the others wait).
- **Files**: only the main process writes the run directory (state, manifests, adapters, logs, plots);
  phases are separated by :func:`barrier`, so a process never reads a file before it is complete.

With one process every function here is the identity (no process group is created), so a run
launched plainly behaves, and resumes, exactly as before. A run on N processes resumes like a
run on one: the phase markers are the same files.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def world_size() -> int:
    """How many processes run this loop (``WORLD_SIZE``, set by accelerate launch / torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_index() -> int:
    """This process's rank, 0 on the main process (and without a launcher)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return process_index() == 0


def is_distributed() -> bool:
    return world_size() > 1


def _state():
    """accelerate's process state, which creates the process group on first use (gloo on CPU).

    The Trainers of the red and target phases build the same singleton, so they see the same group.
    """
    from datetime import timedelta

    import torch
    from accelerate import PartialState

    # The other processes wait at a barrier while the main one evaluates, which takes minutes on
    # a CPU: a longer limit than torch's default 30 minutes before a wait counts as a hang.
    return PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(hours=4))


def barrier() -> None:
    """Wait until every process is here (a phase's files are complete before anyone reads them)."""
    if is_distributed():
        _state().wait_for_everyone()


def broadcast(obj: T) -> T:
    """The main process's ``obj`` on every process (any picklable object)."""
    if not is_distributed():
        return obj
    from accelerate.utils import broadcast_object_list

    _state()
    box = [obj if is_main_process() else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def gather(obj: Any) -> list[Any]:
    """``[obj of process 0, obj of process 1, ...]`` on every process; ``[obj]`` on one process."""
    if not is_distributed():
        return [obj]
    from accelerate.utils import gather_object

    _state()
    return gather_object([obj])


def gather_arrays(array: np.ndarray) -> np.ndarray:
    """Every process's rows, concatenated in process order: float32[sum of n_i, dim]."""
    if not is_distributed():
        return array
    return np.concatenate(gather(np.asarray(array)))


def checksum(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes: equal archives have equal checksums."""
    a = np.ascontiguousarray(array)
    return hashlib.sha256(f"{a.shape}{a.dtype}".encode() + a.tobytes()).hexdigest()


def per_process_batch(total: int, what: str) -> int:
    """``total`` items a step split evenly over the processes, so N processes take the same steps
    with the same global batch as one process; a clear error when it does not divide."""
    n = world_size()
    if total % n:
        raise ValueError(f"{what} = {total} does not split over {n} processes: choose a multiple of {n} "
                         f"(or launch a number of processes that divides {total})")
    return total // n


def finish() -> None:
    """Tear the process group down at the end of a run (gloo aborts at exit otherwise)."""
    if is_distributed():
        import torch.distributed as dist

        if dist.is_initialized():
            barrier()
            dist.destroy_process_group()
