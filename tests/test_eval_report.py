"""The evaluation report (lesson 13): intervals, findings, the card, evidence checks, the builders
that read the committed results, paper-list trends, and the lesson's exercises.

Everything but the last two tests reads small fixed inputs or the committed files under
``benchmarks/results`` (no model). The slow ones load the embedded SmolLM2-135M-Instruct or the
MiniLM embedder to re-run a sample of the committed evidence.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from exercise_checks import fails as _fails

from llmsafety import eval_report as er  # noqa: E402
from llmsafety.exercises import check, default_compare, lesson13  # noqa: E402
from llmsafety.exercises.lesson02 import make_papers  # noqa: E402
from llmsafety.papers import trends  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
ROADMAP = er.ROADMAP_ROOT
NAN = float("nan")


def _finding(**overrides) -> er.Finding:
    fields = dict(claim="x minus y", model="m", method="Some prompts.", judge="people", estimate=0.2, low=0.1,
                  high=0.3, n=40, kind="difference", null=0.0, human_checked=True, limits=("Small.",),
                  evidence=(("a.json", "ab" * 32),), lesson=13)
    fields.update(overrides)
    return er.Finding(**fields)


def _report(findings, **overrides) -> er.EvaluationReport:
    fields = dict(title="T", model_details={"base model": "tiny"}, intended_use=["teaching"],
                  out_of_scope=["deployment"], evaluation_data=["40 prompts"], findings=list(findings),
                  not_tested=["privacy"])
    fields.update(overrides)
    return er.EvaluationReport(**fields)


# --------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------


def test_wilson_interval_known_values_and_edges():
    z = 1.959963984540054
    rate, low, high = er.wilson_interval(0, 10)
    assert (rate, low) == (0.0, 0.0) and high == pytest.approx(z * z / (10 + z * z))  # the closed form at 0
    rate, low, high = er.wilson_interval(4, 4)
    assert rate == 1.0 and high == 1.0 and low == pytest.approx(4 / (4 + z * z))  # not [1, 1]
    _, low, high = er.wilson_interval(21, 48)
    assert (low, high) == pytest.approx((0.3070, 0.5772), abs=1e-4)
    narrow, wide = er.wilson_interval(5, 20, 0.9), er.wilson_interval(5, 20, 0.99)
    assert wide[1] < narrow[1] < 0.25 < narrow[2] < wide[2]
    assert all(math.isnan(v) for v in er.wilson_interval(0, 0))


def test_unpaired_difference_resamples_each_side_and_drops_nan():
    est, low, high = er.unpaired_difference([1, 1, 0, 0], [0, 0, 0, 1], n_boot=500, seed=0)
    assert est == pytest.approx(0.25) and low < est < high
    assert er.unpaired_difference([1.0, 1.0, np.nan], [0.0, 0.0], n_boot=50) == (1.0, 1.0, 1.0)  # no spread
    assert er.unpaired_difference([1, 0], [0, 1], n_boot=200, seed=3) == er.unpaired_difference(
        [1, 0], [0, 1], n_boot=200, seed=3)
    assert all(math.isnan(v) for v in er.unpaired_difference([np.nan], [1.0]))


def test_kappa_interval_agrees_with_cohen_kappa():
    from llmsafety.dart.stats import cohen_kappa

    a = ["c", "r", "r", "o", "c", "r", "o", "r", "c", "r"]
    b = ["c", "r", "o", "o", "c", "r", "r", "r", "r", "r"]
    est, low, high = er.kappa_interval(a, b, n_boot=1000, seed=0)
    assert est == pytest.approx(cohen_kappa(a, b)) and -1 <= low < est < high <= 1
    assert er.kappa_interval(["x", "y"] * 5, ["x", "y"] * 5, n_boot=100) == (1.0, 1.0, 1.0)
    # One bootstrap replicate by hand: the vectorised kappa equals cohen_kappa of the drawn items.
    rng = np.random.default_rng(7)
    idx = rng.integers(0, len(a), size=(1, len(a)))[0]
    by_hand = cohen_kappa([a[i] for i in idx], [b[i] for i in idx])
    assert er.kappa_interval(a, b, n_boot=1, seed=7, level=0.0)[1] == pytest.approx(by_hand)


# --------------------------------------------------------------------------------------------
# Findings: status, text, validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, status", [
    ((0.06, -0.06, 0.2, 0.0, True), "not shown"),
    ((0.03, 0.0, 0.06, 0.0, True), "not shown"),  # the end at 0 counts
    ((0.48, 0.21, 0.70, 0.0, True), "supported"),
    ((0.45, 0.25, 0.66, 0.0, False), "judge only"),
    ((-0.2, -0.3, -0.1, 0.0, False), "judge only"),
    ((0.44, 0.29, 0.58, None, False), "descriptive"),
    ((NAN, NAN, NAN, 0.0, True), "no data"),
])
def test_claim_status(args, status):
    assert er.claim_status(*args) == status
    assert status in er.STATUSES


def test_format_result_per_kind():
    assert er.format_result(0.4375, 0.2916667, 0.5833333, 48) == "43.8% [29.2, 58.3] (n=48)"
    assert er.format_result(0.0625, -0.0625, 0.1979, 48, "difference") == "+6.2 pts [-6.2, +19.8] (n=48)"
    assert er.format_result(0.617, 0.531, 0.707, 333, "agreement") == "0.617 [0.531, 0.707] (n=333)"
    assert er.format_result(0.4375, 0.2916667, 0.5833333, 48, digits=0) == "44% [29, 58] (n=48)"
    assert er.format_result(0.5, NAN, NAN, 2) == "50.0% [no CI] (n=2)"
    assert er.format_result(NAN, NAN, NAN, 0, "difference") == "n/a (n=0)"
    with pytest.raises(ValueError, match="kind must be one of"):
        er.format_result(0.1, 0.0, 0.2, 5, "ratio")


def test_finding_validates_and_serialises():
    f = _finding()
    assert f.status == "supported" and f.result() == "+20.0 pts [+10.0, +30.0] (n=40)"
    record = json.loads(json.dumps(f.to_dict()))
    assert record["status"] == "supported" and record["evidence"] == [["a.json", "ab" * 32]]
    with pytest.raises(ValueError, match="kind must be one of"):
        _finding(kind="odds")
    with pytest.raises(ValueError, match="strategy must be a roadmap leaf"):
        _finding(strategy="governance/proposals")
    with pytest.raises(ValueError, match="upside down"):
        _finding(low=0.3, high=0.1)
    assert _finding(estimate=NAN, low=NAN, high=NAN).status == "no data"  # NaN bounds are allowed


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def test_report_frame_markdown_and_strategy_table(tmp_path):
    findings = [_finding(claim="a | b changed"),
                _finding(claim="rate", kind="rate", null=None, estimate=0.4, low=0.3, high=0.5,
                         strategy=f"{ROADMAP}/deployment", human_checked=False),
                _finding(claim="no effect", low=-0.1, human_checked=False)]
    report = _report(findings)
    frame = report.to_frame()
    assert list(frame["status"]) == ["supported", "descriptive", "not shown"]
    assert list(frame["strategy"]) == ["evaluation", "deployment", "evaluation"]
    table = report.by_strategy()
    assert list(table.index) == ["training", "evaluation", "deployment", "safety-guidance-strategy"]
    assert list(table.columns) == [*er.STATUSES, "total"]
    assert table.loc["evaluation", "total"] == 2 and table.loc["safety-guidance-strategy"].sum() == 0
    text = report.to_markdown()
    for heading in ("## Model details", "## Intended use", "## Results", "## Not tested", "## Evidence",
                    "## Release criteria declared before measuring"):
        assert heading in text
    assert "| 1 | a \\| b changed | m | +20.0 pts [+10.0, +30.0] (n=40) | people | supported | evaluation |" in text
    assert "- none: these findings describe" in text and "Evaluated by the developer: yes." in text
    assert f"`a.json` {'ab' * 6}" in text
    path = report.write(tmp_path / "out" / "report.md")
    assert path.read_text() == text
    assert _report([]).by_strategy()["total"].sum() == 0


def test_verify_evidence_and_manifest(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "b.json").write_text("[]")
    good = er._evidence(tmp_path, tmp_path / "a.json", tmp_path / "b.json")
    report = _report([_finding(evidence=good)])
    assert er.verify_evidence(report, tmp_path)["ok"].tolist() == [True, True]
    (tmp_path / "b.json").write_text("[1]")
    (tmp_path / "a.json").unlink()
    check_ = er.verify_evidence(report, tmp_path)
    assert check_["ok"].tolist() == [False, False] and check_["now"].iloc[0] == "missing"

    run = tmp_path / "run"
    run.mkdir()
    (run / "eval_0.json").write_text('{"x": 1}')
    (run / "eval_2.json").write_text('{"x": 2}')
    state = {"manifests": {
        "eval_0": {"eval_0.json": {"size": 8, "sha256": er.sha256_file(run / "eval_0.json")}},
        "eval_2": {"eval_2.json": {"size": 8, "sha256": "0" * 64}, "adapter.safetensors": {"size": 9, "sha256": "1"}},
    }}
    (run / "state.json").write_text(json.dumps(state))
    assert er.verify_manifest(run)["status"].tolist() == ["match", "changed", "absent"]


def test_oversight_checklist_is_computed_from_the_report(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    evidence = er._evidence(tmp_path, tmp_path / "a.json")
    judged = _finding(human_checked=False, evidence=evidence, limits=())
    redone = er.reproduction_finding([True, True, True], results_dir=tmp_path, evidence=["a.json"], what="x")
    report = _report([judged, redone])
    table = report_check = er.oversight_checklist(report, er.verify_evidence(report, tmp_path)).set_index("ask")
    met = table["met"].to_dict()
    assert met["every number comes with its interval and its sample size"] == "yes"
    assert met["outcomes decided by automated judges are validated against people"] == "partly"
    assert met["each finding states its limits, and the report what was not tested"] == "partly"
    assert met["the evidence is named and hashed, and still matches"] == "yes"
    assert met["part of the evidence was reproduced from scratch"] == "yes"
    assert met["release criteria were declared before measuring"] == "no"
    assert met["someone other than the developer ran the evaluation"] == "no"
    assert set(report_check["node"]) <= set(_taxonomy_ids())
    unverified = er.oversight_checklist(_report([judged], independent=True, release_criteria=["stop above 10%"]))
    met = unverified.set_index("ask")["met"].to_dict()
    assert met["the evidence is named and hashed, and still matches"] == "no"  # no check, no claim
    assert met["part of the evidence was reproduced from scratch"] == "no"
    assert met["someone other than the developer ran the evaluation"] == "yes"
    assert met["release criteria were declared before measuring"] == "yes"


def _taxonomy_ids() -> tuple[str, ...]:
    from llmsafety.taxonomy import load_taxonomy

    return load_taxonomy().ids


def test_strategies_are_the_roadmap_leaves_of_the_taxonomy():
    from llmsafety.taxonomy import load_taxonomy

    assert list(er.STRATEGIES) == [n.id for n in load_taxonomy().leaves(ROADMAP)]


def test_plot_findings_leaves_out_agreement_and_marks_each_finding():
    findings = [_finding(), _finding(kind="agreement", null=None, estimate=0.6, low=0.5, high=0.7),
                _finding(claim="a long claim " * 10, human_checked=False)]
    ax = er.plot_findings(findings)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 2 and labels[0] == "x minus y"  # top to bottom in the order given
    assert labels[1].endswith("…") and len(labels[1]) == 70
    with pytest.raises(ValueError, match="no rate or difference"):
        er.plot_findings(findings[1:2])


# --------------------------------------------------------------------------------------------
# Builders on the committed results (no model)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def findings() -> list[er.Finding]:
    return er.course_findings(RESULTS, er.ReportConfig(n_boot=2000, seed=0))


def _by_claim(findings, start: str) -> er.Finding:
    found = [f for f in findings if f.claim.startswith(start)]
    assert len(found) == 1, [f.claim for f in findings]
    return found[0]


def _human_eval_md() -> dict:
    """The numbers of the committed ``study/human_eval.md``, as its text shows them (percent, 1 decimal)."""
    text = (RESULTS / "study" / "human_eval.md").read_text(encoding="utf-8")
    ci = r"(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]"
    rows = {m[0]: dict(seeds=int(m[1]), violation=tuple(map(float, m[2:5])), judge=float(m[5]))
            for m in re.findall(rf"^\| (\w+) \| (\d+) \| \d+ \| {ci} \|.*\| (-?[\d.]+) \[[^]]*\] \|$", text, re.M)}
    bullets = {m[0]: tuple(map(float, m[1:4])) for m in re.findall(rf"^- ([\w -]+?): {ci}$", text, re.M)}
    judge = re.search(r"evaluation judge.*?Cohen's kappa ([\d.]+) \(n=(\d+) distinct", text)
    annotators = re.search(r"(\d+) replies labelled by two annotators: agreement [\d.]+, Cohen's kappa (\d\.\d+)", text)
    return dict(rows=rows, bullets=bullets, judge=(float(judge[1]), int(judge[2])),
                annotators=(int(annotators[1]), float(annotators[2])))


def _percent(finding) -> tuple[float, float, float]:
    return tuple(round(100 * v, 1) for v in (finding.estimate, finding.low, finding.high))


def test_study_findings_are_the_committed_human_eval_numbers(findings):
    # The report's findings are recomputed from the labels; the committed human_eval.md was written from
    # the same labels by benchmarks/human_eval_report.py at the same n_boot and seed: they must agree.
    md = _human_eval_md()
    assert {"untuned", "dart", "mart"} <= set(md["rows"]) and len(md["bullets"]) >= 4
    untuned = _by_claim(findings, "untuned Target: human-labelled")
    assert _percent(untuned) == pytest.approx(md["rows"]["untuned"]["violation"], abs=0.051)
    assert untuned.n == 48 and untuned.status == "descriptive" and untuned.human_checked
    for variant in ("dart", "mart", "refusal_sft", "system_prompt"):
        found = _by_claim(findings, f"{variant}: risk removed")
        assert _percent(found) == pytest.approx(md["bullets"][variant], abs=0.051), variant
        assert f"{md['rows'][variant]['seeds']} seed" in found.model, (variant, found.model)
        assert found.status == ("supported" if found.low > 0 else "not shown")
    assert _by_claim(findings, "dart: risk removed").strategy == f"{ROADMAP}/training"
    assert _by_claim(findings, "system_prompt: risk removed").strategy == f"{ROADMAP}/deployment"
    for pair in ("dart - mart", "dart - refusal_sft", "dart - system_prompt"):
        assert _percent(_by_claim(findings, pair)) == pytest.approx(md["bullets"][pair], abs=0.051), pair
    judge = _by_claim(findings, "evaluation judge vs people")
    assert (round(judge.estimate, 3), judge.n) == md["judge"] and judge.low < judge.estimate
    annotators = _by_claim(findings, "annotators vs each other")
    assert (annotators.n, round(annotators.estimate, 3)) == md["annotators"]
    # the judge's violation rate minus the people's, on the same untuned replies
    gap = _by_claim(findings, "evaluation judge minus people")
    row = md["rows"]["untuned"]
    assert round(100 * gap.estimate, 1) == pytest.approx(row["judge"] - row["violation"][0], abs=0.11)
    assert gap.status == "supported"


def test_the_report_card_states_the_study_sizes_of_its_findings(findings):
    report = er.course_report(findings)
    md = _human_eval_md()
    data = " ".join(report.evaluation_data)
    assert f"{md['judge'][1]} distinct replies" in data and f"{md['annotators'][0]} of them twice" in data
    seeds = sorted({row["seeds"] for variant, row in md["rows"].items() if variant != "untuned"})
    assert report.known_limits[0].startswith(f"{seeds[0]} to {seeds[-1]} seeds" if len(seeds) > 1 else "")


def test_over_refusal_findings_reproduce_the_runs_own_rates(findings):
    runs = sorted((RESULTS / "study" / "runs").glob("dart_seed*"))
    assert len(runs) >= 2
    stored = [{t: json.loads((run / f"eval_{t}.json").read_text())["over_refusal_by_source"]["hh_benign"]["rate"]
               for t in (0, 2)} for run in runs]
    expected = np.mean([s[2] for s in stored]) - np.mean([s[0] for s in stored])
    dart = _by_claim(findings, "dart minus untuned: refusals")
    assert dart.estimate == pytest.approx(expected) and dart.n == 32
    assert f"{len(runs)} seeds" in dart.model
    assert dart.status == "judge only" and not dart.human_checked


def test_cross_attack_and_red_learning_findings_match_the_committed_markdown(findings):
    # cross_attack.md: dart_seed0 - mart_seed0 +2.5 [+0.0, +6.2] and dart_seed1 - mart_seed1 -2.5 over 80 attacks
    seed0 = _by_claim(findings, "dart_seed0 minus mart_seed0")
    assert (seed0.estimate, seed0.n, seed0.status) == (pytest.approx(0.025), 80, "not shown")
    assert _by_claim(findings, "dart_seed1 minus mart_seed1").estimate == pytest.approx(-0.025)
    # red_learning.md: cpu_study 28.1% (first two steps) -> 18.8% (last two): -9.4 points
    red = _by_claim(findings, "red learning (cpu_study)")
    assert red.estimate == pytest.approx(0.1875 - 0.28125) and red.n == 64 and red.status == "not shown"


def test_every_finding_of_the_course_report_is_complete_and_its_evidence_verifies(findings):
    report = er.course_report(findings)
    assert len(findings) >= 15
    for f in findings:
        assert f.limits and f.evidence and f.n > 0 and f.lesson is not None, f.claim
        assert f.low <= f.estimate <= f.high, f.claim
    check_ = er.verify_evidence(report, RESULTS)
    assert check_["ok"].all() and len(check_) >= 10
    by_strategy = report.by_strategy()
    assert by_strategy.loc["safety-guidance-strategy", "total"] == 0  # nothing measured there: shown as 0
    assert by_strategy["total"].sum() == len(findings)
    manifest = er.verify_manifest(RESULTS / "study" / "runs" / "dart_seed0")
    assert set(manifest.loc[manifest["file"].str.startswith("eval_"), "status"]) == {"match"}
    assert "absent" in set(manifest["status"])  # the adapters' weights are not committed


# --------------------------------------------------------------------------------------------
# Trends in the paper list
# --------------------------------------------------------------------------------------------

SMALL = make_papers([
    ("a", 2021, "governance/proposals/technical-oversight-proposals"),
    ("a", 2021, "governance/policies/policy-comparison"),
    ("b", 2023, "governance/visions/long-term-vision"),
    ("c", 2023, "technology-roadmaps-strategies-to-llm-safety-in-practice/evaluation"),
    ("c", 2023, "governance/policies/policy-comparison"),
    ("d", None, "governance/policies/policy-comparison"),
    ("e", 2024, "misuse/deepfakes"),
])


def test_papers_per_area_year_counts_distinct_papers_with_gap_years():
    table = trends.papers_per_area_year(SMALL)
    assert list(table.columns) == ["Misuse", "Technology Roadmaps / Strategies to LLM Safety in Practice",
                                   "Governance"]  # the survey's order
    assert list(table.index) == [2021, 2022, 2023, 2024] and table.index.name == "year"
    assert table["Governance"].tolist() == [1, 0, 2, 0]  # "a" twice in 2021 counts once; "d" has no year
    within = trends.papers_per_area_year(SMALL, within="governance")
    assert list(within.columns) == ["policies", "proposals", "visions"]
    assert within.loc[2021].tolist() == [1, 1, 0] and within.loc[2023].tolist() == [1, 0, 1]
    recent = trends.papers_per_area_year(SMALL, ["Governance", "Agent Safety"], year_from=2022, year_to=2023)
    assert list(recent.index) == [2022, 2023] and recent["Agent Safety"].tolist() == [0, 0]
    empty = trends.papers_per_area_year(SMALL, ["Agent Safety"])
    assert empty.empty and list(empty.columns) == ["Agent Safety"]


def test_area_shares_and_trend_plot():
    table = trends.papers_per_area_year(SMALL)
    shares = trends.area_shares(table)
    assert shares.loc[2023].sum() == pytest.approx(1.0) and math.isnan(shares.loc[2022].iloc[0])
    ax = trends.plot_area_trends(table, share=True, title="t")
    assert ax.get_ylim() == (0.0, 1.0) and len(ax.get_lines()) == 3
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "2021\n(n=1)"  # "a" twice in one area: once
    with pytest.raises(ValueError, match="empty"):
        trends.plot_area_trends(table.iloc[0:0])


def test_trends_on_the_real_paper_list_agree_with_counts_by_category(papers_source):
    import warnings

    from llmsafety.papers import counts_by_category, load_papers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        papers = load_papers(papers_source)
    table = trends.papers_per_area_year(papers)
    dated = papers.dropna(subset=["year"])
    # a paper has one year, so summing an area's years counts each of its dated papers once
    assert table.sum().to_dict() == {k: v for k, v in counts_by_category(dated).items() if v}
    governance = trends.papers_per_area_year(papers, within="governance")
    assert list(governance.columns) == ["policies", "proposals", "visions"]
    assert governance.to_numpy().sum() == 35  # every governance paper of the list is dated


# --------------------------------------------------------------------------------------------
# The exercises: references agree with the library, wrong answers fail saying what differs
# --------------------------------------------------------------------------------------------

LIBRARY = {
    "wilson_interval": er.wilson_interval,
    "claim_status": er.claim_status,
    "format_result": lambda *args: er.format_result(*args, digits=1),
    "papers_per_area_year": lambda df, areas: trends.papers_per_area_year(df, areas),
}


@pytest.mark.parametrize("exercise", lesson13.EXERCISES, ids=lambda e: e.name)
def test_lesson13_reference_passes_and_agrees_with_the_library(exercise, capsys):
    assert check(exercise.reference, exercise)
    for i, args in enumerate(exercise.all_cases(n_random=20, seed=1), start=1):
        difference = default_compare(exercise.reference(*args), LIBRARY[exercise.name](*args))
        assert difference is None, f"{exercise.name} case {i}: {difference}"


def test_lesson13_wrong_answers_fail_naming_what_differs(capsys):
    def normal_approximation(successes, n, level=0.95):
        if n == 0:
            return NAN, NAN, NAN
        p = successes / n
        half = 1.959964 * math.sqrt(p * (1 - p) / n)
        return p, p - half, p + half

    out = _fails(normal_approximation, "wilson_interval", capsys)
    assert "case 1 (21, 48, 0.95)" in out and "at index 1: off by" in out
    out = _fails(lambda e, lo, hi, null, human: lesson13.claim_status(e, lo, hi, null, True), "claim_status", capsys)
    assert "case 4" in out and "'supported' instead of 'judge only'" in out
    strict = lambda e, lo, hi, null, human: (  # noqa: E731
        "descriptive" if null is None else "no data" if math.isnan(e) else
        "not shown" if lo < null < hi else "supported" if human else "judge only")
    out = _fails(strict, "claim_status", capsys)
    assert "case 2" in out and "'judge only' instead of 'not shown'" in out
    unsigned = lambda e, lo, hi, n, kind: lesson13.format_result(e, lo, hi, n, kind).replace("+", "")  # noqa: E731
    out = _fails(unsigned, "format_result", capsys)
    assert "case 2" in out and "'6.2 pts [-6.2, 19.8] (n=48)' instead of" in out

    def rows_not_papers(df, areas):
        kept = df.dropna(subset=["year", "top_category"])
        kept = kept[kept["top_category"].isin(areas)]
        table = pd.crosstab(kept["year"].astype(int), kept["top_category"])
        return table.reindex(index=range(table.index.min(), table.index.max() + 1), columns=areas, fill_value=0)

    out = _fails(rows_not_papers, "papers_per_area_year", capsys)
    assert "case 1" in out and "in column 'Governance', at index 2: off by 1" in out


# --------------------------------------------------------------------------------------------
# Re-running a sample of the evidence on the real models
# --------------------------------------------------------------------------------------------


def _committed_untuned_records(k: int) -> list[dict]:
    records = json.loads((RESULTS / "study" / "runs" / "dart_seed0" / "eval_0.json").read_text())["records"]
    return [r for r in records if r["source"] == "hh"][:k]


@pytest.mark.slow
def test_committed_untuned_replies_regenerate_exactly():
    from llmsafety.models import generate, load_chat_model

    records = _committed_untuned_records(2)
    model = load_chat_model(device="cpu", dtype="float32")
    replies = generate(model, [r["prompt"] for r in records], max_new_tokens=64, temperature=0.0, progress=False)
    matches = [new == r["reply"] for new, r in zip(replies, records)]
    finding = er.reproduction_finding(matches, results_dir=RESULTS, what="untuned Target",
                                      evidence=["study/runs/dart_seed0/eval_0.json"])
    assert matches == [True, True], [(r["reply"][:60], new[:60]) for new, r in zip(replies, records)]
    assert finding.estimate == 1.0 and 0 < finding.low < 1 and finding.high == 1.0
    assert finding.status == "descriptive" and er.verify_evidence(_report([finding]), RESULTS)["ok"].all()


@pytest.mark.slow
def test_the_evaluation_judge_gives_the_committed_outcomes_again():
    from llmsafety.dart.eval_judge import OutcomeJudge
    from llmsafety.models import load_embedder

    embedder = load_embedder(device="cpu")
    judge = OutcomeJudge(lambda texts: embedder.encode(list(texts), convert_to_numpy=True,
                                                       normalize_embeddings=True, show_progress_bar=False))
    records = _committed_untuned_records(24)
    outcomes = judge.outcomes([r["prompt"] for r in records], [r["reply"] for r in records])
    assert outcomes == [r["outcome"] for r in records]
    assert len(set(outcomes)) >= 2  # the sample holds more than one kind of outcome
