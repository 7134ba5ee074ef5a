"""A damaged DART run never yields a wrong number: it says which file of which phase is wrong,
and --resume redoes exactly that phase and those after it.

Most tests run the real ``run_dart`` (state.json, manifests, resume, load_result, the CLI) with a
fake run context whose phases write small synthetic files of every kind a run writes, in milliseconds.
One slow test kills a real tiny run with SIGTERM in the middle of a phase and resumes it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from llmsafety._io import DamagedFileError, read_json, read_jsonl
from llmsafety.cli import main
from llmsafety.dart import DARTConfig, load_result, loop, manifest, phase_names, run_dart

CONFIG = DARTConfig(iterations=2)  # eval_0 red_1 target_1 eval_1 red_2 target_2 eval_2; no model is loaded
PHASES = phase_names(CONFIG)


# ------------------------------------------------------------------------------ a fake run

class FakeRun:
    """Stands in for iteration.RunContext and its phases: each phase writes what the real one does, small and deterministic,
    and reads what the real one reads, so a redo from damaged inputs would show in the numbers."""

    calls: list[str] = []
    interrupt: dict[str, BaseException] = {}  # phase -> raised after it wrote half its files

    def __init__(self, config, out, progress):
        self.out = Path(out)

    def _adapter(self, path: Path, t: int) -> None:
        from safetensors.numpy import save_file

        path.mkdir(parents=True, exist_ok=True)
        (path / "adapter_config.json").write_text(json.dumps({"r": 16, "peft_type": "LORA", "t": t}))
        save_file({"lora_A": np.arange(8, dtype=np.float32) + t}, str(path / "adapter_model.safetensors"))
        (path / "README.md").write_text("a fake adapter\n")

    def _maybe_interrupt(self, phase: str) -> None:
        if phase in self.interrupt:
            raise self.interrupt.pop(phase)

    def eval_phase(self, t: int) -> None:
        FakeRun.calls.append(f"eval_{t}")
        tuned = loop._read_json(self.out / f"iter_{t}" / "target_log.json")["n_selected"] if t else 0
        rate = 0.5 - 0.1 * t - 0.01 * tuned
        loop._write_json(self.out / f"eval_{t}.json", {
            "violation_rate": rate, "violation_ci": [rate - 0.1, rate + 0.1], "n": 8, "n_benign": 3,
            "over_refusal": 0.1 * t, "by_source": {"hh": {"violation_rate": rate}},
            "by_category": {"hh-rlhf": {"violation_rate": rate, "n": 8}}, "records": []})

    def red_phase(self, t: int) -> None:
        FakeRun.calls.append(f"red_{t}")
        it = self.out / f"iter_{t}"
        it.mkdir(parents=True, exist_ok=True)
        earlier = sum(np.load(self.out / f"iter_{s}" / "attack_embeddings.npy").sum() for s in range(1, t))
        self._adapter(it / "red_adapter", t)
        np.save(it / "attack_embeddings.npy", np.full((4, 3), t + float(earlier), dtype=np.float32))
        self._maybe_interrupt(f"red_{t}")
        records = [{"attack": f"attack {t}.{i}", "reply": "no", "harm": 0.2 * i, "novelty": 1.0,
                    "category": "misuse"} for i in range(4)]
        loop._write_jsonl(it / "attacks.jsonl", records)
        loop._write_json(it / "red_log.json", {"red_metrics": {"n_attacks": 4, "attack_success_rate": 0.25 * t},
                                              "trainer_log": [], "seconds": {}})

    def target_phase(self, t: int) -> None:
        FakeRun.calls.append(f"target_{t}")
        it = self.out / f"iter_{t}"
        attacks = loop._read_jsonl(it / "attacks.jsonl")
        chosen = [r for r in attacks if r["harm"] >= 0.4]
        self._adapter(it / "target_adapter", t)
        loop._write_jsonl(it / "selection.jsonl", [{"attack": r["attack"], "safe_reply": "I can't"} for r in chosen])
        self._maybe_interrupt(f"target_{t}")
        loop._write_json(it / "target_log.json", {"n_attacks": len(attacks), "n_selected": len(chosen)})


def use_fake_run(monkeypatch) -> None:
    monkeypatch.setattr(loop, "RunContext", FakeRun)
    for kind in ("eval", "red", "target"):
        monkeypatch.setitem(loop.PHASES, kind, lambda ctx, t, kind=kind: getattr(ctx, f"{kind}_phase")(t))


@pytest.fixture
def fake(monkeypatch):
    use_fake_run(monkeypatch)
    FakeRun.calls, FakeRun.interrupt = [], {}
    return FakeRun


def make_run(path: Path, max_phases: int | None = None) -> Path:
    run_dart(CONFIG, path, progress=False, max_phases=max_phases)
    FakeRun.calls.clear()
    return path


def numbers(run_dir: Path) -> dict:
    """Everything load_result gives, as plain data."""
    result = load_result(run_dir)
    return {"completed": result.completed, "evaluations": result.evaluations,
            "metrics": result.metrics().fillna(-1).to_dict(),  # NaN != NaN
            "iterations": {t: {k: v for k, v in it.items()} for t, it in result.iterations.items()}}


@pytest.fixture
def clean(fake, tmp_path_factory):
    """A finished fake run and its numbers; each test damages its own copy."""
    run_dir = make_run(tmp_path_factory.mktemp("clean") / "run")
    return run_dir, numbers(run_dir)


def files_and_times(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


# ------------------------------------------------------------------------------ the JSON readers

def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "attacks.jsonl"
    path.write_text('{"a": 1}\n' * 6 + '{"a": "unterminated\n')
    with pytest.raises(DamagedFileError, match=r"attacks.jsonl, line 7: not valid JSON \(Unterminated string"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n{"a": 2}')  # the last line parses, but a file we write ends in a newline
    with pytest.raises(DamagedFileError, match=r"attacks.jsonl, line 2: last line has no newline: the file was cut"):
        read_jsonl(path)
    assert read_jsonl(path, final_newline=False) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": "x\u2028y"}\n\n')
    assert read_jsonl(path) == [{"a": "x\u2028y"}]  # only "\n" ends a line; blank lines are skipped


def test_read_json_names_the_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"completed": [')
    with pytest.raises(DamagedFileError, match=r"state.json: not valid JSON \(Expecting value at column 16\)"):
        read_json(path)
    path.write_text("")
    with pytest.raises(DamagedFileError, match="state.json: empty"):
        read_json(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(DamagedFileError, match="not UTF-8"):
        read_json(path)
    with pytest.raises(FileNotFoundError, match="nothing.json: missing"):
        read_json(tmp_path / "nothing.json")


# ------------------------------------------------------------------------------ manifests

def test_each_phase_records_a_manifest_of_its_files(clean):
    run_dir, _ = clean
    state = json.loads((run_dir / "state.json").read_text())
    assert state["completed"] == PHASES and list(state["manifests"]) == PHASES
    assert state["config"] == CONFIG.to_dict()
    assert sorted(state["manifests"]["red_1"]) == [
        "iter_1/attack_embeddings.npy", "iter_1/attacks.jsonl", "iter_1/red_adapter/README.md",
        "iter_1/red_adapter/adapter_config.json", "iter_1/red_adapter/adapter_model.safetensors",
        "iter_1/red_log.json"]
    assert list(state["manifests"]["eval_2"]) == ["eval_2.json"]
    record = state["manifests"]["target_1"]["iter_1/selection.jsonl"]
    assert record == manifest.file_record(run_dir / "iter_1" / "selection.jsonl")
    assert main(["dart", "check", str(run_dir)]) == 0


def test_a_phase_that_skips_an_output_is_never_marked(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(FakeRun, "eval_phase", lambda self, t: FakeRun.calls.append("eval"))  # writes nothing
    with pytest.raises(RuntimeError, match="phase eval_0 finished without writing eval_0.json"):
        run_dart(CONFIG, tmp_path, progress=False)
    assert not (tmp_path / "state.json").exists()


def test_runs_made_before_manifests_still_load_and_resume(clean, capsys):
    run_dir, before = clean
    (run_dir / "state.json").write_text(json.dumps({"completed": PHASES[:4]}))  # the old format
    assert numbers(run_dir)["evaluations"] == {t: before["evaluations"][t] for t in (0, 1)}
    assert main(["dart", "check", str(run_dir)]) == 0
    assert "no manifest (a run made before manifests)" in capsys.readouterr().out
    result = run_dart(CONFIG, run_dir, progress=False)
    assert FakeRun.calls == PHASES[4:] and result.finished
    assert list(json.loads((run_dir / "state.json").read_text())["manifests"]) == PHASES[4:]
    assert numbers(run_dir) == before


def test_an_old_run_cut_on_a_line_boundary_is_caught_by_its_counts(clean):
    run_dir, _ = clean
    (run_dir / "state.json").write_text(json.dumps({"completed": PHASES}))  # no manifest to compare with
    attacks = run_dir / "iter_2" / "attacks.jsonl"
    attacks.write_text("".join(attacks.read_text().splitlines(keepends=True)[:3]))
    with pytest.raises(manifest.RunDamagedError, match=r"iter_2/attacks.jsonl \(written by phase red_2\): "
                                                      r"3 attacks, but red_log.json counted 4"):
        load_result(run_dir)


# ------------------------------------------------------------------------------ damage, file by file

def _torn(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _missing(path: Path) -> None:
    path.unlink()


def _changed(path: Path) -> None:  # same size, one byte different
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def _last_line_dropped(path: Path) -> None:  # a JSONL file cut on a line boundary: it still parses
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))


DAMAGE = [
    ("eval_0.json", "eval_0", _torn),
    ("eval_1.json", "eval_1", _missing),
    ("eval_2.json", "eval_2", _changed),
    ("iter_1/attacks.jsonl", "red_1", _torn),
    ("iter_1/attacks.jsonl", "red_1", _last_line_dropped),
    ("iter_2/attacks.jsonl", "red_2", _missing),
    ("iter_1/attack_embeddings.npy", "red_1", _torn),
    ("iter_2/attack_embeddings.npy", "red_2", _missing),
    ("iter_1/red_log.json", "red_1", _torn),
    ("iter_1/red_log.json", "red_1", _missing),
    ("iter_1/red_adapter/adapter_model.safetensors", "red_1", _changed),
    ("iter_1/red_adapter/adapter_model.safetensors", "red_1", _torn),
    ("iter_2/red_adapter/adapter_config.json", "red_2", _missing),
    ("iter_1/selection.jsonl", "target_1", _torn),
    ("iter_2/selection.jsonl", "target_2", _last_line_dropped),
    ("iter_1/target_log.json", "target_1", _missing),
    ("iter_2/target_log.json", "target_2", _torn),
    ("iter_1/target_adapter/adapter_model.safetensors", "target_1", _changed),
    ("iter_1/target_adapter/adapter_model.safetensors", "target_1", _missing),
    ("iter_2/target_adapter/adapter_config.json", "target_2", _torn),
]


@pytest.mark.parametrize("relpath, phase, damage", DAMAGE,
                         ids=[f"{d.__name__.strip('_')}-{p}" for p, _, d in DAMAGE])
def test_damage_is_named_and_resume_redoes_exactly_that_phase_and_after(clean, relpath, phase, damage, capsys):
    run_dir, before = clean
    damage(run_dir / relpath)

    # no numbers: load_result and report name the file, its phase and what to do
    with pytest.raises(manifest.RunDamagedError) as raised:
        load_result(run_dir)
    message = str(raised.value)
    assert f"{relpath} (written by phase {phase})" in message
    assert f"llmsafety dart run --config {run_dir / 'config.json'} --out {run_dir} --resume" in message
    assert main(["dart", "report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmsafety: error: ") and err.count("\n") == 1 and relpath in err
    assert not (run_dir / "report.md").exists()

    # check says so without writing anything
    written = files_and_times(run_dir)
    assert main(["dart", "check", str(run_dir)]) == 1
    out = capsys.readouterr().out
    redo = PHASES[PHASES.index(phase):]
    assert f"DAMAGED   {relpath}" in out and f"--resume would redo {', '.join(redo)}" in out
    assert files_and_times(run_dir) == written

    # resume: a warning naming file and phase, then exactly the damaged phase and those after it
    with pytest.warns(manifest.RunDamageWarning,
                      match=f"{relpath} \\(written by phase {phase}\\).*Redoing {', '.join(redo)} instead of using them"):
        result = run_dart(CONFIG, run_dir, progress=False)
    assert FakeRun.calls == redo and result.finished
    assert numbers(run_dir) == before
    assert main(["dart", "check", str(run_dir)]) == 0


def test_damage_of_an_earlier_phase_wins_and_check_lists_all(clean, capsys):
    run_dir, before = clean
    _missing(run_dir / "iter_2" / "selection.jsonl")
    _torn(run_dir / "eval_1.json")
    assert main(["dart", "check", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert "eval_1     DAMAGED" in out and "target_2   DAMAGED   iter_2/selection.jsonl: missing" in out
    assert "red_2      redo      (comes after a damaged phase)" in out
    with pytest.warns(manifest.RunDamageWarning):
        run_dart(CONFIG, run_dir, progress=False)
    assert FakeRun.calls == PHASES[3:] and numbers(run_dir) == before


def test_phases_out_of_order_in_state_json(clean, capsys):
    run_dir, before = clean
    state = json.loads((run_dir / "state.json").read_text())
    state["completed"] = ["eval_0", "target_1", "red_1"]
    (run_dir / "state.json").write_text(json.dumps(state))
    with pytest.raises(manifest.RunDamagedError, match="finished phase 2 is 'target_1' where 'red_1' belongs"):
        load_result(run_dir)
    assert main(["dart", "check", str(run_dir)]) == 1
    with pytest.warns(manifest.RunDamageWarning):
        run_dart(CONFIG, run_dir, progress=False)
    assert FakeRun.calls == PHASES[1:] and numbers(run_dir) == before


# ------------------------------------------------------------------------------ state.json and config.json

@pytest.mark.parametrize("content", ['{"completed": ["eval_0", ', "", '["eval_0"]', '{"completed": "eval_0"}'])
def test_a_torn_state_json_is_a_clear_error_everywhere(clean, content, capsys):
    run_dir, _ = clean
    (run_dir / "state.json").write_text(content)
    for call in (lambda: load_result(run_dir), lambda: run_dart(CONFIG, run_dir, progress=False)):
        with pytest.raises(DamagedFileError) as raised:
            call()
        message = str(raised.value)
        assert message.startswith(f"{run_dir / 'state.json'}: ")
        assert "delete it and run `llmsafety dart run" in message and "--resume` to redo every phase" in message
    assert FakeRun.calls == []  # nothing was redone on a guess
    assert main(["dart", "report", str(run_dir)]) == 2
    assert "state.json" in capsys.readouterr().err
    assert main(["dart", "check", str(run_dir)]) == 1
    assert "NOT SOUND" in capsys.readouterr().out


def test_a_missing_state_json_counts_nothing_and_resume_redoes_all(clean, capsys):
    run_dir, before = clean
    (run_dir / "state.json").unlink()
    assert load_result(run_dir).completed == [] and load_result(run_dir).evaluations == {}
    assert main(["dart", "check", str(run_dir)]) == 1
    assert "state.json is missing but files of eval_0, red_1" in capsys.readouterr().out
    run_dart(CONFIG, run_dir, progress=False)
    assert FakeRun.calls == PHASES and numbers(run_dir) == before


def test_config_edited_between_runs(clean, capsys):
    run_dir, _ = clean
    edited = DARTConfig.from_dict({**CONFIG.to_dict(), "seed": 1})
    edited.save(run_dir / "config.json")
    with pytest.raises(manifest.RunConfigChangedError, match="seed: the phases ran with 0, config.json now says 1"):
        load_result(run_dir)
    with pytest.raises(manifest.RunConfigChangedError, match="Put the old values back"):
        run_dart(edited, run_dir, progress=False)  # the edited config matches config.json, not the phases
    with pytest.raises(ValueError, match="seed: saved 1 != given 0"):
        run_dart(CONFIG, run_dir, progress=False)
    assert main(["dart", "check", str(run_dir)]) == 1
    assert "seed: the phases ran with 0" in capsys.readouterr().out
    assert FakeRun.calls == []
    CONFIG.save(run_dir / "config.json")  # put back: sound again
    assert main(["dart", "check", str(run_dir)]) == 0


def test_a_torn_config_json_is_named(clean, capsys):
    run_dir, _ = clean
    _torn(run_dir / "config.json")
    with pytest.raises(DamagedFileError, match=r"config.json: not valid JSON .*restore it"):
        load_result(run_dir)
    assert main(["dart", "check", str(run_dir)]) == 1
    assert main(["dart", "check", str(run_dir / "nope")]) == 2
    assert main(["dart", "check", str(run_dir / "iter_1")]) == 2  # a directory, but not a run


# ------------------------------------------------------------------------------ interruptions, disks

def test_interrupt_mid_phase_counts_nothing_of_it(fake, tmp_path):
    make_run(tmp_path / "straight")
    before = numbers(tmp_path / "straight")
    run_dir = tmp_path / "run"
    FakeRun.interrupt["red_1"] = KeyboardInterrupt()  # after the adapter and the .npy, before the JSONL
    with pytest.raises(KeyboardInterrupt):
        run_dart(CONFIG, run_dir, progress=False)
    assert read_json(run_dir / "state.json")["completed"] == ["eval_0"]
    assert (run_dir / "iter_1" / "attack_embeddings.npy").exists()  # half a phase on disk, not counted
    FakeRun.calls.clear()
    run_dart(CONFIG, run_dir, progress=False)
    assert FakeRun.calls == PHASES[1:] and numbers(run_dir) == before


def test_sigterm_mid_phase_raises_and_restores_the_handler(fake, tmp_path, monkeypatch):
    def terminated_midway(self, t):
        FakeRun.calls.append(f"red_{t}")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        raise AssertionError("SIGTERM did not stop the phase")

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(FakeRun, "red_phase", terminated_midway)
    with pytest.raises(loop.RunTerminated):
        run_dart(CONFIG, tmp_path, progress=False)
    assert read_json(tmp_path / "state.json")["completed"] == ["eval_0"]
    assert signal.getsignal(signal.SIGTERM) is previous


def _fsync_fails_for(monkeypatch, name: str) -> None:
    """A full disk: fsync of the temporary file of ``name`` fails with ENOSPC (writes are buffered,
    so that is where a full disk shows)."""
    real = os.fsync

    def fsync(fd):
        if f"/.{name}." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell files apart")
@pytest.mark.parametrize("name, marked", [("red_log.json", ["eval_0"]), ("state.json", ["eval_0"])])
def test_a_full_disk_leaves_no_half_file_counted(fake, tmp_path, monkeypatch, name, marked, capsys):
    make_run(tmp_path / "straight")
    before = numbers(tmp_path / "straight")
    run_dir = make_run(tmp_path / "run", max_phases=1)
    _fsync_fails_for(monkeypatch, name)
    with pytest.raises(OSError, match=f"No space left on device: '.*{name}'"):
        run_dart(CONFIG, run_dir, progress=False)
    assert read_json(run_dir / "state.json")["completed"] == marked
    assert not list(run_dir.rglob("*.tmp"))  # the temporary file went with the error
    # the CLI: one line naming the file
    CONFIG.save(tmp_path / "config.json")
    assert main(["dart", "run", "--config", str(tmp_path / "config.json"), "--out", str(run_dir), "--resume"]) == 2
    assert f"{name}'" in capsys.readouterr().err
    monkeypatch.undo()
    use_fake_run(monkeypatch)
    FakeRun.calls.clear()
    run_dart(CONFIG, run_dir, progress=False)
    assert FakeRun.calls == PHASES[1:] and numbers(run_dir) == before


def test_a_read_only_run_directory(clean, monkeypatch):
    run_dir, before = clean
    written = files_and_times(run_dir)
    for path in [run_dir, *run_dir.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        assert numbers(run_dir) == before                     # reading needs no write
        assert main(["dart", "check", str(run_dir)]) == 0
        assert run_dart(CONFIG, run_dir, progress=False).finished  # nothing to do: no write either
        assert files_and_times(run_dir) == written
    finally:
        for path in [run_dir, *run_dir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)

    # work to do in a directory that refuses writes (simulated: root writes through chmod):
    # refused before any phase runs, naming the directory
    _missing(run_dir / "eval_2.json")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(loop.tempfile, "mkstemp", refuse)
    with pytest.warns(manifest.RunDamageWarning), pytest.raises(PermissionError, match=f"{run_dir} cannot be written"):
        run_dart(CONFIG, run_dir, progress=False)
    assert FakeRun.calls == [] and read_json(run_dir / "state.json")["completed"] == PHASES


# ------------------------------------------------------------------------------ a real run (slow)

CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np

    real_save = np.save

    def save(path, array, *args, **kwargs):  # the .npy half written, then wait for SIGTERM mid-phase
        if str(path).endswith("attack_embeddings.npy"):
            real_save(path, array, *args, **kwargs)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
            open(sys.argv[3], "w").close()
            time.sleep(600)
        return real_save(path, array, *args, **kwargs)

    np.save = save
    from llmsafety.cli import main
    sys.exit(main(["dart", "run", "--config", sys.argv[1], "--out", sys.argv[2]]))
""")


@pytest.mark.slow
def test_sigterm_to_a_real_run_then_resume_then_damage(tmp_path, capsys):
    from test_dart import TINY

    config = DARTConfig(**{**TINY, "iterations": 1, "eval_hh_benign_prompts": 0})  # as small as a run gets
    config.save(tmp_path / "config.json")
    run_dir, ready = tmp_path / "run", tmp_path / "ready"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log = tmp_path / "child.log"  # a file, not a pipe: progress bars would fill a pipe and block the child
    with open(log, "w") as sink:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "config.json"), str(run_dir), str(ready)],
                                 env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 1500  # a hang guard: eval_0 and half of red_1 take a minute or two on an idle CPU
        while not ready.exists():
            assert child.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, "the child never reached the red phase's np.save"
            time.sleep(0.5)
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    finally:
        child.kill()
    err = log.read_text()
    assert child.returncode == 143, err[-3000:]
    assert "phase red_1 stopped (RunTerminated)" in err and "terminated (SIGTERM)" in err
    assert read_json(run_dir / "state.json")["completed"] == ["eval_0"]   # the half .npy is not counted

    result = run_dart(config, run_dir, progress=False)
    assert result.finished and len(result.iterations[1]["attacks"]) == 4
    assert np.load(run_dir / "iter_1" / "attack_embeddings.npy").shape[0] == 4
    assert main(["dart", "check", str(run_dir)]) == 0
    manifests = read_json(run_dir / "state.json")["manifests"]
    assert "iter_1/target_adapter/adapter_model.safetensors" in manifests["target_1"]
    assert any(p.startswith("iter_1/red_adapter/") for p in manifests["red_1"])
    capsys.readouterr()

    # damage to a real adapter and a real attacks.jsonl: named, with the phase, no numbers
    weights = run_dir / "iter_1" / "target_adapter" / "adapter_model.safetensors"
    original = weights.read_bytes()
    _changed(weights)
    assert main(["dart", "check", str(run_dir)]) == 1
    assert "target_1   DAMAGED   iter_1/target_adapter/adapter_model.safetensors: changed" in capsys.readouterr().out
    weights.write_bytes(original)
    _last_line_dropped(run_dir / "iter_1" / "attacks.jsonl")
    with pytest.raises(manifest.RunDamagedError, match=r"iter_1/attacks.jsonl \(written by phase red_1\)"):
        load_result(run_dir)


def test_a_compact_copy_loads_without_its_adapters_but_not_with_an_edited_file(tmp_path):
    """benchmarks/ commit runs without adapters, embeddings or trainer folders: load_result(compact=True)
    accepts exactly that absence and still checks every file the copy holds."""
    import shutil

    from llmsafety.dart import load_result
    from llmsafety.dart.manifest import RunDamagedError

    source = Path(__file__).parents[1] / "benchmarks" / "results" / "study" / "runs" / "dart_seed1"
    copy = tmp_path / "dart_seed1"
    shutil.copytree(source, copy)
    with pytest.raises(RunDamagedError, match="red_adapter"):
        load_result(copy)  # a full run must have its adapters
    result = load_result(copy, compact=True)
    assert result.finished and sorted(result.evaluations) == [0, 2]
    evaluation = copy / "eval_2.json"
    evaluation.write_text(evaluation.read_text().replace('"comply"', '"refuse"', 1))
    with pytest.raises(RunDamagedError, match="eval_2.json"):
        load_result(copy, compact=True)
