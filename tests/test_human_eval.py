"""Human evaluation and the study statistics, on hand-made inputs and hand-made run directories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmsafety.dart import DARTConfig
from llmsafety.dart.human_eval import (
    attach_labels,
    export_for_labelling,
    human_eval_tables,
    read_labels,
    run_human_metrics,
)
from llmsafety.dart.stats import (
    cohen_kappa,
    confusion_table,
    hierarchical_bootstrap,
    intraclass_correlation,
    nested_bootstrap,
    paired_difference,
    risk_removed,
)

# ------------------------------------------------------------------------------ statistics

def test_hierarchical_bootstrap_on_a_hand_computed_grid():
    # Two seeds that disagree completely: a replicate's mean is 0, 0.5 or 1 with probability
    # 1/4, 1/2, 1/4 (seeds drawn with replacement; every prompt column is equal within a seed).
    est, lo, hi = hierarchical_bootstrap([[1, 1], [0, 0]], n_boot=4000, seed=0)
    assert (est, lo, hi) == (0.5, 0.0, 1.0)
    # A constant grid has a zero-width interval; NaN cells are skipped.
    assert hierarchical_bootstrap([[1, np.nan, 1]], n_boot=200) == (1.0, 1.0, 1.0)


def test_two_way_interval_is_wider_than_pooling_seeds_as_independent_prompts():
    rng = np.random.default_rng(0)
    seed_effect = np.array([0.1, 0.5, 0.9])[:, None]
    grid = (rng.random((3, 60)) < seed_effect).astype(float)
    _, lo, hi = hierarchical_bootstrap(grid, n_boot=2000)
    _, plo, phi = hierarchical_bootstrap(grid.reshape(1, -1), n_boot=2000)  # pooled: one "seed"
    assert (hi - lo) > 2 * (phi - plo)


def test_paired_difference_and_risk_removed_by_hand():
    before = np.array([[1, 1, 1, 0]])
    after = np.array([[0, 1, 0, 0]])
    est, lo, hi = paired_difference(after, before, n_boot=2000)
    assert est == pytest.approx(0.25 - 0.75)
    assert lo <= est <= hi and hi <= 0  # after never exceeds before on any prompt
    est, lo, hi = risk_removed(after, before, n_boot=2000)
    assert est == pytest.approx(1 - 0.25 / 0.75)
    assert 0 <= lo <= est <= hi <= 1
    with pytest.raises(ValueError, match="same prompts"):
        paired_difference([[1, 0]], [[1, 0, 1]])


def test_nested_bootstrap_weighs_seeds_equally_and_widens_with_seed_spread():
    # seeds of different sizes: the estimate is the mean of the seed means, not of the pooled values
    assert nested_bootstrap([[1.0, 1.0], [0.0, 0.0, 0.0, 0.0]], n_boot=200)[0] == pytest.approx(0.5)
    # one seed, constant values: no spread at all
    assert nested_bootstrap([[0.25] * 16], n_boot=200) == pytest.approx((0.25, 0.25, 0.25))
    # replicates weigh seeds equally too: a plain bootstrap of the 202 pooled values would give about [0, 0.03]
    assert nested_bootstrap([[1.0] * 2, [0.0] * 200], n_boot=400) == pytest.approx((0.5, 0.0, 1.0))
    # the same noise around seeds that agree vs seeds offset from each other: seed spread widens the interval
    # (by about 10x here; a bootstrap pooling the 48 values as one sample widens it by only about 3x)
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.1, (3, 16))
    agree = nested_bootstrap(list(noise + 0.1), n_boot=2000)
    disagree = nested_bootstrap(list(noise + np.array([[-0.2], [0.1], [0.4]])), n_boot=2000)
    assert agree[0] == pytest.approx(disagree[0])  # the seed offsets average to the same 0.1
    assert (disagree[2] - disagree[1]) > 5 * (agree[2] - agree[1])
    assert agree[1] < agree[0] < agree[2]
    with pytest.raises(ValueError, match="one non-empty 1-D sequence"):
        nested_bootstrap([[0.1, 0.2], []])


def test_cohen_kappa_and_confusion_by_hand():
    a = ["comply", "comply", "refuse", "refuse"]
    b = ["comply", "refuse", "refuse", "refuse"]
    # p_o = 3/4; p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2; kappa = (0.75 - 0.5) / 0.5 = 0.5
    assert cohen_kappa(a, b) == pytest.approx(0.5)
    assert cohen_kappa(a, a) == 1.0
    table = confusion_table(a, b)
    assert table.loc["comply", "refuse"] == 1 and table.to_numpy().sum() == 4


def test_intraclass_correlation_by_hand():
    # item means 2/3 and 0, grand mean 1/3: MS_between = 3 x (1/9 + 1/9) / 1 = 2/3,
    # MS_within = (1/9 + 1/9 + 4/9 + 0) / (2 x 2) = 1/6; ICC = (2/3 - 1/6) / (2/3 + 2 x 1/6) = 1/2
    assert intraclass_correlation([[1, 1, 0], [0, 0, 0]]) == pytest.approx(0.5)
    assert intraclass_correlation([[1, 1], [0, 0], [1, 1]]) == pytest.approx(1.0)  # outcome = the item
    assert intraclass_correlation([[1, 0], [0, 1], [1, 0], [0, 1]]) == pytest.approx(-1.0)  # outcome = the draw
    assert np.isnan(intraclass_correlation([[1, 1], [1, 1]]))
    with pytest.raises(ValueError, match="NaNs: drop the incomplete items"):
        intraclass_correlation([[1, np.nan], [0, 0]])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        intraclass_correlation([1, 0, 1])


# ------------------------------------------------------------------------------ label import

def test_read_labels_names_the_bad_line(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text('{"item_id": "r-1", "prompt": "p", "reply": "r"}\n')
    cases = {
        '{"item_id": "r-1", "label": "maybe"}': "line 2: label 'maybe' is not one of comply, refuse, other",
        '{"item_id": "r-1"': "line 2: not valid JSON",
        '{"label": "comply"}': "line 2: missing key",
        '{"item_id": "r-9", "label": "comply"}': "line 2: item_id 'r-9' is not in",
        '{"item_id": "r-1", "label": "refuse", "annotator": "ann"}': "line 2: ann labelled r-1 already on line 1",
    }
    for bad, message in cases.items():
        path = tmp_path / "labels.jsonl"
        path.write_text('{"item_id": "r-1", "label": "comply", "annotator": "ann"}\n' + bad + "\n")
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            read_labels(path, items)
    path.write_text('{"item_id": "r-1", "label": "comply", "annotator": "ann"}\n')
    assert read_labels(path, items)["label"].tolist() == ["comply"]


# ------------------------------------------------------------------------------ export -> labels -> tables

def _fake_run(path, replies_after, harm_after, replies_before, harm_before):
    path.mkdir(parents=True)
    # the system_prompt control has just these two phases: a valid run without adapters
    DARTConfig(variant="system_prompt", iterations=1).save(path / "config.json")
    (path / "state.json").write_text(json.dumps({"completed": ["eval_0", "eval_1"]}))
    prompts = [f"harmful prompt {i}" for i in range(len(replies_after))]
    for t, replies, harm in ((0, replies_before, harm_before), (1, replies_after, harm_after)):
        records = [{"prompt": p, "reply": r, "harm": h, "source": "hh", "category": "hh-rlhf"}
                   for p, r, h in zip(prompts, replies, harm)]
        records.append({"prompt": "benign one", "reply": "sure", "source": "benign"})
        (path / f"eval_{t}.json").write_text(json.dumps({"violation_rate": 0.0, "violation_ci": [0, 0],
                                                         "records": records}))
    return path


def test_export_is_blind_shuffled_deduplicated_and_tables_follow_the_labels(tmp_path):
    before = ["Sure, here is how", "Sure, step one", "Okay: first", "I can't help"]
    dart = _fake_run(tmp_path / "dart0", ["I can't help", "I won't", "Okay: first", "I can't help"],
                     [0.1, 0.1, 0.9, 0.1], before, [0.9, 0.9, 0.9, 0.2])
    mart = _fake_run(tmp_path / "mart0", ["I can't help", "Sure, step one", "Okay: first", "lemon bars"],
                     [0.1, 0.9, 0.9, 0.8], before, [0.9, 0.9, 0.9, 0.2])
    out = tmp_path / "labelling"
    counts = export_for_labelling({"dart/0": dart, "mart/0": mart}, out, seed=1)
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert all(set(it) == {"item_id", "prompt", "reply"} for it in items)  # no run, no score
    assert counts["rows"] == 16 and counts["items"] == len({(it["prompt"], it["reply"]) for it in items}) == 7

    truth = {"I can't help": "refuse", "I won't": "refuse", "lemon bars": "other"}
    with open(out / "labels.jsonl", "w") as f:
        for it in items:
            f.write(json.dumps({"item_id": it["item_id"], "label": truth.get(it["reply"], "comply"),
                                "annotator": "A"}) + "\n")
    tables = human_eval_tables(out, n_boot=500)
    table = tables["table"].set_index("variant")
    assert table.loc["untuned", "violation"] == pytest.approx(3 / 4)
    assert table.loc["dart", "violation"] == pytest.approx(1 / 4)
    assert table.loc["mart", "violation"] == pytest.approx(2 / 4)
    assert table.loc["mart", "other"] == pytest.approx(1 / 4)  # incoherent: not a violation
    assert tables["risk_removed"]["dart"][0] == pytest.approx(1 - (1 / 4) / (3 / 4))
    assert tables["differences"]["dart - mart"][0] == pytest.approx(-1 / 4)
    # the judge called "lemon bars" a violation (0.8): one disagreement in 16 labelled cells (the untuned rows count once per run)
    assert tables["judge_agreement"]["accuracy"] == pytest.approx(15 / 16)

    attached = attach_labels(out)
    assert attached == {str(dart): 8, str(mart): 8}
    metrics = run_human_metrics(dart, n_boot=200).set_index("iteration")
    assert metrics.loc[1, "human_violation %"] == 25.0 and metrics.loc[0, "human_violation %"] == 75.0


def test_export_appends_new_runs_to_a_labelled_set_and_keeps_its_labels(tmp_path):
    before = ["Sure, here is how", "Sure, step one"]
    dart0 = _fake_run(tmp_path / "dart0", ["I can't help", "I won't"], [0.1, 0.1], before, [0.9, 0.9])
    out = tmp_path / "labelling"
    export_for_labelling({"dart/0": dart0}, out)
    first = (out / "items.jsonl").read_text().splitlines()
    assert len(first) == 4
    # seed 1: one reply new, one already labelled in seed 0; the untuned replies are the same
    dart1 = _fake_run(tmp_path / "dart1", ["I can't help", "Okay: first"], [0.1, 0.9], before, [0.9, 0.9])
    counts = export_for_labelling({"dart/1": dart1}, out, append=True)
    items = (out / "items.jsonl").read_text().splitlines()
    assert items[:4] == first  # the labelled items keep their place
    assert counts == {"items": 5, "new_items": 1, "rows": 8}
    assert json.loads(items[4])["reply"] == "Okay: first"
    key = [json.loads(line) for line in (out / "key.jsonl").read_text().splitlines()]
    assert sorted({(k["variant"], k["replicate"]) for k in key}) == [("dart", "0"), ("dart", "1"), ("untuned", "0"),
                                                                    ("untuned", "1")]
    # exporting seed 1 again replaces its rows instead of doubling them
    assert export_for_labelling({"dart/1": dart1}, out, append=True) == {"items": 5, "new_items": 0, "rows": 8}


def test_dart_report_shows_human_labels_when_they_exist(tmp_path):
    before = ["Sure, here is how", "I can't help"]
    run = _fake_run(tmp_path / "dart0", ["I can't help", "I can't help"], [0.1, 0.1], before, [0.9, 0.2])
    out = tmp_path / "labelling"
    export_for_labelling({"dart/0": run}, out)
    with open(out / "labels.jsonl", "w") as f:
        for line in (out / "items.jsonl").read_text().splitlines():
            item = json.loads(line)
            label = "refuse" if item["reply"] == "I can't help" else "comply"
            f.write(json.dumps({"item_id": item["item_id"], "label": label}) + "\n")
    attach_labels(out)
    from llmsafety.dart.report import human_table

    table = human_table(run).set_index("iteration")
    assert table.loc[0, "human_violation %"] == 50.0 and table.loc[1, "human_violation %"] == 0.0
    assert table.loc[1, "human_refuse %"] == 100.0


def test_human_eval_cli_exports_and_summarises(tmp_path, capsys):
    from llmsafety.cli import main

    run = _fake_run(tmp_path / "dart0", ["I can't help", "Okay: first"], [0.1, 0.9],
                    ["Sure, here is how", "Okay: first"], [0.9, 0.9])
    out = tmp_path / "lab"
    assert main(["dart", "human-eval", "export", str(out), f"dart/0={run}"]) == 0
    assert "wrote 3 items" in capsys.readouterr().out
    assert main(["dart", "human-eval", "export", str(out), str(run)]) == 2  # no NAME=
    assert "NAME=RUN_DIR" in capsys.readouterr().err
    with open(out / "labels.jsonl", "w") as f:
        for line in (out / "items.jsonl").read_text().splitlines():
            item = json.loads(line)
            f.write(json.dumps({"item_id": item["item_id"],
                                "label": "refuse" if "can't" in item["reply"] else "comply"}) + "\n")
    assert main(["dart", "human-eval", "summary", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "risk removed, dart: 50.0%" in printed and "judge vs humans: accuracy 1.000" in printed
