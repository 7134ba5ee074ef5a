"""Lesson 11 exercises: the green-list watermark and its detector, with numpy and no model.

Lesson 11 watermarks SmolLM2's text as Kirchenbauer et al. 2023 (arXiv 2301.10226) do, detects it,
measures what it costs and attacks it. Each piece of the method is written here in its simplest
form, on small vocabularies:

- the green list after a token: a permutation of the vocabulary seeded with ``key * prev_token``,
  its first ``int(gamma * vocab_size)`` entries green (``llmsafety.watermark.green_mask`` with
  ``rng="numpy"``; the library's default draws the same recipe with torch's generator, to agree
  with ``transformers``);
- the watermark itself: ``delta`` added to the green logits of each row
  (``llmsafety.watermark.GreenListLogitsProcessor``);
- the z-test on a green count and its one-sided p-value (``llmsafety.watermark.z_score``,
  ``p_value``);
- the detector over a token sequence (``llmsafety.watermark.detect``);
- the AUC of a detector score, ties counted half (``llmsafety.watermark.roc_auc``).

Token sequences are lists of ints; logits are ``[batch, vocab_size]`` float arrays.
"""

from __future__ import annotations

import math

import numpy as np

from llmsafety.exercises import Exercise

LESSON = 11

KEY = 15485863  # transformers' default key, the millionth prime


# --------------------------------------------------------------------------------------------
# 1. The green list after a token
# --------------------------------------------------------------------------------------------


def green_mask(prev_token: int, vocab_size: int, gamma: float, key: int) -> np.ndarray:
    """``[vocab_size]`` bool: True for the tokens that are green after ``prev_token``.

    Draw exactly so: ``rng = np.random.default_rng(key * prev_token)``, ``perm =
    rng.permutation(vocab_size)``; the first ``int(gamma * vocab_size)`` entries of ``perm`` are
    green (rounded down, as transformers does). A fresh generator per call: the detector must get
    the same list from the same token, whatever it computed before.
    """
    perm = np.random.default_rng(key * prev_token).permutation(vocab_size)  # [vocab_size]
    mask = np.zeros(vocab_size, dtype=bool)
    mask[perm[: int(gamma * vocab_size)]] = True
    return mask


def _random_green_case(rng: np.random.Generator) -> tuple[int, int, float, int]:
    vocab_size = int(rng.integers(3, 200))
    return (int(rng.integers(0, vocab_size)), vocab_size, float(rng.choice([0.1, 0.25, 0.5, 0.75])),
            int(rng.integers(1, 10**7)))


GREEN_MASK = Exercise(
    lesson=LESSON,
    name="green_mask",
    title="The green list after a token",
    difficulty=1,
    importance=3,
    minutes=8,
    reference=green_mask,
    cases=[
        (7, 20, 0.25, KEY),
        (7, 20, 0.25, KEY + 2),  # another key, another list: the key must enter the seed
        (3, 7, 0.5, 11),  # 3.5 green tokens: int() gives 3, round() would give 4
        (5, 10, 0.25, 1),  # 2.5: rounded down to 2, not up to 3
        (0, 12, 0.5, 99),  # previous token 0: seed 0 is a seed like any other
    ],
    random_case=_random_green_case,
)


# --------------------------------------------------------------------------------------------
# 2. The watermark: a bias on the green logits
# --------------------------------------------------------------------------------------------


def add_green_bias(logits: np.ndarray, prev_tokens: np.ndarray, gamma: float, delta: float, key: int) -> np.ndarray:
    """``logits`` ``[batch, vocab_size]`` with ``delta`` added where the token is green after that
    row's previous token ``prev_tokens[row]`` (``[batch]`` ints); every other logit unchanged.

    Each row has its own list, from its own previous token. Return a new array; a logit of
    ``-inf`` (a token some filter removed) stays ``-inf``.
    """
    logits = np.asarray(logits, dtype=float)
    out = logits.copy()
    for row, prev in enumerate(np.asarray(prev_tokens).tolist()):
        out[row] += delta * green_mask(int(prev), logits.shape[1], gamma, key)  # [vocab_size]
    return out


def _random_bias_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    batch, vocab_size = int(rng.integers(1, 5)), int(rng.integers(4, 60))
    logits = np.round(rng.normal(0, 3, size=(batch, vocab_size)), 3)
    return (logits, rng.integers(0, vocab_size, size=batch), float(rng.choice([0.25, 0.5])),
            float(rng.choice([0.5, 1.0, 2.0, 4.0])), int(rng.integers(1, 10**6)))


_LOGITS = np.array([[1.0, 0.0, -1.0, 2.0, 0.5, 0.0, 3.0, -2.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])

ADD_GREEN_BIAS = Exercise(
    lesson=LESSON,
    name="add_green_bias",
    title="The watermark: a bias on the green logits",
    difficulty=1,
    importance=3,
    minutes=8,
    reference=add_green_bias,
    cases=[
        (_LOGITS, np.array([3, 5]), 0.5, 2.0, KEY),  # two rows, two previous tokens, two lists
        (_LOGITS, np.array([3, 3]), 0.25, 1.5, KEY),  # the same previous token: the same list
        (_LOGITS, np.array([1, 6]), 0.5, 0.0, KEY),  # delta 0: no watermark, logits unchanged
        (np.array([[0.0, -np.inf, 1.0, -np.inf, 2.0, 0.5]]), np.array([4]), 0.5, 3.0, 7),  # -inf stays -inf
    ],
    random_case=_random_bias_case,
)


# --------------------------------------------------------------------------------------------
# 3. The z-test on a green count
# --------------------------------------------------------------------------------------------


def z_score(green: int, scored: int, gamma: float) -> tuple[float, float]:
    """``(z, p)``: how far ``green`` of ``scored`` tokens lies above chance, and the one-sided p-value.

    Without the watermark the count is about Binomial(T, gamma), ``T = scored``: ``z = (green -
    gamma T) / sqrt(T gamma (1 - gamma))`` and ``p = P(Z >= z) = erfc(z / sqrt(2)) / 2`` for a
    standard normal Z (one-sided: only *more* green tokens than chance point to the watermark).
    With nothing scored both are NaN.
    """
    if scored <= 0:
        return float("nan"), float("nan")
    z = (green - gamma * scored) / math.sqrt(scored * gamma * (1 - gamma))
    return float(z), 0.5 * math.erfc(z / math.sqrt(2))


def _random_z_case(rng: np.random.Generator) -> tuple[int, int, float]:
    scored = int(rng.integers(0, 300))
    return int(rng.integers(0, scored + 1)), scored, float(rng.choice([0.1, 0.25, 0.5, 0.75]))


Z_SCORE = Exercise(
    lesson=LESSON,
    name="z_score",
    title="The z-test on a green count",
    difficulty=1,
    importance=3,
    minutes=6,
    reference=z_score,
    cases=[
        (16, 64, 0.25),  # exactly chance: z = 0, p = 0.5
        (40, 64, 0.25),  # a watermarked count: z = 6.93
        (3, 4, 0.5),  # the variance has (1 - gamma) in it: sqrt(T gamma) would give 0.71, not 1
        (2, 64, 0.25),  # fewer green than chance: z < 0, p > 0.5 (one-sided, not two)
        (0, 0, 0.25),  # nothing scored: undefined
    ],
    random_case=_random_z_case,
)


# --------------------------------------------------------------------------------------------
# 4. The detector over a token sequence
# --------------------------------------------------------------------------------------------


def detect_tokens(tokens: list[int], vocab_size: int, gamma: float, key: int) -> dict[str, float]:
    """``{"scored", "green", "z"}`` for a token sequence, as a detector holding the key reads it.

    Token ``t`` (``t >= 1``) is green when it is in the green list of token ``t - 1``
    (:func:`green_mask`). The first token has no previous token in the text, so it is only
    context: ``len(tokens) - 1`` tokens are scored (0 for a sequence of 0 or 1 tokens). ``z`` is
    :func:`z_score`'s z (NaN when nothing is scored); ``scored`` and ``green`` are ints.
    """
    pairs = list(zip(tokens[:-1], tokens[1:]))  # (previous, scored) token pairs
    green = sum(bool(green_mask(int(prev), vocab_size, gamma, key)[int(tok)]) for prev, tok in pairs)
    return {"scored": len(pairs), "green": int(green), "z": z_score(green, len(pairs), gamma)[0]}


def _watermarked_sequence(rng: np.random.Generator, length: int, vocab_size: int, gamma: float, key: int,
                          p_green: float) -> list[int]:
    """A sequence whose next token is drawn from the green list with probability ``p_green``."""
    tokens = [int(rng.integers(0, vocab_size))]
    for _ in range(length - 1):
        mask = green_mask(tokens[-1], vocab_size, gamma, key)
        pool = np.flatnonzero(mask if rng.random() < p_green else ~mask)
        tokens.append(int(rng.choice(pool)))
    return tokens


def _random_detect_case(rng: np.random.Generator) -> tuple[list[int], int, float, int]:
    vocab_size, gamma, key = int(rng.integers(8, 120)), float(rng.choice([0.25, 0.5])), int(rng.integers(1, 10**6))
    length = int(rng.integers(0, 30))
    if length and rng.random() < 0.5:
        return _watermarked_sequence(rng, length, vocab_size, gamma, key, 0.9), vocab_size, gamma, key
    return rng.integers(0, vocab_size, size=length).tolist(), vocab_size, gamma, key


DETECT_TOKENS = Exercise(
    lesson=LESSON,
    name="detect_tokens",
    title="The detector over a token sequence",
    difficulty=2,
    importance=3,
    minutes=10,
    reference=detect_tokens,
    cases=[
        # every token green after its predecessor: an off-by-one (scoring the first token, or the
        # list of the token itself) loses that
        (_watermarked_sequence(np.random.default_rng(0), 12, 40, 0.25, KEY, 1.0), 40, 0.25, KEY),
        ([5, 17, 3, 3, 29, 0, 11, 17, 3], 40, 0.25, KEY),  # plain tokens
        ([5], 40, 0.25, KEY),  # one token: nothing to score
        ([], 40, 0.25, KEY),  # empty
    ],
    random_case=_random_detect_case,
)


# --------------------------------------------------------------------------------------------
# 5. The AUC of a detector score
# --------------------------------------------------------------------------------------------


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The area under the ROC curve: the share of (positive, negative) pairs where the positive
    scores higher, a tie counting half. NaN scores are dropped first; with no positive or no
    negative left, NaN. 1 separates perfectly, 0.5 is chance, 0 is perfectly backwards.
    """
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]  # [n_pos, n_neg]: every pair once
    return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))


def _random_auc_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n_pos, n_neg = int(rng.integers(1, 20)), int(rng.integers(1, 20))
    shift = float(rng.uniform(0, 4))
    pos = np.round(rng.normal(shift, 1.5, size=n_pos), int(rng.integers(0, 2)))  # rounding makes ties
    neg = np.round(rng.normal(0, 1.0, size=n_neg), int(rng.integers(0, 2)))
    if rng.random() < 0.2:
        pos[rng.integers(0, n_pos)] = np.nan
    return pos, neg


ROC_AUC = Exercise(
    lesson=LESSON,
    name="roc_auc",
    title="The AUC of a detector score",
    difficulty=2,
    importance=2,
    minutes=8,
    reference=roc_auc,
    cases=[
        (np.array([5.0, 6.0, 7.5]), np.array([0.1, -1.0, 1.2, 0.3])),  # separated: 1
        (np.array([-1.0, 0.0]), np.array([2.0, 3.0])),  # backwards: 0, not 1
        (np.array([1.0, 1.0]), np.array([1.0, 1.0, 1.0])),  # all tied: 0.5
        (np.array([2.0, 1.0, 3.0]), np.array([1.0, 0.0, 2.0])),  # ties count half: 7/9
        (np.array([4.0, np.nan]), np.array([1.0, 5.0])),  # a text with nothing scored is dropped
        (np.array([np.nan]), np.array([1.0])),  # no positive left: undefined
    ],
    random_case=_random_auc_case,
)


EXERCISES = [GREEN_MASK, ADD_GREEN_BIAS, Z_SCORE, DETECT_TOKENS, ROC_AUC]  # the order of the lesson
