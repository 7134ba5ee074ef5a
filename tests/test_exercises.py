"""The exercise layer: references pass their own checks, agree with the library, and wrong answers
fail with a message that says what differs."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from exercise_checks import fails as _fails

from llmsafety.exercises import (
    EXERCISES,
    LESSONS,
    Exercise,
    check,
    default_compare,
    for_lesson,
    get,
    lesson01,
    lesson02,
    lesson03,
    lesson04,
    lesson05,
    lesson08,
    markers,
)

N_RANDOM = 20


# --------------------------------------------------------------------------------------------
# Every reference passes its own check, fast
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_passes_its_own_check(name, capsys):
    exercise = get(name)
    start = time.perf_counter()
    assert check(exercise.reference, exercise)  # as a lesson calls it: the default cases
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert out == f"✔ {exercise.title}: passed {len(exercise.cases) + exercise.n_random} cases\n"
    assert exercise.n_random >= 10
    assert elapsed < 1.0, f"{name}: check took {elapsed:.2f} s; a lesson calls it often"


def test_registry_covers_every_lesson():
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    lesson_numbers = tuple(sorted(int(p.name[:2]) for p in notebooks.glob("[0-9][0-9]_*.ipynb")))
    assert LESSONS == lesson_numbers, "every lesson notebook has an exercise module, and only those"
    for lesson in LESSONS:
        assert len(for_lesson(lesson)) >= 3, f"lesson {lesson} has fewer than 3 exercises"
    assert sum(len(for_lesson(k)) for k in LESSONS) == len(EXERCISES)
    assert [e.name for e in for_lesson(8)] == [e.name for e in lesson08.EXERCISES]
    for name, exercise in EXERCISES.items():
        assert exercise.name == name
        assert exercise.cases and exercise.random_case is not None
        assert f"def {name}(" in exercise.source  # the reference has the function's name


def test_random_cases_are_reproducible():
    for exercise in EXERCISES.values():
        first = exercise.all_cases(n_random=5, seed=3)
        again = exercise.all_cases(n_random=5, seed=3)
        for a, b in zip(first, again):
            assert default_compare(exercise.reference(*a), exercise.reference(*b)) is None


def test_importing_the_exercises_loads_no_model_library():
    code = "import sys, llmsafety.exercises; print(sorted({'torch', 'transformers', 'trl'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------------------------
# References agree with the library on every case
# --------------------------------------------------------------------------------------------


def _trl_group_advantages(rewards: np.ndarray, group_size: int) -> np.ndarray:
    """The lines of TRL 1.16's GRPOTrainer (sum_then_normalize, scale_rewards="group"), with its
    nanstd (Bessel-corrected) written out: importing trl itself takes many seconds."""
    import torch

    r = torch.tensor(rewards, dtype=torch.float64)
    grouped = r.view(-1, group_size)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size, dim=0)
    m = torch.nanmean(grouped, dim=1, keepdim=True)
    count = torch.sum(~torch.isnan(grouped), dim=1, keepdim=True)
    std = torch.sqrt(torch.nanmean((grouped - m) ** 2, dim=1, keepdim=True) * count / (count - 1))
    std = std.view(-1).repeat_interleave(group_size, dim=0)
    return ((r - mean) / (std + 1e-4)).numpy()


def _evaluate_by_category(judged: pd.DataFrame, tau: float) -> dict[str, float]:
    """evaluate_target's by_category formula, on judged rows instead of model replies."""
    harm = judged["harm"].to_numpy(dtype=float)
    frame = judged.assign(violation=np.where(np.isnan(harm), np.nan, (harm >= tau).astype(float)))
    with warnings.catch_warnings():  # nanmean of a category with no scored reply: NaN, expected
        warnings.simplefilter("ignore", RuntimeWarning)
        return {c: float(np.nanmean(g["violation"])) for c, g in frame.groupby("category", sort=True)}


@pytest.fixture(scope="module")
def library() -> dict:
    """For each exercise the library answers, the library's answer (imported here: the dart
    modules import torch, which takes seconds)."""
    import torch

    from llmsafety import refusal_direction as rd
    from llmsafety.dart import evaluate, rewards, selection, stats
    from llmsafety.diversity import distinct_n, global_novelty
    from llmsafety.papers import counts_by_category, filter_papers

    def one_layer(x: np.ndarray) -> torch.Tensor:  # [n, d] -> [n, 1, d]: one layer of activations
        return torch.from_numpy(np.asarray(x, dtype=float))[:, None, :]

    tax = lesson01.TAX
    return {
        "count_leaves": lambda node: len(tax.leaves(node.id)),
        "path_names": lambda node: list(node.path),
        "subtree_height": lambda node: max(n.depth for n in node.walk()) - node.depth,
        "in_category_since": lambda df, prefix, year: filter_papers(df, category=prefix, year_from=year),
        "papers_per_area": lambda df: {k: int(v) for k, v in counts_by_category(df).items() if v},
        "distinct_n": distinct_n,
        "violation_rate_by_category": _evaluate_by_category,
        "global_novelty": lambda new, archive: global_novelty(new, archive),
        "degeneracy_penalty": rewards.degeneracy_penalty,
        "group_advantages": _trl_group_advantages,
        "uncertainty_scores": selection.uncertainty_scores,
        "bootstrap_ci": lambda v, n_boot, seed, level: evaluate.bootstrap_ci(v, n_boot=n_boot, seed=seed, level=level),
        "risk_removed": lambda after, before: stats.risk_removed(after, before, n_boot=10)[0],
        "cohen_kappa": stats.cohen_kappa,
        # The library's estimate is mean(a) - mean(b): the same as the per-prompt one when no
        # outcome is missing, so the NaNs are filled in first (see the test below).
        "paired_difference": lambda a, b: stats.paired_difference(a, b, n_boot=10)[0],
        "mean_difference_direction": lambda h, b: rd.unit(rd.mean_difference_directions(one_layer(h), one_layer(b)))[0]
        .numpy(),
        "project_out": lambda v, d: rd.project_out(torch.from_numpy(v), torch.from_numpy(d)).numpy(),
        # one seed: the library's paired bootstrap draws the prompts first, as the exercise does
        "refusal_rate_change_ci": lambda a, b, n_boot, seed, level: stats.paired_difference(
            a, b, n_boot=n_boot, seed=seed, level=level),
    }


WITH_LIBRARY = [
    "count_leaves", "path_names", "subtree_height", "in_category_since", "papers_per_area",
    "distinct_n", "violation_rate_by_category", "global_novelty", "degeneracy_penalty",
    "group_advantages", "uncertainty_scores", "bootstrap_ci", "risk_removed", "cohen_kappa",
    "paired_difference", "mean_difference_direction", "project_out", "refusal_rate_change_ci",
]


def test_library_table_is_complete(library):
    assert sorted(library) == sorted(WITH_LIBRARY)
    # The rest have no one library function to agree with (nodes_mentioning: see below); from lesson 6 on,
    # each lesson's exercises are checked against the library in that lesson's own test file
    # (tests/test_alignment.py, tests/test_jailbreaks.py, ...).
    elsewhere = {e.name for lesson in LESSONS if lesson >= 6 and lesson != 8 for e in for_lesson(lesson)}
    assert sorted(set(EXERCISES) - set(WITH_LIBRARY) - elsewhere) == [
        "first_sentence_refusal", "mean_difference_probe_accuracy", "nodes_mentioning", "papers_per_year"]


@pytest.mark.parametrize("name", WITH_LIBRARY)
def test_reference_agrees_with_the_library(name, library):
    exercise, library_fn = get(name), library[name]
    for i, args in enumerate(exercise.all_cases(n_random=N_RANDOM, seed=1), start=1):
        if name == "paired_difference":
            args = tuple(np.nan_to_num(a, nan=0.0) for a in args)
        difference = exercise.compare(exercise.reference(*args), library_fn(*args))
        assert difference is None, f"{name} case {i} {args!r}: {difference}"


def test_nodes_mentioning_is_the_name_and_key_term_part_of_find():
    tax = lesson01.TAX
    exercise = get("nodes_mentioning")
    for _, word in exercise.all_cases(n_random=N_RANDOM):
        ours = exercise.reference(tax, word)
        found = [n.id for n in tax.find(word)]  # words of the cases are single words
        assert [i for i in found if i in ours] == ours  # a subset of find(), in the same order
    assert "robustness-to-attack/jailbreaking" in exercise.reference(tax, "JAILBREAK")


def test_paired_difference_drops_prompts_missing_in_either_variant():
    a = np.array([[1.0, np.nan, 0.0]])
    b = np.array([[0.0, 1.0, 0.0]])
    assert lesson05.paired_difference(a, b) == pytest.approx(0.5)  # prompts 1 and 3 only


# --------------------------------------------------------------------------------------------
# Wrong answers fail, and the message says what differs
# --------------------------------------------------------------------------------------------


def test_off_by_one_names_the_case_and_the_difference(capsys):
    out = _fails(lambda node: lesson01.count_leaves(node) + 1, "count_leaves", capsys)
    assert "case 1 (TaxonomyNode('robustness-to-attack'))" in out
    assert "expected 15, got 16 (off by 1)" in out


def test_a_function_that_raises_shows_the_exception(capsys):
    def count_leaves(node):
        return 1 / 0

    out = _fails(count_leaves, "count_leaves", capsys)
    assert "your function raised ZeroDivisionError: division by zero" in out
    assert "expected 15" in out


def test_wrong_std_in_group_advantages(capsys):
    def population_std(rewards, group_size):
        g = np.asarray(rewards, float).reshape(-1, group_size)
        return ((g - g.mean(1, keepdims=True)) / (g.std(1, keepdims=True) + 1e-4)).ravel()

    out = _fails(population_std, "group_advantages", capsys)
    assert "case 1" in out and "entries differ; first at index 0" in out


def test_wrong_sign_in_global_novelty(capsys):
    def similarity_not_novelty(new, archive):
        return 1.0 - lesson04.global_novelty(new, archive)  # the max cosine itself

    out = _fails(similarity_not_novelty, "global_novelty", capsys)
    assert "expected [0.0, 1.0], got [1.0, 0.0]" in out
    assert "2 of 2 entries differ" in out


def test_prefix_without_slash_keeps_a_sibling_row(capsys):
    def loose_prefix(df, prefix, year_from):
        recent = (df["year"] >= year_from).fillna(False).astype(bool)
        return df[df["taxonomy_id"].str.startswith(prefix) & recent]

    out = _fails(loose_prefix, "in_category_since", capsys)
    assert "case 3" in out and "3 rows instead of 2: unexpected rows [1]" in out


def test_counting_rows_instead_of_papers(capsys):
    def rows_per_year(df):
        return {int(y): int(n) for y, n in df.dropna(subset=["year"]).groupby("year").size().items()}

    out = _fails(rows_per_year, "papers_per_year", capsys)
    assert "at key 2023: off by 1" in out


def test_strict_threshold_and_unscored_as_safe(capsys):
    def strict(judged, tau):
        return {c: float((g["harm"] > tau).mean()) for c, g in judged.groupby("category")}

    out = _fails(strict, "violation_rate_by_category", capsys)
    # 'a' has 0.5 (a violation at tau = 0.5), 0.2 and an unscored reply: 1/2, not 0/3.
    assert "at key 'a': off by -0.5" in out


def test_searching_the_whole_reply(capsys):
    def anywhere(reply, openers):
        return any(o in reply.lower().replace("\u2019", "'") for o in openers)

    out = _fails(anywhere, "first_sentence_refusal", capsys)
    assert 'case 2 ("Sure! I\'m sorry if this sounds blunt' in out
    assert "expected False, got True (the truth value is wrong)" in out


def test_nan_not_dropped_in_bootstrap(capsys):
    def keeps_nan(values, n_boot, seed, level):
        x = np.asarray(values, float)
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
        lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
        return float(x.mean()), float(lo), float(hi)

    out = _fails(keeps_nan, "bootstrap_ci", capsys)
    assert "case 2" in out and "at index 0: got NaN where a number was expected" in out


def test_observed_agreement_is_not_kappa(capsys):
    out = _fails(lambda a, b: float(np.mean([x == y for x, y in zip(a, b)])), "cohen_kappa", capsys)
    assert "expected 0.5, got 0.75 (off by 0.25)" in out


def test_wrong_type_and_shape_are_named(capsys):
    out = _fails(lambda df: list(lesson02.papers_per_area(df).values()), "papers_per_area", capsys)
    assert "(expected a dict, got list)" in out
    out = _fails(lambda h, t: lesson04.uncertainty_scores(h, t)[:, None], "uncertainty_scores", capsys)
    assert "(shape (3, 1) instead of (3,))" in out


def test_a_function_that_changes_its_input_does_not_change_the_cases(capsys):
    def sorts_in_place(texts, n):
        texts.sort()  # distinct-n does not depend on the order, so this answer is right
        return lesson03.distinct_n(texts, n)

    assert check(sorts_in_place, "distinct_n")
    assert get("distinct_n").cases[1][0] == ["tell me now", "now tell me"]


def test_the_probe_agrees_with_projecting_on_the_librarys_direction():
    import torch

    from llmsafety import refusal_direction as rd

    exercise = get("mean_difference_probe_accuracy")
    for train_x, train_y, test_x, test_y in exercise.all_cases(n_random=N_RANDOM, seed=1)[:-1]:
        train_t = torch.from_numpy(train_x)[:, None, :]
        direction = rd.mean_difference_directions(train_t[train_y == 1], train_t[train_y == 0])
        on_train = rd.direction_projections(train_t, direction)[:, 0].numpy()
        threshold = (on_train[train_y == 1].mean() + on_train[train_y == 0].mean()) / 2
        on_test = rd.direction_projections(torch.from_numpy(test_x)[:, None, :], direction)[:, 0].numpy()
        assert exercise.reference(train_x, train_y, test_x, test_y) == pytest.approx(
            float(np.mean((on_test > threshold) == (test_y == 1))))


def test_direction_not_normalised_or_pointing_the_wrong_way(capsys):
    out = _fails(lambda h, b: np.mean(h, axis=0) - np.mean(b, axis=0), "mean_difference_direction", capsys)
    assert "case 1" in out and "expected [1.0, 0.0], got [4.0, 0.0]" in out
    out = _fails(lambda h, b: lesson08.mean_difference_direction(b, h), "mean_difference_direction", capsys)
    assert "expected [1.0, 0.0], got [-1.0, 0.0] (1 of 2 entries differ; first at index 0: expected 1.0, got -1.0)" in out


def test_projecting_on_an_unnormalised_direction(capsys):
    def no_unit(vectors, direction):
        vectors, direction = np.asarray(vectors, float), np.asarray(direction, float)
        return vectors - np.outer(vectors @ direction, direction)

    out = _fails(no_unit, "project_out", capsys)
    assert "case 2" in out and "expected [[0.0, 3.0], [0.0, 5.0]], got [[-30.0, 3.0], [15.0, 5.0]]" in out


def test_a_probe_fitted_on_the_test_set(capsys):
    def scores_itself(train_x, train_y, test_x, test_y):
        return lesson08.mean_difference_probe_accuracy(test_x, test_y, test_x, test_y)

    out = _fails(scores_itself, "mean_difference_probe_accuracy", capsys)
    assert "case 1" in out and "expected 0.75, got 0.5 (off by -0.25)" in out


def test_an_unpaired_bootstrap_of_the_change(capsys):
    def unpaired(after, before, n_boot, seed, level=0.95):
        rng = np.random.default_rng(seed)
        a = after[rng.integers(0, len(after), (n_boot, len(after)))].mean(axis=1)
        b = before[rng.integers(0, len(before), (n_boot, len(before)))].mean(axis=1)
        low, high = np.quantile(a - b, [(1 - level) / 2, 1 - (1 - level) / 2])
        return float(after.mean() - before.mean()), float(low), float(high)

    out = _fails(unpaired, "refusal_rate_change_ci", capsys)
    # wider: the unpaired interval reaches +0.33 where the paired one stops at 0
    assert "case 1" in out and "expected (-0.333333, -0.833333, 0.0), got (-0.333333, -0.833333, 0.333333)" in out
    assert "(at index 2: off by 0.333333)" in out


# --------------------------------------------------------------------------------------------
# The small pieces: markers, registry look-up, comparison, validation
# --------------------------------------------------------------------------------------------


def test_markers_render():
    assert markers(get("count_leaves")) == "Difficulty: 🔴⚪⚪ · Importance: 🔵🔵⚪ · ~5 min"
    assert markers("uncertainty_scores") == "Difficulty: 🔴🔴🔴 · Importance: 🔵🔵⚪ · ~15 min"


def test_unknown_exercise_suggests_close_names():
    with pytest.raises(KeyError, match="Did you mean 'count_leaves'"):
        get("count_leafs")


def test_exercise_validates_its_fields():
    with pytest.raises(ValueError, match="difficulty must be 1, 2 or 3"):
        Exercise("x", 1, "X", 4, 1, 5, reference=len, cases=[((),)])
    with pytest.raises(ValueError, match=f"lesson must be one of {', '.join(map(str, LESSONS))}, got 0"):
        Exercise("x", 0, "X", 1, 1, 5, reference=len, cases=[((),)])
    with pytest.raises(ValueError, match="not tuples"):
        Exercise("x", 1, "X", 1, 1, 5, reference=len, cases=[[1]])


@pytest.mark.parametrize("expected, got, message", [
    (1.0, 1.0 + 1e-12, None),
    (float("nan"), np.nan, None),
    (0.5, 0.6, "off by 0.1"),
    (1, "1", "expected a number, got str"),
    (3, np.int64(4), "off by 1"),
    (True, np.bool_(True), None),
    (True, 1, "expected a bool, got int"),
    (np.array([1.0, np.nan]), [1.0, np.nan], None),
    (np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0]), "shape (3,) instead of (2,)"),
    ({"a": 1}, {"a": 1, "b": 2}, "unexpected keys ['b']"),
    ({"a": [1, 2]}, {"a": [1, 3]}, "at key 'a': at index 1: off by 1"),
    ([1, 2], (1, 2), None),
    ((0.5, 0.1, 0.9), (0.5, 0.1), "length 2 instead of 3: missing item at index 2: 0.9"),
    ("abc", "abd", "'abd' instead of 'abc'"),
    (["a", "b"], ["a", "b", "c"], "length 3 instead of 2: unexpected item at index 2: 'c'"),
    (["a", "b"], ["b"], "length 1 instead of 2; first difference at index 0: 'b' instead of 'a'"),
    (pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [1, 2]}), None),
    (pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"y": [1, 2]}), "columns ['y'] instead of ['x']"),
    (pd.DataFrame({"x": [1, pd.NA]}, dtype="Int64"), pd.DataFrame({"x": [1.0, np.nan]}), None),
    (pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [1, 5]}), "in column 'x', at index 1: off by 3"),
])
def test_default_compare(expected, got, message):
    assert default_compare(expected, got) == message
