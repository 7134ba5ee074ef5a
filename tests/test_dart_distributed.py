"""DART on several processes (accelerate launch): one process is the identity, two agree on everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llmsafety.dart import DARTConfig, distributed, load_result, run_dart
from llmsafety.dart.loop import phase_names
from llmsafety.dart.rewards import RolloutScorer

FIXTURES = Path(__file__).parent / "fixtures"


def test_one_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert (distributed.world_size(), distributed.process_index(), distributed.is_main_process()) == (1, 0, True)
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert distributed.gather({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast([1, 2]) == [1, 2]
    assert distributed.gather_arrays(rows) is rows
    distributed.barrier()  # no group, no wait
    assert distributed.per_process_batch(16, "x") == 16


def test_batches_split_evenly_over_processes_or_say_why(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.per_process_batch(16, "red_prompts_per_step x red_generations") == 8
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match=r"target_sft_batch_size = 8 does not split over 3 processes"):
        distributed.per_process_batch(8, "target_sft_batch_size")


def test_checksum_tells_archives_apart():
    a = np.eye(3, dtype=np.float32)
    assert distributed.checksum(a) == distributed.checksum(a.copy())
    assert distributed.checksum(a) != distributed.checksum(a[:2])  # one row fewer
    assert distributed.checksum(a) != distributed.checksum(a.astype(np.float64))  # same values, other dtype
    b = a.copy()
    b[2, 2] = 0.5
    assert distributed.checksum(a) != distributed.checksum(b)


def _scorer(gather_fn):
    """A scorer on hand-made parts: a 2-d embedding per attack word, every attack successful."""
    table = {"alpha": [1.0, 0.0], "beta": [0.0, 1.0], "gamma": [0.6, 0.8]}

    def embed(texts):
        return np.array([table.get(t.split()[0], [0.0, 0.0]) for t in texts], dtype=np.float32)

    class Judge:
        def __call__(self, prompts, replies):
            return type("R", (), {"scores": [0.9] * len(prompts)})()

    return RolloutScorer(reply_fn=lambda attacks: ["ok"] * len(attacks), judge=Judge(), embed_fn=embed,
                         archive_embeddings=np.zeros((0, 2), dtype=np.float32), min_attack_words=1,
                         archive_grows=True, gather_fn=gather_fn)


def test_a_growing_archive_takes_every_process_s_attacks_in_process_order():
    other_process = np.array([[0.0, 1.0]], dtype=np.float32)  # what process 1 scored at the same step
    gathered = []

    def gather_fn(mine):
        gathered.append(mine.copy())
        return np.concatenate([mine, other_process])  # this is process 0: its rows come first

    scorer = _scorer(gather_fn)
    scorer.score(["alpha one two"], trainer_state=type("S", (), {"global_step": 1})())
    np.testing.assert_array_equal(scorer.archive_embeddings, [[1.0, 0.0], [0.0, 1.0]])
    # next step: novelty is measured against both processes' attacks of step 1
    (record,) = scorer.score(["beta one two"], trainer_state=type("S", (), {"global_step": 2})())
    assert record.novelty == pytest.approx(0.0, abs=1e-6)  # process 1 had sent the very same embedding
    assert len(gathered) == 2 and len(scorer.archive_embeddings) == 4


def test_the_gather_is_called_even_when_a_process_has_nothing_to_add():
    calls = []
    scorer = _scorer(lambda mine: calls.append(len(mine)) or mine)
    scorer.score([""], trainer_state=type("S", (), {"global_step": 1})())  # an empty attack: nothing to add
    assert calls == [0]  # a collective every process must join, or the others would wait forever
    assert len(scorer.archive_embeddings) == 0


# ------------------------------------------------------------------------------ two processes, for real

SMALL = dict(
    iterations=2, red_steps=1, red_prompts_per_step=2, red_generations=2, red_max_new_tokens=12,
    selection_budget=2, uncertainty_samples=2, benign_mix=2, target_max_new_tokens=10, target_epochs=1,
    target_sft_batch_size=2, eval_hh_prompts=3, eval_seed_prompts=2, eval_benign_prompts=2, eval_hh_benign_prompts=1,
    eval_max_new_tokens=8, bootstrap_samples=20, batch_size=8, novelty_archive="steps", novelty_includes_seeds=False,
    eval_each_iteration=False,
)


@pytest.mark.slow
def test_accelerate_launch_on_two_processes_resumes_a_one_process_run(tmp_path):
    """Iteration 1's red phase on one process, the rest under ``accelerate launch --num_processes 2``
    (CPU, gloo): it finishes, only the main process writes the run directory, and both processes
    scored novelty against the same archive (built from disk, then grown step by step)."""
    config = DARTConfig(seed=3, **SMALL)
    run = tmp_path / "run"
    run_dart(config, run, progress=False, stop_after="red_1")
    config_file = config.save(tmp_path / "config.yaml")
    audit = tmp_path / "audit"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(29500 + os.getpid() % 500)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", env["MASTER_PORT"],
           str(FIXTURES / "audited_cli.py"), str(run), str(audit),
           "dart", "run", "--config", str(config_file), "--out", str(run), "--resume"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]

    logs = {r: json.loads(Path(f"{audit}.rank{r}.json").read_text()) for r in (0, 1)}
    assert logs[0]["writes"], "the audit hook saw no write at all: it would not see one by process 1 either"
    assert logs[1]["writes"] == []
    result = load_result(run)
    assert result.completed == phase_names(config) and result.finished
    processes = result.iterations[2]["processes"]
    assert [p["process"] for p in processes] == [0, 1]
    assert processes[0]["archive_start_sha256"] == processes[1]["archive_start_sha256"]
    assert processes[0]["archive_end_sha256"] == processes[1]["archive_end_sha256"]
    attacks = result.iterations[2]["attacks"]
    assert len(attacks) == 4  # 2 instructions x 2 attacks: 2 sampled by each process
    # the archive started from iteration 1's 4 attacks and grew by both processes' (non-empty) attacks
    assert processes[0]["archive_rows"] == 4 + sum(bool(a["attack"]) for a in attacks)
    assert done.stdout.count("DART run") == 1  # one summary, from the main process
    check = subprocess.run([sys.executable, "-m", "llmsafety", "dart", "check", str(run)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
