"""How different attacks are: from each other, and from every attack found before.

An automated red team that finds one jailbreak and repeats it a thousand times has found one
jailbreak. Red-teaming methods therefore reward *novelty* as well as success, and evaluations
report *diversity* next to the attack success rate. This module holds both kinds of measure.

Embedding measures (meaning), computed on sentence embeddings such as MiniLM's:

- :func:`global_novelty` -- 1 minus the cosine similarity of each new attack to the attacks
  already found: to the nearest one (``kind="nearest"``) or on average (``kind="mean"``). This is
  the novelty reward of curiosity-driven red teaming (Hong et al. 2024, arXiv 2402.19464) and
  DART's *global diversity*, measured against all attacks of earlier iterations (Jiang et al. 2024,
  arXiv 2407.03876v1). It keeps a red model from coming back to what it already found.
- :func:`batch_novelty` -- the same against the *other* attacks of one batch: it keeps the
  attacks sampled together from collapsing onto one prompt.
- :func:`embedding_diversity` -- the mean pairwise cosine distance of a set: one number for how
  spread out a set of attacks is.
- :func:`unique_clusters` -- how many *different* attacks a set holds: greedy clusters whose
  members lie within cosine similarity 0.7 of the cluster's first member, the count the GFlowNet
  red-teaming paper reports as "unique attacks" (Lee et al. 2024, arXiv 2405.18540).
- :func:`vendi_score` -- the effective number of distinct items: the exponential of the entropy of
  the eigenvalues of the similarity matrix (Friedman & Dieng 2023, arXiv 2210.02410), from the
  ``vendi-score`` package. n for n orthogonal items, 1 for n copies of one.

Text measures (surface form), independent of any model:

- :func:`self_bleu` -- the mean BLEU of each text against all the others as references
  (Zhu et al. 2018, Texygen, arXiv 1802.01886). High self-BLEU means the texts share their
  n-grams: *low* diversity.
- :func:`distinct_n` -- unique n-grams over all n-grams of the set (Li et al. 2016,
  arXiv 1510.03055). High distinct-n means *high* diversity.

:func:`diversity_report` gathers them into one dict.

Cosine similarity lies in [-1, 1], so novelty and cosine distance lie in [0, 2]; for sentence
embeddings of natural text the similarities are almost always positive, so in practice both lie
in [0, 1]: 0 for the same meaning, about 1 for unrelated text.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

NoveltyKind = Literal["nearest", "mean"]
NOVELTY_KINDS: tuple[str, ...] = ("nearest", "mean")


# --------------------------------------------------------------------------------------------
# Embedding inputs
# --------------------------------------------------------------------------------------------


def _as_matrix(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy array, torch tensor or nested list) as a float64 matrix [rows, dim]."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch.Tensor, without importing torch
        # .double(): numpy has no bfloat16, and float64 keeps float64 tensors exact.
        x = x.detach().cpu().double().numpy()
    try:
        matrix = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric matrix [n, d]; got {type(x).__name__}: {err}") from err
    if matrix.ndim != 2:
        raise ValueError(
            f"{name} must be a matrix of shape [n, d], got shape {matrix.shape}; "
            "for a single vector v pass v[None, :]"
        )
    if not np.isfinite(matrix).all():
        bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
        raise ValueError(f"{name} has NaN or infinite values in rows {bad[:10].tolist()}")
    return matrix


def _unit_rows(matrix: np.ndarray, name: str) -> np.ndarray:
    """Rows scaled to unit length, so that dot products are cosine similarities."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ValueError(
            f"{name} has zero vectors in rows {zero[:10].tolist()}: a zero vector has no "
            "direction, so its cosine similarity is undefined; drop those rows"
        )
    return matrix / norms


def _check_kind(kind: str) -> None:
    if kind not in NOVELTY_KINDS:
        raise ValueError(f"kind must be one of {NOVELTY_KINDS}, got {kind!r}")


# --------------------------------------------------------------------------------------------
# Novelty and embedding diversity
# --------------------------------------------------------------------------------------------


def global_novelty(
    embeddings: Any, archive: Any, kind: NoveltyKind = "nearest"
) -> np.ndarray:
    """Novelty of each new attack with respect to the attacks already found.

    Parameters
    ----------
    embeddings
        The new attacks' embeddings, shape [n, d] (numpy array or torch tensor); any length,
        rows are normalised here.
    archive
        The attacks found before: embeddings of shape [m, d]. For DART's global diversity pass
        the embeddings of all attacks of earlier iterations.
    kind
        ``"nearest"``: 1 - the highest cosine similarity to any archived attack, so a new attack
        is novel only if it is far from *every* earlier one (Hong et al. 2024).
        ``"mean"``: 1 - the mean cosine similarity to the archived attacks (DART).

    Returns
    -------
    numpy.ndarray
        float64, shape [n]. With an empty archive every attack is novel (1.0): nothing has been
        seen yet, and 1.0 is the novelty of a vector orthogonal to everything, so the first
        iteration is rewarded like an unrelated attack rather than not at all.
    """
    _check_kind(kind)
    new = _as_matrix(embeddings, "embeddings")
    if isinstance(archive, (list, tuple)) and not archive:
        archive = np.zeros((0, 0))
    seen = _as_matrix(archive, "archive")
    # An empty list has no dimension: shape (0, 0).
    if seen.shape != (0, 0) and seen.shape[1] != new.shape[1]:
        raise ValueError(
            f"embeddings have dimension {new.shape[1]} (shape {new.shape}) but the archive has "
            f"dimension {seen.shape[1]} (shape {seen.shape}); embed both with the same model"
        )
    if seen.shape[0] == 0:
        return np.ones(new.shape[0], dtype=np.float64)
    new, seen = _unit_rows(new, "embeddings"), _unit_rows(seen, "archive")
    if kind == "nearest":
        similarity = (new @ seen.T).max(axis=1)
    else:
        # mean_j <a, b_j> = <a, mean_j b_j>: the same number without the [n, m] matrix.
        similarity = new @ seen.mean(axis=0)
    # Rounding can push a cosine a hair past +-1; novelty stays in [0, 2].
    return 1.0 - np.clip(similarity, -1.0, 1.0)


def batch_novelty(embeddings: Any, kind: NoveltyKind = "nearest") -> np.ndarray:
    """Novelty of each item against the *other* items of the same batch.

    ``kind="nearest"`` (the default) is 1 - the cosine similarity to the nearest other item, so
    two copies of one prompt both get 0; ``"mean"`` is 1 - the mean similarity to the others.
    Needs at least 2 items. Returns float64, shape [n].
    """
    _check_kind(kind)
    batch = _as_matrix(embeddings, "embeddings")
    n = batch.shape[0]
    if n < 2:
        raise ValueError(f"batch_novelty needs at least 2 embeddings to compare, got {n}")
    unit = _unit_rows(batch, "embeddings")
    similarity = unit @ unit.T
    if kind == "nearest":
        np.fill_diagonal(similarity, -np.inf)  # an item is not its own neighbour
        nearest = similarity.max(axis=1)
    else:
        nearest = (similarity.sum(axis=1) - np.diagonal(similarity)) / (n - 1)
    return 1.0 - np.clip(nearest, -1.0, 1.0)


def embedding_diversity(embeddings: Any) -> float:
    """Mean cosine distance (1 - cos) over all distinct pairs; needs at least 2 embeddings.

    1.0 for an orthogonal set, 0.0 for copies of one vector.
    """
    matrix = _as_matrix(embeddings, "embeddings")
    n = matrix.shape[0]
    if n < 2:
        raise ValueError(f"embedding_diversity needs at least 2 embeddings to form a pair, got {n}")
    unit = _unit_rows(matrix, "embeddings")
    # sum_{i,j} cos(i, j) = |sum_i u_i|^2 and the n diagonal terms are 1, so the sum over
    # ordered distinct pairs is |s|^2 - n: O(n d) instead of an [n, n] matrix.
    total = unit.sum(axis=0)
    mean_similarity = (float(total @ total) - n) / (n * (n - 1))
    return 1.0 - mean_similarity


def unique_clusters(embeddings: Any, threshold: float = 0.7) -> np.ndarray:
    """Greedy clustering in the given order: each item joins the first cluster whose *first*
    member has cosine similarity >= ``threshold`` with it, else it starts a new cluster.

    Returns the cluster index of each item (int64, shape [n]); ``labels.max() + 1`` is the number
    of unique attacks. Greedy and order-dependent by design (it is the simple count papers
    report); sort the items first (e.g. by harm) when the order should not be arbitrary.
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    unit = _unit_rows(_as_matrix(embeddings, "embeddings"), "embeddings")
    centres: list[int] = []  # index of each cluster's first member
    labels = np.empty(unit.shape[0], dtype=np.int64)
    for i, row in enumerate(unit):
        if centres:
            similarity = unit[centres] @ row
            best = int(np.argmax(similarity >= threshold))  # first cluster close enough
            if similarity[best] >= threshold:
                labels[i] = best
                continue
        labels[i] = len(centres)
        centres.append(i)
    return labels


def vendi_score(embeddings: Any) -> float:
    """The Vendi score of a set under the cosine-similarity kernel: in [1, n].

    Computed by ``vendi_score.vendi.score_dual`` (the eigenvalues of X^T X / n, which are the
    non-zero eigenvalues of the [n, n] kernel matrix K / n: cheap for many short attacks).
    """
    from vendi_score import vendi

    unit = _unit_rows(_as_matrix(embeddings, "embeddings"), "embeddings")
    return float(vendi.score_dual(unit, normalize=False))


# --------------------------------------------------------------------------------------------
# Text diversity
# --------------------------------------------------------------------------------------------

# Words (letters, digits, underscore) and single punctuation marks, as most BLEU tokenisers do.
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lowercased word and punctuation tokens: ``"Hi, there!"`` -> ``["hi", ",", "there", "!"]``."""
    return _TOKEN.findall(text.lower())


def _check_texts(texts: Any, name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise ValueError(f"{name} must be a list of strings, got one string: wrap it in a list")
    try:
        texts = list(texts)
    except TypeError:
        raise ValueError(f"{name} must be a list of strings, got {type(texts).__name__}") from None
    not_str = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if not_str:
        i = not_str[0]
        raise ValueError(f"{name}[{i}] is {type(texts[i]).__name__}, not str")
    return texts


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Unique n-grams over all n-grams of the set of texts (Li et al. 2016).

    1.0 when no n-gram repeats anywhere in the set; 0.0 when there are no n-grams at all
    (every text shorter than ``n`` tokens: nothing distinct was said).
    """
    texts = _check_texts(texts)
    if not texts:
        raise ValueError("distinct_n needs at least one text, got none")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        counts.update(_ngrams(tokenize(text), n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


# NLTK's SmoothingFunction().method1 epsilon, which Texygen's self-BLEU uses.
_BLEU_EPSILON = 0.1


def _bleu_from_counts(
    matches: Sequence[int], totals: Sequence[int], length: int, reference_length: int
) -> float:
    """Sentence BLEU from clipped n-gram matches and n-gram totals of orders 1..n.

    Uniform weights; a precision with no match becomes epsilon / total (smoothing method 1 of
    Chen & Cherry 2014); no unigram match at all gives 0, as in NLTK.
    """
    if length == 0 or matches[0] == 0:
        return 0.0
    log_precision = 0.0
    for match, total in zip(matches, totals):
        # A text shorter than the order has no n-grams of it: total 0 counts as 1, as in NLTK.
        log_precision += math.log((match if match else _BLEU_EPSILON) / max(total, 1))
    brevity = 1.0 if length > reference_length else math.exp(1.0 - reference_length / length)
    return brevity * math.exp(log_precision / len(matches))


def sentence_bleu(hypothesis: str, references: Sequence[str], n: int = 4) -> float:
    """BLEU of one text against references: n-gram precision up to ``n``, brevity penalty.

    The reference length is the one closest to the hypothesis's (the shorter on a tie), and a
    hypothesis n-gram counts at most as often as it appears in any single reference.
    """
    if not isinstance(hypothesis, str):
        raise ValueError(f"hypothesis must be a string, got {type(hypothesis).__name__}")
    references = _check_texts(references, "references")
    if not references:
        raise ValueError("sentence_bleu needs at least one reference, got none")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    hyp = tokenize(hypothesis)
    refs = [tokenize(r) for r in references]
    matches, totals = [], []
    for order in range(1, n + 1):
        hyp_counts = _ngrams(hyp, order)
        most_in_a_ref: Counter[tuple[str, ...]] = Counter()
        for ref in refs:
            most_in_a_ref |= _ngrams(ref, order)  # |: element-wise max
        matches.append(sum(min(c, most_in_a_ref[g]) for g, c in hyp_counts.items()))
        totals.append(sum(hyp_counts.values()))
    ref_length = min((len(r) for r in refs), key=lambda r: (abs(r - len(hyp)), r))
    return _bleu_from_counts(matches, totals, len(hyp), ref_length)


def self_bleu(
    texts: Sequence[str], n: int = 4, sample: int | None = None, seed: int = 0
) -> float:
    """Mean BLEU of each text against all the other texts as references (Texygen).

    Parameters
    ----------
    texts
        At least 2 texts.
    n
        Highest n-gram order (uniform weights over 1..n).
    sample
        Score only this many texts, drawn at random with ``seed`` (each still against *all*
        the others), to bound the cost on large sets; ``None`` scores every text.

    Returns
    -------
    float
        In [0, 1]: 1 when all texts are the same, 0 when no two share a word.
    """
    texts = _check_texts(texts)
    if len(texts) < 2:
        raise ValueError(
            f"self_bleu needs at least 2 texts (each is compared with the others), got {len(texts)}"
        )
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if sample is not None and (not isinstance(sample, int) or sample < 1):
        raise ValueError(f"sample must be a positive integer or None, got {sample!r}")
    tokens = [tokenize(t) for t in texts]
    counts = [[_ngrams(toks, order) for order in range(1, n + 1)] for toks in tokens]

    # For each n-gram, its highest count in any one text (and which text) and the second
    # highest: the highest count among the *other* texts is then known without re-scanning
    # them, which makes the whole score linear instead of quadratic in the number of texts.
    best: list[dict[tuple[str, ...], tuple[int, int, int]]] = [{} for _ in range(n)]
    for index, per_order in enumerate(counts):
        for order_best, grams in zip(best, per_order):
            for gram, c in grams.items():
                top, owner, second = order_best.get(gram, (0, -1, 0))
                if c > top:
                    order_best[gram] = (c, index, top)
                elif c > second:
                    order_best[gram] = (top, owner, c)

    lengths = Counter(len(t) for t in tokens)
    chosen = range(len(texts))
    if sample is not None and sample < len(texts):
        chosen = sorted(random.Random(seed).sample(range(len(texts)), sample))
    scores = []
    for index in chosen:
        matches, totals = [], []
        for order_best, grams in zip(best, counts[index]):
            hits = 0
            for gram, c in grams.items():
                top, owner, second = order_best[gram]
                hits += min(c, second if owner == index else top)
            matches.append(hits)
            totals.append(sum(grams.values()))
        length = len(tokens[index])
        other_lengths = [L for L, k in lengths.items() if k > (1 if L == length else 0)]
        ref_length = min(other_lengths, key=lambda r: (abs(r - length), r))
        scores.append(_bleu_from_counts(matches, totals, length, ref_length))
    return float(np.mean(scores))


# --------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------


def diversity_report(
    texts: Sequence[str],
    embeddings: Any = None,
    *,
    archive: Any = None,
    sample: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """All diversity measures of a set of attacks in one dict.

    Always: ``n``, ``self_bleu`` (lower = more diverse; ``sample``/``seed`` passed on),
    ``distinct_1``, ``distinct_2`` (higher = more diverse). With ``embeddings`` ([n, d], one row
    per text): ``embedding_diversity``, ``batch_novelty`` (mean nearest-neighbour novelty in
    the set), ``unique_clusters`` (at cosine 0.7, in the given order) and ``vendi_score``. With
    ``archive`` too: ``global_novelty`` (mean nearest novelty against it).
    """
    texts = _check_texts(texts)
    report: dict[str, float] = {
        "n": len(texts),
        "self_bleu": self_bleu(texts, sample=sample, seed=seed),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
    }
    if embeddings is not None:
        matrix = _as_matrix(embeddings, "embeddings")
        if matrix.shape[0] != len(texts):
            raise ValueError(
                f"got {len(texts)} texts but {matrix.shape[0]} embeddings (shape {matrix.shape})"
            )
        report["embedding_diversity"] = embedding_diversity(matrix)
        report["batch_novelty"] = float(batch_novelty(matrix).mean())
        report["unique_clusters"] = int(unique_clusters(matrix).max() + 1)
        report["vendi_score"] = vendi_score(matrix)
        if archive is not None:
            report["global_novelty"] = float(global_novelty(matrix, archive).mean())
    elif archive is not None:
        raise ValueError("archive given without embeddings: global novelty needs the texts' embeddings")
    return report
