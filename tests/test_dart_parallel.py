"""Runs side by side: each is exactly run_dart in its own process, and the caller hears of every phase."""

from __future__ import annotations

import json

import pytest
import torch

from llmsafety.dart import DARTConfig, load_result, run_dart
from llmsafety.dart.parallel import run_side_by_side, threads_per_run

# eval_0 only, on a handful of prompts: what the processes do is the point, not the sizes
EVAL_ONLY = dict(eval_hh_prompts=3, eval_seed_prompts=2, eval_benign_prompts=2, eval_hh_benign_prompts=1,
                 eval_max_new_tokens=8, bootstrap_samples=20, batch_size=8)


def test_threads_are_split_between_runs():
    assert threads_per_run(2, cpus=2) == 1
    assert threads_per_run(2, cpus=16) == 8
    assert threads_per_run(3, cpus=2) == 1  # never zero
    with pytest.raises(ValueError, match="processes must be at least 1, got 0"):
        run_side_by_side({}, processes=0)
    with pytest.raises(TypeError, match=r"runs\['a'\] must be a \(DARTConfig, output_dir\) pair"):
        run_side_by_side({"a": ("not a config", "x")})


def test_stop_after_names_a_phase(tmp_path):
    with pytest.raises(ValueError, match="stop_after='eval_9' is not a phase of this run; its phases: eval_0, red_1"):
        run_dart(DARTConfig(**EVAL_ONLY), tmp_path / "run", stop_after="eval_9")


@pytest.mark.slow
def test_side_by_side_equals_one_at_a_time_and_reports_each_phase(tmp_path):
    configs = {"seed0": DARTConfig(seed=0, **EVAL_ONLY), "seed1": DARTConfig(seed=1, **EVAL_ONLY)}
    seen = []
    results = run_side_by_side({name: (cfg, tmp_path / name) for name, cfg in configs.items()}, stop_after="eval_0",
                               on_phase_end=lambda name, phase, result: seen.append((name, phase, result.completed)),
                               poll_s=0.2)
    assert sorted(seen) == [("seed0", "eval_0", ["eval_0"]), ("seed1", "eval_0", ["eval_0"])]
    assert {name: r.completed for name, r in results.items()} == {"seed0": ["eval_0"], "seed1": ["eval_0"]}
    # the same run in this process, with the worker's thread count: the same replies and scores
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_run(2))
    try:
        alone = run_dart(configs["seed1"], tmp_path / "alone", progress=False, stop_after="eval_0")
    finally:
        torch.set_num_threads(threads)
    here, there = alone.evaluations[0]["records"], results["seed1"].evaluations[0]["records"]
    text = ("prompt", "reply", "source", "outcome")
    assert [{k: r.get(k) for k in text} for r in here] == [{k: r.get(k) for k in text} for r in there]
    # the scores to float noise: a process that ran other work first may sum in another order
    for ours, theirs in zip(here, there):
        for key in ("harm", "train_judge_harm"):
            if theirs.get(key) is None:  # benign prompts carry no harm score
                assert ours.get(key) is None, (key, ours["prompt"])
            else:
                assert ours.get(key) == pytest.approx(theirs[key], rel=1e-5, abs=1e-7), (key, ours["prompt"])
    assert load_result(tmp_path / "seed1").completed == ["eval_0"]  # stopped where asked, on disk too


@pytest.mark.slow
def test_a_failing_run_is_named_and_the_others_finish(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    DARTConfig(seed=5, **EVAL_ONLY).save(bad / "config.json")  # another config: run_dart refuses to resume it
    with pytest.raises(RuntimeError, match=r"DART run 'bad' \(.*bad\) failed: .*running again resumes it"):
        run_side_by_side({"good": (DARTConfig(**EVAL_ONLY), tmp_path / "good"), "bad": (DARTConfig(**EVAL_ONLY), bad)},
                         stop_after="eval_0", poll_s=0.2)
    assert json.loads((tmp_path / "good" / "state.json").read_text())["completed"] == ["eval_0"]
