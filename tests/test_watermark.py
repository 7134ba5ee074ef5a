"""The green-list watermark (lesson 11): green lists, the processor, the detector, ROC, attacks.

Everything but the last section runs without a model, on small vocabularies and on the real
vocabulary size; ``transformers``' own ``WatermarkLogitsProcessor`` and ``WatermarkDetector`` are
the reference the module must agree with. The slow tests load the embedded SmolLM2-135M-Instruct
once (about 20 s together on a CPU).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from exercise_checks import fails as _fails
from transformers import PretrainedConfig, WatermarkDetector
from transformers.generation.logits_process import WatermarkLogitsProcessor

from llmsafety import watermark as wm
from llmsafety.exercises import check, default_compare, lesson11

V = 49152  # SmolLM2's vocabulary
CONFIG = wm.WatermarkConfig()


def _hf_detector(vocab_size: int, config: wm.WatermarkConfig, **kwargs) -> WatermarkDetector:
    # bos_token_id = the last id, which the test sequences never use (the detector strips a leading BOS)
    model_config = PretrainedConfig(vocab_size=vocab_size, bos_token_id=vocab_size - 1)
    return WatermarkDetector(model_config, "cpu", config.to_transformers(), **kwargs)


# --------------------------------------------------------------------------------------------
# Green lists
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vocab_size,gamma", [(V, 0.25), (100, 0.5), (37, 0.3)])
def test_green_lists_are_the_ones_transformers_draws(vocab_size, gamma):
    config = wm.WatermarkConfig(gamma=gamma)
    reference = WatermarkLogitsProcessor(vocab_size=vocab_size, device="cpu", greenlist_ratio=gamma,
                                         bias=config.delta, hashing_key=config.hash_key)
    for prev in [0, 1, 2, 13, vocab_size - 1]:
        theirs = reference._get_greenlist_ids(torch.tensor([7, prev])).numpy()  # seeded by the last token
        ours = wm.green_list(prev, vocab_size, config)
        assert np.array_equal(ours, theirs), (vocab_size, prev)
        assert ours.size == int(vocab_size * gamma) == wm.green_size(vocab_size, gamma)


def test_green_masks_are_fixed_per_token_and_unrelated_across_tokens_and_keys():
    first = wm.green_mask(42, V, CONFIG)
    assert first.dtype == bool and first.shape == (V,) and first.sum() == V // 4
    assert np.array_equal(first, wm.green_mask(42, V, CONFIG))  # what the detector recomputes
    # another token or another key: an unrelated list, overlapping as two random quarters do (V/16)
    for other in (wm.green_mask(43, V, CONFIG), wm.green_mask(42, V, wm.WatermarkConfig(hash_key=7)),
                  wm.green_mask(42, V, wm.WatermarkConfig(rng="numpy"))):
        overlap = int((first & other).sum())
        assert abs(overlap - V / 16) < 5 * math.sqrt(V / 16), overlap


def test_numpy_green_lists_follow_the_exercises_recipe():
    config = wm.WatermarkConfig(gamma=0.5, hash_key=11, rng="numpy")
    expected = np.random.default_rng(11 * 3).permutation(7)[:3]
    assert np.array_equal(wm.green_list(3, 7, config), expected)
    assert np.array_equal(wm.green_mask(3, 7, config), lesson11.green_mask(3, 7, 0.5, 11))


def test_config_is_checked_and_converts_to_transformers():
    for bad in [dict(gamma=0.0), dict(gamma=1.0), dict(delta=-1.0), dict(rng="random"), dict(hash_key=0)]:
        with pytest.raises(ValueError):
            wm.WatermarkConfig(**bad)
    hf = wm.WatermarkConfig(gamma=0.5, delta=1.5, hash_key=3).to_transformers()
    assert (hf.greenlist_ratio, hf.bias, hf.hashing_key, hf.seeding_scheme, hf.context_width) == (
        0.5, 1.5, 3, "lefthash", 1)
    with pytest.raises(ValueError, match="torch"):
        wm.WatermarkConfig(rng="numpy").to_transformers()


# --------------------------------------------------------------------------------------------
# The processor
# --------------------------------------------------------------------------------------------


def test_processor_adds_delta_to_each_rows_own_green_list_and_matches_transformers():
    vocab_size, config = 300, wm.WatermarkConfig(delta=1.5)
    processor = wm.GreenListLogitsProcessor(vocab_size, config)
    input_ids = torch.tensor([[5, 9, 17], [5, 9, 200], [1, 2, 17]])  # rows 0 and 2 share the last token
    scores = torch.randn(3, vocab_size, generator=torch.Generator().manual_seed(0))
    scores[1, :10] = -torch.inf  # filtered tokens stay filtered
    out = processor(input_ids, scores.clone())
    diff = out[:, 10:] - scores[:, 10:]  # the finite columns of every row
    for row, last in enumerate([17, 200, 17]):
        expected = torch.from_numpy(wm.green_mask(last, vocab_size, config)[10:]).float() * 1.5
        assert torch.allclose(diff[row], expected), row
    assert torch.isinf(out[1, :10]).all()
    assert torch.allclose(out[0] - scores[0], out[2] - scores[2])  # same last token, same bias
    reference = WatermarkLogitsProcessor(vocab_size=vocab_size, device="cpu", greenlist_ratio=config.gamma,
                                         bias=config.delta, hashing_key=config.hash_key)
    assert torch.equal(out, reference(input_ids, scores.clone()))


def test_processor_leaves_extra_logit_columns_alone():
    processor = wm.GreenListLogitsProcessor(10, wm.WatermarkConfig(gamma=0.5))
    out = processor(torch.tensor([[3]]), torch.zeros(1, 12))
    assert out[0, :10].sum().item() == 5 * 2.0 and out[0, 10:].tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


def _all_green(length: int, vocab_size: int, config: wm.WatermarkConfig, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    tokens = [int(rng.integers(0, vocab_size - 1))]
    for _ in range(length - 1):
        green = wm.green_list(tokens[-1], vocab_size, config)
        tokens.append(int(rng.choice(green[green != vocab_size - 1])))
    return tokens


def test_z_score_and_p_value():
    assert wm.z_score(16, 64, 0.25) == 0.0
    assert wm.z_score(40, 64, 0.25) == pytest.approx(24 / math.sqrt(12))
    assert math.isnan(wm.z_score(0, 0, 0.25)) and math.isnan(wm.p_value(float("nan")))
    assert wm.p_value(0.0) == 0.5 and wm.p_value(4.0) == pytest.approx(3.167e-5, rel=1e-3)
    assert wm.p_value(-2.0) == pytest.approx(1 - wm.p_value(2.0))


def test_detector_counts_green_tokens_after_the_first():
    vocab_size = 500
    tokens = _all_green(33, vocab_size, CONFIG)
    row = wm.detect([tokens, tokens[:1], []], vocab_size, CONFIG)
    assert row.loc[0, ["scored", "green"]].tolist() == [32, 32]  # the first token is context only
    assert row.loc[0, "z"] == pytest.approx(math.sqrt(32 * 0.75 / 0.25))  # all green: sqrt(T (1 - g) / g)
    assert bool(row.loc[0, "flagged"]) and row.loc[0, "p_value"] < 1e-9
    assert row.loc[1:, "scored"].tolist() == [0, 0] and row.loc[1:, "z"].isna().all()
    assert not row.loc[1:, "flagged"].any()
    flags = wm.score_tokens(tokens, vocab_size, CONFIG)
    assert flags.shape == (32,) and flags.all()
    assert wm.z_by_length(flags, 0.25)[-1] == pytest.approx(row.loc[0, "z"])
    assert wm.z_by_length(flags, 0.25)[0] == pytest.approx(math.sqrt(3))  # one green token of one


def test_detector_matches_transformers_watermark_detector():
    vocab_size = 1000
    rng = np.random.default_rng(1)
    sequences = [rng.integers(0, vocab_size - 1, size=40).tolist() for _ in range(5)]
    sequences += [_all_green(40, vocab_size, CONFIG, seed=s)[:20] + rng.integers(0, vocab_size - 1, 20).tolist()
                  for s in range(3)]  # half watermarked
    sequences.append([4, 8] * 20)  # one bigram repeated: what ignore_repeated_bigrams is for
    ids = torch.tensor(sequences)
    for ignore in (False, True):
        config = wm.WatermarkConfig(ignore_repeated_bigrams=ignore)
        theirs = _hf_detector(vocab_size, config, ignore_repeated_ngrams=ignore)(ids, return_dict=True)
        ours = wm.detect(sequences, vocab_size, config)
        assert ours["scored"].tolist() == theirs.num_tokens_scored.tolist()
        assert ours["green"].tolist() == theirs.num_green_tokens.tolist()
        assert np.allclose(ours["z"], theirs.z_score) and np.allclose(ours["p_value"], theirs.p_value)
    assert wm.detect([[4, 8] * 20], vocab_size, wm.WatermarkConfig(ignore_repeated_bigrams=True))["scored"][0] == 2


def test_plain_token_sequences_score_about_zero():
    rng = np.random.default_rng(0)
    rows = wm.detect([rng.integers(0, 4096, size=64).tolist() for _ in range(60)], 4096, CONFIG)
    assert abs(rows["z"].mean()) < 0.5 and 0.6 < rows["z"].std() < 1.4  # about standard normal
    assert not rows["flagged"].any()


def test_detect_texts_retokenizes_without_special_tokens():
    class Tokenizer:  # a stand-in: one id per character
        def __len__(self):
            return 128

        def __call__(self, text, add_special_tokens=True):
            assert add_special_tokens is False
            return {"input_ids": [ord(c) for c in text]}

    texts = ["hello world", "x"]
    rows = wm.detect_texts(texts, Tokenizer(), CONFIG)
    expected = wm.detect([[ord(c) for c in t] for t in texts], 128, CONFIG)
    pd.testing.assert_frame_equal(rows, expected)


# --------------------------------------------------------------------------------------------
# ROC and AUC
# --------------------------------------------------------------------------------------------


def test_roc_auc_agrees_with_scikit_learn_including_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(10):
        pos, neg = np.round(rng.normal(1, 1, 15), 0), np.round(rng.normal(0, 1, 12), 0)
        labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
        assert wm.roc_auc(pos, neg) == pytest.approx(metrics.roc_auc_score(labels, np.r_[pos, neg]))
    assert wm.roc_auc([3.0, np.nan], [1.0]) == 1.0 and math.isnan(wm.roc_auc([np.nan], [1.0]))


def test_roc_curve_runs_from_nothing_flagged_to_everything():
    curve = wm.roc_curve([3.0, 2.0, np.nan], [2.0, 0.0])
    assert curve["threshold"].tolist() == [np.inf, 3.0, 2.0, 0.0]
    assert curve["tpr"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3])  # NaN never flagged
    assert curve["fpr"].tolist() == [0.0, 0.0, 0.5, 1.0]
    with pytest.raises(ValueError):
        wm.roc_curve([], [1.0])


def test_auc_interval_is_stratified_and_reproducible():
    assert wm.auc_ci([5.0, 6.0], [1.0, 2.0, 3.0], n_boot=200) == (1.0, 1.0, 1.0)
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(1, 1, 20), rng.normal(0, 1, 20)
    auc, low, high = wm.auc_ci(pos, neg, n_boot=500, seed=1)
    assert auc == wm.roc_auc(pos, neg) and low < auc < high and 0 <= low and high <= 1
    assert wm.auc_ci(pos, neg, n_boot=500, seed=1) == (auc, low, high)
    assert all(math.isnan(x) for x in wm.auc_ci([], [1.0]))


# --------------------------------------------------------------------------------------------
# Attacks
# --------------------------------------------------------------------------------------------


def test_substitute_words_replaces_the_asked_share_and_keeps_the_rest():
    text = "The council met on Monday, and 12 members voted for the new bridge."
    assert wm.substitute_words(text, 0.0, seed=0) == text
    out = wm.substitute_words(text, 0.5, seed=0)
    assert out == wm.substitute_words(text, 0.5, seed=0) != wm.substitute_words(text, 0.5, seed=1)
    before, after = text.split(), out.split()
    assert len(before) == len(after)  # word for word: spacing, punctuation and numbers stay
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(changed) == round(0.5 * 12)  # 12 words of letters
    assert "12" in after and out.endswith(".") and "," in out
    for a, b in changed:
        assert a[0].isupper() == b[0].isupper()
        assert b.strip(",.").lower() in wm.COMMON_WORDS
    everything = wm.substitute_words(text, 1.0, seed=0)
    assert all(a.lower() != b.lower() for a, b in zip(before, everything.split()) if a != "12")
    with pytest.raises(ValueError):
        wm.substitute_words(text, 1.5, seed=0)


def test_course_data():
    assert len(wm.WRITING_PROMPTS) == len(set(wm.WRITING_PROMPTS)) >= 48
    assert len(set(wm.COMMON_WORDS)) == len(wm.COMMON_WORDS) and all(w.isalpha() for w in wm.COMMON_WORDS)
    assert "{text}" in wm.PARAPHRASE_INSTRUCTION


# --------------------------------------------------------------------------------------------
# The exercises: references agree with the library, wrong answers fail saying what differs
# --------------------------------------------------------------------------------------------


def _library(name, *args):
    if name == "green_mask":
        prev, vocab_size, gamma, key = args
        return wm.green_mask(prev, vocab_size, wm.WatermarkConfig(gamma=gamma, hash_key=key, rng="numpy"))
    if name == "add_green_bias":
        logits, prev, gamma, delta, key = args
        processor = wm.GreenListLogitsProcessor(logits.shape[1], wm.WatermarkConfig(gamma, delta, key, rng="numpy"))
        out = processor(torch.tensor(np.asarray(prev))[:, None], torch.tensor(logits, dtype=torch.float64))
        return out.numpy()
    if name == "z_score":
        z = wm.z_score(*args)
        return z, wm.p_value(z)
    if name == "detect_tokens":
        tokens, vocab_size, gamma, key = args
        row = wm.detect([tokens], vocab_size, wm.WatermarkConfig(gamma=gamma, hash_key=key, rng="numpy")).iloc[0]
        return {"scored": int(row["scored"]), "green": int(row["green"]), "z": float(row["z"])}
    if name == "roc_auc":
        return wm.roc_auc(*args)
    raise KeyError(name)


@pytest.mark.parametrize("exercise", lesson11.EXERCISES, ids=lambda e: e.name)
def test_lesson11_reference_passes_and_agrees_with_the_library(exercise, capsys):
    assert check(exercise.reference, exercise)
    for i, args in enumerate(exercise.all_cases(n_random=20, seed=1), start=1):
        difference = default_compare(exercise.reference(*args), _library(exercise.name, *args))
        assert difference is None, f"{exercise.name} case {i}: {difference}"


def test_lesson11_wrong_answers_fail_naming_what_differs(capsys):
    def mask_round(prev, vocab_size, gamma, key):  # round() instead of rounding down
        perm = np.random.default_rng(key * prev).permutation(vocab_size)
        mask = np.zeros(vocab_size, dtype=bool)
        mask[perm[: round(gamma * vocab_size)]] = True
        return mask

    out = _fails(mask_round, "green_mask", capsys)
    assert "case 3" in out and "entries differ" in out
    out = _fails(lambda prev, v, g, k: lesson11.green_mask(prev, v, g, 1), "green_mask", capsys)
    assert "case 1" in out  # the key left out of the seed
    out = _fails(lambda lg, prev, g, d, k: lesson11.add_green_bias(lg, np.full_like(prev, prev[0]), g, d, k),
                 "add_green_bias", capsys)
    assert "case 1" in out and "entries differ" in out  # the first row's list used for every row
    def z_without_one_minus_gamma(green, scored, gamma):
        if not scored:
            return float("nan"), float("nan")
        z = (green - gamma * scored) / math.sqrt(scored * gamma)
        return z, 0.5 * math.erfc(z / math.sqrt(2))

    out = _fails(z_without_one_minus_gamma, "z_score", capsys)
    assert "case 2" in out and "at index 0: off by" in out  # (1 - gamma) missing from the variance
    out = _fails(lambda toks, v, g, k: lesson11.detect_tokens([0] + list(toks), v, g, k), "detect_tokens", capsys)
    assert "case 1" in out and "at key 'scored': off by 1" in out  # the first token scored too
    out = _fails(lambda p, n: float(np.mean(np.asarray(p)[:, None] > np.asarray(n)[None, :])), "roc_auc", capsys)
    assert "case 3" in out and "off by -0.5" in out  # ties counted as losses


# --------------------------------------------------------------------------------------------
# The real model
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    from llmsafety.models import load_chat_model

    return load_chat_model(device="cpu", dtype="float32")


@pytest.mark.slow
def test_greedy_generation_matches_transformers_watermark_token_for_token(model):
    from llmsafety.models import chat_prompt_ids

    config = wm.WatermarkConfig(delta=4.0)
    prompts = list(wm.WRITING_PROMPTS[:2])
    ours = wm.generate_texts(model, prompts, config, max_new_tokens=12, temperature=0)
    plain = wm.generate_texts(model, prompts, None, max_new_tokens=12, temperature=0)
    tok = model.tokenizer
    batch = tok.pad({"input_ids": chat_prompt_ids(tok, prompts)}, padding=True, return_tensors="pt")
    out = model.model.generate(**batch, watermarking_config=config.to_transformers(), do_sample=False,
                               max_new_tokens=12, min_new_tokens=12, pad_token_id=tok.pad_token_id)
    theirs = out[:, batch["input_ids"].shape[1]:].tolist()
    assert ours["tokens"].tolist() == theirs
    assert ours["tokens"].tolist() != plain["tokens"].tolist()  # a bias of 4 changes greedy choices
    assert all(len(t) == 12 for t in ours["tokens"])
    z_ours = wm.detect(ours["tokens"], model.model.config.vocab_size, config)["z"]
    z_plain = wm.detect(plain["tokens"], model.model.config.vocab_size, config)["z"]
    assert (z_ours > z_plain).all()
    detector = WatermarkDetector(model.model.config, "cpu", config.to_transformers())
    assert np.allclose(detector(torch.tensor(theirs), return_dict=True).z_score, z_ours)


@pytest.mark.slow
def test_sampled_watermarked_text_is_detected_from_its_text_and_costs_likelihood(model):
    prompts = list(wm.WRITING_PROMPTS[:4])
    vocab_size = model.model.config.vocab_size
    marked = wm.generate_texts(model, prompts, CONFIG, max_new_tokens=32, seed=0)
    plain = wm.generate_texts(model, prompts, None, max_new_tokens=32, seed=0)
    assert all(len(t) == 32 for t in marked["tokens"]) and all(len(t) == 32 for t in plain["tokens"])
    z_marked = wm.detect_texts(marked["text"], model.tokenizer, CONFIG, vocab_size)["z"]
    z_plain = wm.detect_texts(plain["text"], model.tokenizer, CONFIG, vocab_size)["z"]
    assert wm.roc_auc(z_marked, z_plain) == 1.0 and z_marked.mean() > z_plain.mean() + 2, (z_marked, z_plain)
    nll_marked = wm.continuation_nlls(model, marked["prompt_ids"], marked["tokens"])
    nll_plain = wm.continuation_nlls(model, plain["prompt_ids"], plain["tokens"])
    assert [len(n) for n in nll_marked] == [32] * 4
    assert np.mean([n.mean() for n in nll_marked]) > np.mean([n.mean() for n in nll_plain])
    # batching does not change a sequence's NLLs (the padding is masked)
    alone = wm.continuation_nlls(model, marked["prompt_ids"][:1], marked["tokens"][:1])[0]
    assert np.allclose(alone, nll_marked[0], atol=1e-3)
    # the first token's NLL is the one the model gives it right after the prompt
    with torch.no_grad():
        logits = model.model(input_ids=torch.tensor([marked["prompt_ids"][0]])).logits[0, -1]
    first = -torch.log_softmax(logits.float(), dim=-1)[marked["tokens"][0][0]].item()
    assert nll_marked[0][0] == pytest.approx(first, abs=1e-3)
    # seeded: the same texts on every run
    again = [wm.generate_texts(model, prompts[:2], CONFIG, max_new_tokens=6, seed=3)["tokens"].tolist()
             for _ in range(2)]
    assert again[0] == again[1]


@pytest.mark.slow
def test_paraphrase_returns_one_rewrite_per_text(model):
    texts = ["The town opened a new library on Monday. Hundreds of residents came to borrow books."]
    out = wm.paraphrase(model, texts, max_new_tokens=24, seed=0)
    assert len(out) == 1 and isinstance(out[0], str) and out[0].strip() and out[0] != texts[0]
    assert out == wm.paraphrase(model, texts, max_new_tokens=24, seed=0)
