"""Tests of the ``llmsafety`` command line, through ``main([...])``."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsafety.cli import build_parser, main
from llmsafety.taxonomy import TOP_LEVEL_NAMES, load_taxonomy

FIXTURES = Path(__file__).parent / "fixtures"
IRREGULAR = str(FIXTURES / "papers_irregular.md")
CLEAN = str(FIXTURES / "papers_clean.md")


def _assert_one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("llmsafety: error: ")
    assert err.count("\n") == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def test_taxonomy_prints_the_tree(capsys):
    assert main(["taxonomy"]) == 0
    out = capsys.readouterr().out
    for name in TOP_LEVEL_NAMES:
        assert name in out
    assert "Automated Red Teaming" in out


def test_taxonomy_prints_one_node(capsys):
    node = load_taxonomy()["robustness-to-attack/red-teaming"]
    assert main(["taxonomy", node.id]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Red Teaming\n")
    assert node.description.split()[0] in out and node.key_terms[0] in out
    for child in node.children:
        assert child.id in out


def test_taxonomy_unknown_node_is_a_one_line_error(capsys):
    assert main(["taxonomy", "robustness-to-attack/red-team"]) == 2
    _assert_one_line_error(capsys, "robustness-to-attack/red-team")


def test_papers_prints_counts_per_area(capsys):
    assert main(["papers", "--source", IRREGULAR]) == 0
    captured = capsys.readouterr()
    rows = {}
    for line in captured.out.splitlines()[1:-1]:
        name, papers, entries = line.rsplit(None, 2)
        rows[name] = [papers, entries]
    assert rows["Robustness to Attack"] == ["8", "9"]  # unique papers, entries
    assert rows["Value Misalignment"] == ["0", "0"]
    assert "4 entries of the list could not be fully read" in captured.err


def test_papers_reads_the_env_var(monkeypatch, capsys):
    monkeypatch.setenv("LLMSAFETY_PAPERS_SOURCE", CLEAN)
    assert main(["papers"]) == 0
    captured = capsys.readouterr()
    assert f"source: {CLEAN}" in captured.out and captured.err == ""


def test_papers_search_and_category(capsys):
    assert main(["papers", "--source", IRREGULAR, "--search", "red teaming"]) == 0
    out = capsys.readouterr().out
    assert "Red Teaming Language Models with Language Models, Again" in out
    assert "ToyBench: Red Teaming Evaluation in Miniature (ToyBench)" in out
    assert out.rstrip().endswith("2 papers (2 entries)")

    assert main(["papers", "--source", IRREGULAR, "--category", "Cyber Attacks",
                 "--year-from", "2023"]) == 0
    out = capsys.readouterr().out
    assert "Towards Safer Shells" in out and "Phishing" not in out  # no year: filtered out


def test_papers_bibtex_to_file_and_stdout(tmp_path, capsys):
    target = tmp_path / "refs.bib"
    assert main(["papers", "--source", IRREGULAR, "--category", "misuse",
                 "--bibtex", str(target)]) == 0
    assert f"wrote 3 BibTeX entries to {target}" in capsys.readouterr().out
    text = target.read_text(encoding="utf-8")
    assert text.count("\n@") + text.startswith("@") == 3

    assert main(["papers", "--source", CLEAN, "--bibtex", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("@inproceedings{example2022private,")


def test_papers_show_problems(capsys):
    assert main(["papers", "--source", IRREGULAR, "--show-problems"]) == 0
    out = capsys.readouterr().out
    assert "line 79: Adversarial Tuning Without a Link: link [Paper] has no URL" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["papers", "--source", "/no/such/README.md"], "/no/such/README.md"),
        (["papers", "--source", IRREGULAR, "--category", "nonsense"], "unknown category"),
        (["papers", "--source", str(FIXTURES / "papers_not_a_list.md")], "Table of Contents"),
        (["papers", "--source", IRREGULAR, "--year-from", "2024", "--year-to", "2020"], "after"),
    ],
)
def test_papers_bad_input_is_a_one_line_error(argv, fragment, capsys):
    assert main(argv) == 2
    _assert_one_line_error(capsys, fragment)


def test_usage_errors_exit_2_and_help_exits_0(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
    assert main(["papers", "--year-from", "soon"]) == 2
    assert main(["--help"]) == 0
    assert "taxonomy" in capsys.readouterr().out


def test_each_command_is_registered_by_its_own_function():
    # The extension point: `dart` will be added the same way.
    from llmsafety import cli

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"taxonomy", "papers"} <= set(commands)
    assert callable(cli._add_taxonomy_parser) and callable(cli._add_papers_parser)
    assert commands["papers"].get_default("func") is cli._run_papers


def test_dart_run_help_lists_every_config_field(capsys):
    import dataclasses

    from llmsafety.dart import DARTConfig

    assert main(["dart", "run", "--help"]) == 0
    out = capsys.readouterr().out
    missing = [f.name for f in dataclasses.fields(DARTConfig) if f"--{f.name.replace('_', '-')}" not in out]
    assert not missing


def test_config_options_parse_by_field_type_and_only_given_ones_override():
    import argparse

    from llmsafety.dart.config import add_config_arguments, config_overrides

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, exclude=("seed",))
    args = parser.parse_args(["--red-steps", "3", "--eval-each-iteration", "false", "--red_top_p", "0.9",
                              "--hh-source", "hub"])
    assert config_overrides(args, exclude=("seed",)) == {"red_steps": 3, "eval_each_iteration": False,
                                                          "red_top_p": 0.9, "hh_source": "hub"}
    for bad in (["--variant", "nope"], ["--red-steps", "two"], ["--eval-each-iteration", "maybe"], ["--seed", "1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_dart_phases_lists_a_config_s_phases_in_order(tmp_path, capsys):
    from llmsafety.dart import DARTConfig

    config = DARTConfig.preset("tiny", iterations=1, eval_each_iteration=False).save(tmp_path / "c.yaml")
    assert main(["dart", "phases", "--config", str(config)]) == 0
    assert capsys.readouterr().out.split() == ["eval_0", "red_1", "target_1", "eval_1"]


def test_dart_run_stop_after_an_unknown_phase_fails_before_writing(tmp_path, capsys):
    assert main(["dart", "run", "--out", str(tmp_path / "run"), "--stop-after", "red_9"]) == 2
    assert "stop_after='red_9' is not a phase of this run; its phases: eval_0, red_1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
