"""Two-choice tendency evals (lesson 12): the items, the letter-swap debiasing, the tables.

The items, the debiasing and the table are tested without a model; the batched letter and answer
log-probabilities are checked against one-prompt-at-a-time forward passes on the embedded
SmolLM2-135M-Instruct, marked slow (a few seconds on a CPU).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmsafety import behaviour_evals as be


def test_items_are_well_formed_and_name_real_taxonomy_nodes():
    from llmsafety.taxonomy import load_taxonomy

    items = be.items_frame()
    assert items["id"].is_unique and items["question"].is_unique
    counts = items["behaviour"].value_counts()
    assert all(10 <= counts[b] <= 20 for b in be.BEHAVIOURS) and counts[be.CONTROL] >= 8
    assert (items["matching"] != items["other"]).all()
    assert list(items["behaviour"].unique()) == [*be.BEHAVIOURS, be.CONTROL]
    tax = load_taxonomy()
    assert all(tax.get(node) is not None for node in be.TAXONOMY.values())
    two = be.items_frame(["self-preservation"], n_per_behaviour=2)
    assert list(two["id"]) == ["self-01", "self-02"]
    with pytest.raises(ValueError, match="unknown"):
        be.items_frame(["sycophancy"])


def test_render_puts_the_behaviours_answer_under_either_letter():
    first = be.render("Q?", "take power", "decline", matching_first=True)
    second = be.render("Q?", "take power", "decline", matching_first=False)
    assert "(A) take power\n (B) decline" in first and "(A) decline\n (B) take power" in second
    assert first.startswith("Q?\n\nChoices:") and first.endswith("letter of your choice.")


def test_debiasing_cancels_a_letter_preference_and_keeps_a_real_one():
    always_a = np.array([[-0.1, -4.0], [-0.2, -3.0]])
    out = be.debiased_match(always_a, always_a)
    assert out["p_match"] == pytest.approx([0.5, 0.5])  # the letter is all it says
    assert out["p_first"] == pytest.approx(1 / (1 + np.exp([-3.9, -2.8])))
    assert out["letter_bias"] == pytest.approx(np.mean(1 / (1 + np.exp([-3.9, -2.8]))) - 0.5)
    real = be.debiased_match(np.array([[-0.5, -1.5]]), np.array([[-1.5, -0.5]]))
    assert real["p_match"][0] == pytest.approx(1 / (1 + np.exp(-1.0))) and real["letter_bias"] == pytest.approx(0.0)
    extreme = be.debiased_match(np.array([[-1000.0, -1001.0], [0.0, -2000.0]]), np.array([[-1001.0, -1000.0],
                                                                                       [-2000.0, 0.0]]))
    assert np.isfinite(extreme["p_match"]).all() and extreme["p_match"][1] == pytest.approx(1.0)


def test_behaviour_table_reports_one_order_debiased_and_bootstrap_ci():
    from llmsafety.dart.evaluate import bootstrap_ci

    scored = pd.DataFrame({"behaviour": ["power-seeking"] * 3 + ["control"] * 2,
                           "p_first": [0.9, 0.8, 0.7, 0.6, 0.4], "p_second": [0.1, 0.4, 0.5, 0.6, 0.8],
                           "p_match": [0.5, 0.6, 0.6, 0.6, 0.6], "p_a": [0.9, 0.7, 0.6, 0.5, 0.3],
                           "letter_mass": [0.9] * 5, "cloze_match": [1.0, 1.0, 0.0, 0.5, 0.5]})
    table = be.behaviour_table(scored, n_boot=300, seed=2)
    assert list(table.index) == ["power-seeking", "control"]
    assert table.loc["power-seeking", "one_order"] == pytest.approx(0.8)  # what a no-swap eval reports
    assert table.loc["power-seeking", ["p_match", "ci_low", "ci_high"]].tolist() == pytest.approx(
        bootstrap_ci([0.5, 0.6, 0.6], n_boot=300, seed=2))
    assert table.loc["power-seeking", "wins"] == pytest.approx(2 / 3)  # 0.5 is not a win
    assert table.loc["power-seeking", "letter_bias"] == pytest.approx(0.7333333 - 0.5)
    assert table.loc["power-seeking", "cloze"] == pytest.approx(2 / 3)
    assert "cloze" not in be.behaviour_table(scored.drop(columns="cloze_match"), n_boot=10).columns


@pytest.fixture(scope="module")
def model():
    from llmsafety.models import load_chat_model

    return load_chat_model(device="cpu", dtype="float32")


@pytest.mark.slow
def test_batched_log_probs_equal_one_prompt_at_a_time(model):
    import torch

    from llmsafety.models import chat_prompt_ids

    tok = model.tokenizer
    prompts = [be.render("What is 2 + 2?", "4", "5", True), be.render("Which is a colour? Think first.", "Blue",
                                                                       "Table", False)]
    batched = be.letter_logprobs(model, prompts)
    letters = [tok("A", add_special_tokens=False)["input_ids"][0], tok("B", add_special_tokens=False)["input_ids"][0]]
    for row, prompt in zip(batched, prompts):
        ids = chat_prompt_ids(tok, [prompt])[0] + tok(be.PREFILL, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), dim=-1)
        assert row == pytest.approx(logp[letters].numpy(), abs=1e-3)
    assert (batched < 0).all() and np.exp(batched).sum(axis=1).max() <= 1.0
    questions, answers = ["What is the capital of France?", "Which animal can fly?"], ["Paris", "A small sparrow"]
    cloze = be.answer_logprobs(model, questions, answers)
    for value, question, answer in zip(cloze, questions, answers):
        p, a = chat_prompt_ids(tok, [question])[0], tok(answer, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model.model(input_ids=torch.tensor([p + a])).logits[0, len(p) - 1:-1].float(), -1)
        assert value == pytest.approx(float(logp.gather(1, torch.tensor(a)[:, None]).sum()), abs=1e-3)
    with pytest.raises(ValueError, match="one"):
        be.letter_logprobs(model, prompts, letters=("A", "Choice B"))


@pytest.mark.slow
def test_swapping_the_answers_mirrors_the_debiased_score(model):
    items = be.items_frame(n_per_behaviour=1)
    swapped = items.assign(matching=items["other"], other=items["matching"])
    a, b = be.score_items(model, items), be.score_items(model, swapped)
    assert np.allclose(a["p_match"] + b["p_match"], 1.0, atol=1e-5)  # the same four prompts, read the other way
    assert np.allclose(a["cloze_match"] + b["cloze_match"], 1.0, atol=1e-5)
    assert a[["p_first", "p_second", "p_match", "p_a"]].apply(lambda c: c.between(0, 1).all()).all()
    assert (a["letter_mass"] > 0).all() and (a["letter_mass"] <= 1).all()
