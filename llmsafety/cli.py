"""The ``llmsafety`` command line.

    llmsafety taxonomy [NODE_ID]            the survey taxonomy, or one node in detail
    llmsafety papers                        papers per top-level area
    llmsafety papers --search "red teaming" --category misuse --bibtex refs.bib
    llmsafety dart run --preset tiny --out runs/NAME [--resume] [--variant mart]
    llmsafety dart report runs/NAME         a table and PNG figures of a run
    llmsafety dart check runs/NAME          is every file of the run what its phase wrote?

Each subcommand lives in two functions: ``_add_<name>_parser(sub)`` declares its arguments and
sets ``func`` to ``_run_<name>(args) -> int``. To add a command (e.g. ``llmsafety dart``), write
that pair and call the ``_add_`` function in ``build_parser``; ``main`` needs no change.

Errors print one line to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path

PROG = "llmsafety"
# What a bad input raises anywhere in llmsafety; anything else is a bug and keeps its traceback.
_USER_ERRORS = (FileNotFoundError, ValueError, KeyError, ConnectionError, OSError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Learn and do LLM safety: the holistic survey (arXiv 2412.17686), its paper "
        "list, and DART automated red teaming.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_taxonomy_parser(sub)
    _add_papers_parser(sub)
    _add_dart_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed usage and the error (or --help)
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return args.func(args)
    except _USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)
        return 2


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------------------------
# llmsafety taxonomy [NODE_ID]
# --------------------------------------------------------------------------------------------


def _add_taxonomy_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "taxonomy",
        help="print the survey's taxonomy, or one node",
        description="Print the taxonomy tree of the survey, or one node with its description, "
        "key terms and children.",
    )
    parser.add_argument(
        "node_id", nargs="?", metavar="NODE_ID",
        help="a node id such as robustness-to-attack/red-teaming (default: the whole tree)",
    )
    parser.add_argument("--depth", type=int, default=None, help="levels to show below the top")
    parser.set_defaults(func=_run_taxonomy)


def _run_taxonomy(args: argparse.Namespace) -> int:
    from llmsafety.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    if args.node_id is None:
        print(taxonomy.render(max_depth=args.depth))
        return 0
    node = taxonomy[args.node_id.strip().strip("/")]
    print(node.name)
    print(f"id:        {node.id}")
    print(f"path:      {' > '.join(node.path)}")
    print(f"area:      {node.top.name} ({node.kind})")
    print()
    print(textwrap.fill(node.description, width=88))
    print()
    print(f"key terms: {', '.join(node.key_terms)}")
    if node.children:
        print("children:")
        for child in node.children:
            print(f"  {child.id}  ({child.name})")
    else:
        print("children:  none (a leaf)")
    return 0


# --------------------------------------------------------------------------------------------
# llmsafety papers
# --------------------------------------------------------------------------------------------


def _add_papers_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "papers",
        help="counts, search and BibTeX for the survey's paper list",
        description="Without options: unique papers per top-level area. With --search or "
        "--category: the matching papers. With --bibtex: write their BibTeX.",
    )
    parser.add_argument(
        "--source", metavar="PATH",
        help="the list's README.md (path or URL; default: $LLMSAFETY_PAPERS_SOURCE, else the "
        "pinned upstream README, downloaded once and cached)",
    )
    parser.add_argument("--search", metavar="Q", help="words to find in title/alias/authors/venue")
    parser.add_argument(
        "--category", metavar="C", help="a taxonomy id (prefix) or node name, e.g. misuse"
    )
    parser.add_argument("--year-from", type=int, metavar="YEAR", help="first year to keep")
    parser.add_argument("--year-to", type=int, metavar="YEAR", help="last year to keep")
    parser.add_argument(
        "--bibtex", metavar="FILE", help="write BibTeX of the selected papers ('-' for stdout)"
    )
    parser.add_argument("--refresh", action="store_true", help="download the list again")
    parser.add_argument(
        "--if-available", action="store_true",
        help="when the list can be neither downloaded nor found locally, say in one line how to "
        "get it and exit 0 (make demo uses this so it goes on offline)",
    )
    parser.add_argument(
        "--show-problems", action="store_true",
        help="list the entries of the list that could not be fully read",
    )
    parser.set_defaults(func=_run_papers)


def _run_papers(args: argparse.Namespace) -> int:
    from llmsafety.papers import (
        PaperListUnavailableError,
        PaperListWarning,
        counts_by_category,
        filter_papers,
        load_papers,
        search,
        to_bibtex,
    )

    with warnings.catch_warnings():
        # The parser's one warning lists every problem; here a count (or --show-problems) is enough.
        warnings.simplefilter("ignore", PaperListWarning)
        try:
            papers = load_papers(args.source, refresh=args.refresh)
        except PaperListUnavailableError:
            if not args.if_available:
                raise
            print("paper list skipped: it has no licence, so it is not shipped and could not be downloaded; "
                  "save README.md of https://github.com/tjunlp-lab/Awesome-LLM-Safety-Papers and set "
                  "LLMSAFETY_PAPERS_SOURCE=path/to/README.md (or pass --source)")
            return 0
    problems = papers.attrs.get("parse_problems", [])

    selected = papers
    if args.category is not None or args.year_from is not None or args.year_to is not None:
        selected = filter_papers(selected, args.category, args.year_from, args.year_to)
    if args.search is not None:
        selected = search(selected, args.search)
    filtered = selected is not papers

    if args.bibtex is not None:
        text = to_bibtex(selected)
        n = selected["paper_id"].nunique()
        if args.bibtex == "-":
            sys.stdout.write(text)
        else:
            Path(args.bibtex).write_text(text, encoding="utf-8")
            print(f"wrote {n} BibTeX entries to {args.bibtex}")
    elif filtered:
        _print_papers(selected)
    else:
        _print_counts(papers, counts_by_category(papers), counts_by_category(papers, unique=False))

    if args.show_problems:
        for p in problems:
            print(f"line {p['line']}: {p['title']}: {p['problem']}")
    elif problems:
        print(
            f"note: {len(problems)} entries of the list could not be fully read "
            "(--show-problems lists them)",
            file=sys.stderr,
        )
    return 0


def _print_counts(papers, unique, entries) -> None:
    width = max(len(name) for name in unique.index)
    print(f"{'top-level area':<{width}}  papers  entries")
    for name in unique.index:
        print(f"{name:<{width}}  {unique[name]:>6}  {entries[name]:>7}")
    print(f"{'all (a paper may sit in two areas)':<{width}}  "
          f"{papers['paper_id'].nunique():>6}  {len(papers):>7}")
    print(f"source: {papers.attrs.get('source', '?')}")


def _print_papers(selected) -> None:
    shown = selected.drop_duplicates("paper_id")
    for row in shown.itertuples():
        year = "    " if row.year is None or str(row.year) == "<NA>" else str(row.year)
        alias = f" ({row.alias})" if isinstance(row.alias, str) else ""
        venue = row.venue if isinstance(row.venue, str) else "?"
        authors = row.authors if isinstance(row.authors, str) else "?"
        print(f"{year}  {row.title}{alias}")
        print(f"      {authors}. {venue}. [{row.taxonomy_id}]")
    print(f"{len(shown)} papers ({len(selected)} entries)")


# --------------------------------------------------------------------------------------------
# llmsafety dart run | report | check


def _add_dart_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dart", help="DART automated red teaming (arXiv 2407.03876v1)")
    dart_sub = parser.add_subparsers(dest="dart_command", metavar="ACTION", required=True)
    run = dart_sub.add_parser("run", help="run or resume a DART run")
    run.add_argument("--preset", default="tiny", help="tiny (CPU, about 20 min on 2 cores), cpu_study (CPU, more Red steps, the Red-side options) "
                     "or small (one GPU)")
    run.add_argument("--config", type=Path, help="a DARTConfig as YAML or JSON (overrides --preset)")
    run.add_argument("--out", type=Path, required=True, help="run directory, e.g. runs/NAME")
    run.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    run.add_argument("--stop-after", metavar="PHASE", help="stop once PHASE (e.g. eval_0, red_1) is finished: with "
                     "`llmsafety dart phases`, one launched process per phase (see README, DART at scale)")
    from llmsafety.dart.config import add_config_arguments

    add_config_arguments(run)
    run.set_defaults(func=_run_dart_run)
    phases = dart_sub.add_parser("phases", help="print the phases of a run's config, one per line, in order")
    phases.add_argument("--preset", default="tiny")
    phases.add_argument("--config", type=Path, help="a DARTConfig as YAML or JSON (overrides --preset)")
    phases.set_defaults(func=_run_dart_phases)
    report = dart_sub.add_parser("report", help="print a run's metrics and write PNG figures into it")
    report.add_argument("run_dir", type=Path)
    report.set_defaults(func=_run_dart_report)
    check = dart_sub.add_parser(
        "check", help="verify a run's files against its manifests; say which phases --resume would redo",
        description="Checks config.json, the order of the finished phases, every file against the size "
        "and sha256 its phase recorded, that every JSON/JSONL file parses and every adapter is whole "
        "(no model is loaded). Writes nothing. Exit status: 0 sound, 1 something would be redone or "
        "needs a fix, 2 not a run directory.")
    check.add_argument("run_dir", type=Path)
    check.set_defaults(func=_run_dart_check)
    label = dart_sub.add_parser(
        "human-eval", help="blind human evaluation: export replies to label, then summarise the labels",
        description="export: write a shuffled, blind items.jsonl (and key.jsonl for the analysis) from the "
        "final evaluations of NAME=RUN_DIR pairs (NAME = variant/seed, e.g. dart/0). Label items.jsonl "
        "(comply / refuse / other, see llmsafety/resources/labelling_protocol.md) into DIR/labels.jsonl, "
        "in Jupyter with llmsafety.dart.human_eval.labelling_widget or by hand. summary: human violation "
        "rates with CIs, risk removed, judge and annotator agreement; writes each run's human_labels.jsonl.")
    label.add_argument("action", choices=["export", "summary"])
    label.add_argument("dir", type=Path, help="the labelling directory")
    label.add_argument("runs", nargs="*", metavar="NAME=RUN_DIR", help="with export: the runs to label")
    label.add_argument("--sources", default="hh", help="evaluation sources to export, comma-separated (hh,seed_eval,benign,hh_benign)")
    label.set_defaults(func=_run_dart_human_eval)


def _run_dart_human_eval(args: argparse.Namespace) -> int:
    from llmsafety.dart import human_eval

    if args.action == "export":
        pairs = [r.partition("=") for r in args.runs]
        bad = [r for r, (name, eq, path) in zip(args.runs, pairs) if not (eq and name and path)]
        if not args.runs or bad:
            raise ValueError(f"export needs NAME=RUN_DIR pairs (e.g. dart/0=runs/dart0); got {bad or 'none'}")
        counts = human_eval.export_for_labelling({name: Path(path) for name, _, path in pairs}, args.dir,
                                                 sources=tuple(args.sources.split(",")))
        print(f"wrote {counts['items']} items to label ({counts['rows']} run x prompt cells) to {args.dir / 'items.jsonl'}")
        return 0
    tables = human_eval.human_eval_tables(args.dir)
    print(f"{tables['n_items_labelled']} items labelled; annotators: {tables['annotators']}")
    print(tables["table"].round(3).to_string(index=False))
    for name, (est, lo, hi) in tables.get("risk_removed", {}).items():
        print(f"risk removed, {name}: {est:.1%} [{lo:.1%}, {hi:.1%}]")
    for name, (est, lo, hi) in tables["differences"].items():
        print(f"violation difference, {name}: {est:+.1%} [{lo:+.1%}, {hi:+.1%}]")
    if "judge_agreement" in tables:
        j = tables["judge_agreement"]
        print(f"judge vs humans: accuracy {j['accuracy']:.3f}, kappa {j['kappa']:.3f} (n={j['n']})")
        print(j["confusion"].to_string())
    attached = human_eval.attach_labels(args.dir)
    print(f"wrote human_labels.jsonl into {len(attached)} run(s)")
    return 0


def _run_dart_run(args: argparse.Namespace) -> int:
    from llmsafety.dart import DARTConfig, run_dart
    from llmsafety.dart.config import config_overrides

    overrides = config_overrides(args)
    if args.config is not None:
        config = _load_config_file(args.config)
        config = DARTConfig.from_dict({**config.to_dict(), **overrides})
    else:
        config = DARTConfig.preset(args.preset, **overrides)
    try:
        result = run_dart(config, args.out, resume=args.resume, stop_after=args.stop_after)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (RunTerminated): the phase under way is not kept
        from llmsafety.dart.loop import RunTerminated

        terminated = isinstance(stop, RunTerminated)
        print(f"{PROG}: {'terminated (SIGTERM)' if terminated else 'interrupted'}: the finished phases are kept; "
              "run the same command with --resume to go on", file=sys.stderr)
        return 143 if terminated else 130  # 128 + the signal's number, as a shell reports it
    from llmsafety.dart import distributed

    if distributed.is_main_process():  # launched on N processes: one summary, not N
        print(result.summary())
    distributed.finish()
    return 0


def _run_dart_phases(args: argparse.Namespace) -> int:
    from llmsafety.dart import DARTConfig
    from llmsafety.dart.loop import phase_names

    config = _load_config_file(args.config) if args.config is not None else DARTConfig.preset(args.preset)
    print("\n".join(phase_names(config)))
    return 0


def _load_config_file(path: Path):
    import yaml

    from llmsafety.dart import DARTConfig

    try:
        return DARTConfig.load(path)
    except (ValueError, TypeError, yaml.YAMLError) as err:  # the parser's message does not name the file
        raise ValueError(f"{path}: {err}") from None


def _run_dart_report(args: argparse.Namespace) -> int:
    from llmsafety.dart.loop import load_result
    from llmsafety.dart.report import category_table, human_table, metrics_table, write_report

    result = load_result(args.run_dir)
    print(result.summary())
    print()
    print(metrics_table(result).to_string(index=False))
    human = human_table(result)
    if human is not None:
        print("\nhuman labels (human_labels.jsonl):")
        print(human.to_string(index=False))
    if result.evaluations:
        print()
        print(category_table(result).to_string())
        paths = write_report(args.run_dir)
        print()
        for path in paths.values():
            print(f"wrote {path}")
    return 0


def _run_dart_check(args: argparse.Namespace) -> int:
    from llmsafety._io import DamagedFileError
    from llmsafety.dart import manifest
    from llmsafety.dart.loop import load_run_config, phase_names

    out = args.run_dir
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such run directory")
    redo_hint = f"`{manifest.resume_command(out)}`"
    try:
        config = load_run_config(out)  # no config.json at all: not a run directory, exit 2
    except ValueError as err:
        print(f"{out}: NOT SOUND: {_one_line(err)}")
        return 1
    phases = phase_names(config)
    print(f"{out}: config.json valid (variant {config.variant}, seed {config.seed}, {len(phases)} phases)")
    try:
        state = manifest.read_state(out)
    except DamagedFileError as err:
        print(f"NOT SOUND: {_one_line(err)}")
        return 1
    changes = manifest.config_changes(state, config.to_dict(), type(config)().to_dict())
    if changes:
        print(f"NOT SOUND: {_one_line(manifest.RunConfigChangedError(out, changes))}")
        return 1
    check = manifest.check_run(out, state, phases, deep=True, every_phase=True)
    print(f"state.json: {len(state.completed)} of {len(phases)} phases finished")
    if not (out / manifest.STATE_FILE).exists():
        # outputs without state.json: none of them counts, --resume redoes them all
        orphans = [ph for ph in phases if any((out / rel.rstrip("/")).exists() for rel in manifest.phase_outputs(ph))]
        if orphans:
            print(f"NOT SOUND: state.json is missing but files of {', '.join(orphans)} exist: none of them "
                  f"counts, --resume would redo every phase: {redo_hint}")
            return 1
    for phase in check.sound:
        files = len(state.manifests.get(phase, {}))
        how = (f"{files} file(s) match their manifest and parse" if phase not in check.unverified else
               "no manifest (a run made before manifests): files parse and agree, not hashed")
        print(f"  {phase:<10} sound     {how}")
    for phase in check.redo:
        damage = [d for d in check.damage if d.phase == phase]
        print(f"  {phase:<10} {'DAMAGED' if damage else 'redo':<9} "
              f"{'; '.join(f'{d.path}: {d.problem}' for d in damage) or '(comes after a damaged phase)'}")
    for phase in phases:
        if phase not in state.completed:
            print(f"  {phase:<10} to do")
    leftovers = sorted(p.relative_to(out).as_posix() for p in out.rglob(".*.tmp"))
    if leftovers:
        print(f"note: {len(leftovers)} temporary file(s) of interrupted writes, never counted and safe to "
              f"delete: {', '.join(leftovers)}")
    if check.ok:
        print(f"sound: {len(check.sound)} finished phase(s) can be used" +
              (f"; --resume goes on with {phases[len(check.sound)]}" if len(check.sound) < len(phases) else ""))
        return 0
    print(f"NOT SOUND: --resume would redo {', '.join(check.redo)}: {redo_hint}")
    return 1


if __name__ == "__main__":  # python -m llmsafety.cli; last, so that every command above is defined
    sys.exit(main())
