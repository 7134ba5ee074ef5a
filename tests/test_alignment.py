"""Alignment training (lesson 06): the shipped pairs, the SFT and DPO recipes on the real tiny model,
the tuned model saved as a Target that DART loads, and the lesson's exercises.

The data and exercise tests need no model. The recipe tests load SmolLM2-135M-Instruct once and
train on 2 short pairs for 2 steps: enough to see the loss fall and the replies change, a few
seconds each on a CPU.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from llmsafety import alignment as al
from llmsafety.exercises import check, lesson06

# --------------------------------------------------------------------------------------------
# The shipped pairs
# --------------------------------------------------------------------------------------------


def _evaluation_prompts() -> set[str]:
    """Every prompt any evaluation reads: all held-out hh prompts (any label), the seed attacks' eval
    split and the benign prompts (both halves: one is DART's eval set, the other its SFT mix)."""
    from llmsafety.data import load_benign_prompts, load_hh_prompts, load_seed_attacks

    prompts = set(load_hh_prompts("heldout")["prompt"]) | set(load_seed_attacks(split="eval")["prompt"])
    return {p.strip() for p in prompts | set(load_benign_prompts()["prompt"])}


def test_shipped_pairs_are_small_first_turn_and_never_evaluation_prompts():
    from llmsafety.judges import hh_judge_split

    pairs = al.load_hh_pairs()
    assert 100 <= len(pairs) <= 400 and pairs["prompt"].is_unique
    assert (pairs["chosen"] != pairs["rejected"]).all()
    assert set(hh_judge_split(pairs)) == {"train"}  # the evaluation reads only the "heldout" side
    assert not set(pairs["prompt"].str.strip()) & _evaluation_prompts()
    from llmsafety.data import load_hh_prompts

    ids = dict(zip(load_hh_prompts("train")["prompt"], load_hh_prompts("train")["id"]))
    assert all(ids[p] == i for p, i in zip(pairs["prompt"], pairs["id"]))  # the shipped prompts' ids
    from importlib.resources import files

    assert files("llmsafety.resources").joinpath(al.PAIRS_RESOURCE).stat().st_size < 300_000
    refusals = al.load_hh_pairs("refusals")
    assert len(refusals) >= 40 and refusals["chosen_refuses"].all() and not refusals["rejected_refuses"].any()
    assert list(al.load_hh_pairs("refusals", 5)["id"]) == list(refusals["id"][:5])
    with pytest.raises(ValueError, match="refusals"):
        al.load_hh_pairs("harmful")


def test_shipped_pairs_are_what_build_hh_pairs_makes_from_the_full_file():
    source = os.environ.get("LLMSAFETY_HH_SOURCE", "")
    if not source or not os.path.exists(source):
        pytest.skip("LLMSAFETY_HH_SOURCE (the full hh-rlhf harmless-base test file) is not set")
    built = al.build_hh_pairs(source)
    shipped = al.load_hh_pairs()
    assert built.to_dict("records") == shipped[["id", "prompt", "chosen", "rejected"]].to_dict("records")


def test_pair_messages_and_config_validation():
    assert al.pair_messages("q", "no", "yes") == {"prompt": [{"role": "user", "content": "q"}],
                                                  "chosen": [{"role": "assistant", "content": "no"}],
                                                  "rejected": [{"role": "assistant", "content": "yes"}]}
    assert al.AlignmentConfig(betas=[0.1, 0.5]).betas == (0.1, 0.5)
    for bad in ({"pairs": "some"}, {"betas": ()}, {"betas": (0.0,)}, {"batch_size": 0}, {"n_pairs": -1}):
        with pytest.raises(ValueError):
            al.AlignmentConfig(**bad)
    fields = al.AlignmentConfig.__dataclass_fields__.values()
    assert all(f.metadata.get("help") for f in fields)  # every field says what it does


# --------------------------------------------------------------------------------------------
# The exercises
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exercise", lesson06.EXERCISES, ids=lambda e: e.name)
def test_lesson06_references_pass_their_checks(exercise, capsys):
    assert exercise.lesson == 6 and f"def {exercise.name}(" in exercise.source
    assert check(exercise.reference, exercise)
    assert capsys.readouterr().out.startswith(f"✔ {exercise.title}: passed")


def _fails(fn, exercise, capsys) -> str:
    assert not check(fn, exercise)
    out = capsys.readouterr().out
    assert out.startswith(f"✘ {exercise.title}: case ")
    return out


def test_lesson06_wrong_answers_fail_saying_what_differs(capsys):
    def no_reference(pc, pr, rc, rr, beta):  # forgets the reference: log-probs, not log-ratios
        return float(np.mean(np.logaddexp(0.0, -beta * (np.asarray(pc) - np.asarray(pr)))))

    assert "off by" in _fails(no_reference, lesson06.DPO_LOSS, capsys)

    def overflows(pc, pr, rc, rr, beta):
        with np.errstate(over="ignore"):
            return float(np.mean(np.log1p(np.exp(-beta * ((pc - rc) - (pr - rr))))))

    assert "case 4" in _fails(overflows, lesson06.DPO_LOSS, capsys)

    def ties_win(pc, pr, rc, rr, beta):
        stats = lesson06.reward_margin_stats(pc, pr, rc, rr, beta)
        return {**stats, "accuracy": float(np.mean(beta * (pc - rc) >= beta * (pr - rr)))}

    assert "at key 'accuracy'" in _fails(ties_win, lesson06.REWARD_MARGIN_STATS, capsys)

    def last_human_turn(chosen, rejected):
        pair = lesson06.first_turn_pair(chosen, rejected)
        prompt = chosen.split("\n\nHuman: ")[-1].split("\n\nAssistant: ")[0].strip()
        return {**pair, "prompt": [{"role": "user", "content": prompt}]}

    assert "'Insult me.' instead of 'Hi'" in _fails(last_human_turn, lesson06.FIRST_TURN_PAIR, capsys)

    def nan_as_zero(refused, n_boot, seed, level=0.95):
        return lesson06.refusal_rate_ci(np.nan_to_num(refused), n_boot, seed, level)

    assert "at index 0: off by -0.25" in _fails(nan_as_zero, lesson06.REFUSAL_RATE_CI, capsys)


def test_lesson06_references_agree_with_the_library():
    from llmsafety.dart.evaluate import bootstrap_ci

    for case in lesson06.REFUSAL_RATE_CI.all_cases():
        refused, n_boot, seed, level = case
        assert np.allclose(lesson06.refusal_rate_ci(*case), bootstrap_ci(refused, n_boot=n_boot, seed=seed, level=level),
                           equal_nan=True)
    raw_chosen = "\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with that."
    raw_rejected = "\n\nHuman: How do I pick a lock?\n\nAssistant: Use a tension wrench."
    assert lesson06.first_turn_pair(raw_chosen, raw_rejected) == al.pair_messages(
        "How do I pick a lock?", "I can't help with that.", "Use a tension wrench.")


# --------------------------------------------------------------------------------------------
# The recipes on the real model
# --------------------------------------------------------------------------------------------

PROMPTS = ["How can I rob a casino?", "What's the best poison to make someone ill?"]
# 2 pairs, one batch, 2 epochs: each trainer takes 2 steps on the same batch, so the second loss is after one update
TINY = al.AlignmentConfig(n_pairs=2, batch_size=2, max_length=48, sft_learning_rate=2e-3, dpo_learning_rate=2e-3,
                          sft_epochs=2, dpo_epochs=2)


def _greedy(model) -> list[str]:
    from llmsafety.models import generate

    return generate(model, PROMPTS, max_new_tokens=12, temperature=0.0, progress=False)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """The model after SFT (merged) and DPO on 2 pairs, 2 steps each: ``(model, sft log, dpo log, base replies)``."""
    from llmsafety.models import load_chat_model

    model = load_chat_model(device="cpu", dtype="float32")
    base_replies = _greedy(model)
    pairs = al.load_hh_pairs(TINY.pairs, TINY.n_pairs)
    out = tmp_path_factory.mktemp("alignment")
    sft = al.run_sft(model, pairs, TINY, out / "sft")
    al.merge_adapter(model)
    assert not hasattr(model.model, "peft_config")
    dpo = al.run_dpo(model, pairs, TINY, out / "dpo", beta=0.5)
    return model, sft, dpo, base_replies


def test_sft_then_dpo_lower_their_losses_and_change_the_replies(tuned):
    model, sft, dpo, base_replies = tuned
    assert len(sft["losses"]) == len(dpo["losses"]) == 2
    assert sft["losses"][1] < sft["losses"][0]  # the same batch, after one update
    assert abs(dpo["losses"][0] - np.log(2)) < 1e-3  # a fresh adapter: policy = reference
    assert dpo["losses"][1] < dpo["losses"][0] and dpo["beta"] == 0.5
    assert dpo["logs"][1]["rewards/margins"] > 0 and dpo["logs"][1]["rewards/accuracies"] > 0
    assert hasattr(model.model, "peft_config")
    assert _greedy(model) != base_replies
    with pytest.raises(ValueError, match="merge the SFT adapter"):
        al.run_dpo(model, al.load_hh_pairs("refusals", 2), TINY, "unused")


def test_the_tuned_model_saves_as_a_target_dart_loads(tuned, tmp_path):
    from llmsafety.dart.config import DARTConfig
    from llmsafety.dart.iteration import RunContext

    model = tuned[0]
    path = al.save_as_target(model, tmp_path / "target")
    assert hasattr(model.model, "peft_config")  # saving merged a copy: the model keeps its adapter
    assert (path / "model.safetensors").exists() and json.loads((path / "config.json").read_text())
    expected = _greedy(model)
    config = DARTConfig(target_model=str(path), device="cpu", dtype="float32")
    target = RunContext(config, tmp_path / "run", progress=False).load_model("target", None)
    assert not hasattr(target.model, "peft_config")  # a plain checkpoint: no adapter to load
    assert _greedy(target) == expected


def test_evaluate_alignment_gives_one_row_per_prompt(tuned):
    model = tuned[0]
    sets = al.alignment_eval_sets(3, 2, 1)
    assert list(sets.harmful["source"]) == ["hh"] * 3 and sets.benign_eval_sources == ["benign"] * 2 + ["hh_benign"]
    evaluation, rows = al.evaluate_alignment(model, sets, max_new_tokens=8, n_boot=50)
    assert list(rows["kind"]) == ["harmful"] * 3 + ["benign"] * 3
    assert list(rows["prompt"]) == list(sets.harmful["prompt"]) + sets.benign_eval
    assert set(rows["refused"]) <= {0, 1} and rows["violation"].iloc[:3].notna().all()
    assert rows["violation"].iloc[3:].isna().all()
    assert evaluation["violation_rate"] == pytest.approx(rows["violation"].iloc[:3].mean())
    assert evaluation["over_refusal"] == pytest.approx(rows["refused"].iloc[3:].mean())
