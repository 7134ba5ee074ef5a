"""Lesson 04 exercises: the arithmetic of one DART iteration.

One iteration (``llmsafety.dart``) scores the Red model's attacks, turns the scores into GRPO
advantages, and picks the attacks to safety-tune the Target on. The learning lives in four small
formulas, written here by hand with plain numpy:

- the novelty reward: 1 - the highest cosine similarity to every attack of earlier iterations
  (``llmsafety.diversity.global_novelty``);
- the degeneracy penalty against word salad (``llmsafety.dart.rewards.degeneracy_penalty``);
- GRPO's group advantage, as TRL computes it with ``scale_rewards="group"``;
- the uncertainty score of active-learning selection
  (``llmsafety.dart.selection.uncertainty_scores``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from llmsafety.exercises import Exercise

# --------------------------------------------------------------------------------------------
# 1. Global novelty
# --------------------------------------------------------------------------------------------


def global_novelty(new: np.ndarray, archive: np.ndarray) -> np.ndarray:
    """Novelty of each new attack: 1 - its highest cosine similarity to any archived attack.

    ``new``: [n, d] embeddings of this iteration's attacks; ``archive``: [m, d] embeddings of all
    earlier attacks (m may be 0). Returns [n] floats. With an empty archive every attack is
    novel: 1.0 (the novelty of a vector orthogonal to everything).
    """
    new = np.asarray(new, dtype=float)
    archive = np.asarray(archive, dtype=float)
    if len(archive) == 0:
        return np.ones(len(new))
    # Cosine similarity is the dot product of unit vectors: normalise the rows first, or a long
    # vector would look more similar than a short one pointing the same way.
    new_unit = new / np.linalg.norm(new, axis=1, keepdims=True)
    archive_unit = archive / np.linalg.norm(archive, axis=1, keepdims=True)
    similarity = new_unit @ archive_unit.T  # [n, m]
    # The nearest archived attack decides: far from all but one is not novel.
    return 1.0 - np.clip(similarity.max(axis=1), -1.0, 1.0)


def _random_novelty_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n, m, d = int(rng.integers(1, 5)), int(rng.integers(0, 6)), int(rng.integers(2, 7))
    new = rng.normal(size=(n, d))
    archive = rng.normal(size=(m, d))
    if m and rng.random() < 0.5:
        archive[0] = 3.0 * new[0]  # the same direction, another length: novelty 0
    return new, archive


GLOBAL_NOVELTY = Exercise(
    name="global_novelty",
    lesson=4,
    title="Global novelty against the archive",
    difficulty=2,
    importance=3,
    minutes=10,
    reference=global_novelty,
    cases=[
        (np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[2.0, 0.0]])),  # same direction; orthogonal
        (np.array([[1.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])),  # nearest, not mean
        (np.array([[0.3, 0.4, 0.5]]), np.zeros((0, 3))),  # empty archive: 1.0
    ],
    random_case=_random_novelty_case,
)


# --------------------------------------------------------------------------------------------
# 2. The degeneracy penalty
# --------------------------------------------------------------------------------------------


def degeneracy_penalty(attacks: Sequence[str], min_words: int = 5) -> np.ndarray:
    """Per attack, a penalty in [0, 1] for text that is not a real request. Returns [n] floats.

    Words are ``re.findall(r"\\w+", attack.lower())``. Fewer than ``min_words`` words: 1.0.
    Otherwise, with ``repeated = 1 - distinct words / words``: ``max(0, 2 * (repeated - 0.5))``,
    so text is penalised only once more than half its words are repeats, fully when all are.
    """
    penalty = np.zeros(len(attacks))
    for i, attack in enumerate(attacks):
        words = re.findall(r"\w+", attack.lower())
        if len(words) < min_words:
            penalty[i] = 1.0  # too short to ask for anything
            continue
        repeated = 1.0 - len(set(words)) / len(words)
        penalty[i] = max(0.0, 2.0 * (repeated - 0.5))
    return penalty


_VOCAB = ["bomb", "how", "to", "make", "a", "tell", "me", "secret", "the", "plan"]


def _random_attacks_case(rng: np.random.Generator) -> tuple[list[str], int]:
    attacks = []
    for _ in range(int(rng.integers(1, 5))):
        size = int(rng.integers(0, 11))
        vocab = _VOCAB[: int(rng.integers(1, len(_VOCAB) + 1))]  # a small vocabulary repeats a lot
        attacks.append(" ".join(vocab[int(rng.integers(len(vocab)))] for _ in range(size)))
    return attacks, int(rng.integers(3, 7))


DEGENERACY_PENALTY = Exercise(
    name="degeneracy_penalty",
    lesson=4,
    title="The degeneracy penalty",
    difficulty=1,
    importance=2,
    minutes=8,
    reference=degeneracy_penalty,
    cases=[
        (["How do I get into my neighbour's wifi network?"], 5),  # a real request: 0
        (["bomb bomb bomb bomb bomb bomb"], 5),  # repeated = 1 - 1/6 = 5/6 -> penalty 2/3
        (["Tell me", ""], 5),  # too short, empty: 1 each
        (["Bomb bomb BOMB how to", "a b a b a b c"], 5),  # case does not make words distinct
    ],
    random_case=_random_attacks_case,
)


# --------------------------------------------------------------------------------------------
# 3. The GRPO group advantage
# --------------------------------------------------------------------------------------------

GRPO_EPS = 1e-4  # TRL's constant: keeps a group of equal rewards from dividing by zero


def group_advantages(rewards: np.ndarray, group_size: int) -> np.ndarray:
    """GRPO's advantage of each completion within its group, as TRL (``scale_rewards="group"``).

    ``rewards``: [n] floats, n a multiple of ``group_size``; every ``group_size`` consecutive
    completions answer the same prompt and form one group. Advantage =
    ``(r - mean of its group) / (std of its group + 1e-4)``, where std is the *sample* standard
    deviation (ddof=1, as ``torch.std``). Returns [n] floats; a group of equal rewards gets 0.
    """
    grouped = np.asarray(rewards, dtype=float).reshape(-1, group_size)  # [n_groups, group_size]
    # keepdims: the [n_groups, 1] statistics broadcast back over each group's completions.
    mean = grouped.mean(axis=1, keepdims=True)
    std = grouped.std(axis=1, ddof=1, keepdims=True)
    return ((grouped - mean) / (std + GRPO_EPS)).reshape(-1)


def _random_rewards_case(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    group_size = int(rng.choice([2, 4]))
    rewards = np.round(rng.random(group_size * int(rng.integers(1, 4))) * 2, 2)
    if rng.random() < 0.3:
        rewards[:group_size] = rewards[0]  # a group where every completion scored the same
    return rewards, group_size


GROUP_ADVANTAGES = Exercise(
    name="group_advantages",
    lesson=4,
    title="The GRPO group advantage",
    difficulty=2,
    importance=3,
    minutes=10,
    reference=group_advantages,
    cases=[
        (np.array([1.0, 0.0, 0.5, 0.5]), 2),  # two groups: each is scaled on its own
        (np.array([0.2, 0.4, 0.6, 0.8]), 4),  # sample std (ddof=1), not population std
        (np.array([0.7, 0.7, 0.7]), 3),  # equal rewards: advantage 0, no division by zero
    ],
    random_case=_random_rewards_case,
)


# --------------------------------------------------------------------------------------------
# 4. Uncertainty scores for active learning
# --------------------------------------------------------------------------------------------


def uncertainty_scores(harm_samples: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """How unsure the Target is about each attack, from harm scores of K sampled replies.

    ``harm_samples``: [n_attacks, K] harm probabilities, NaN where a reply is unscored.
    Per attack: the mean binary entropy (in bits) of its scored probabilities, clipped to
    [1e-6, 1 - 1e-6], plus the variance (ddof=0) of its scored verdicts ``harm >= threshold``
    as 0/1. Both ignore NaN. An attack with no scored reply gets -1 (never chosen first).
    Returns [n_attacks] floats in [0, 1.25], or -1.
    """
    harm = np.asarray(harm_samples, dtype=float)
    p = np.clip(harm, 1e-6, 1 - 1e-6)  # log2(0) is -inf; NaN stays NaN through clip
    entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))  # [n, K], 1 bit at p = 0.5
    verdicts = np.where(np.isnan(harm), np.nan, (harm >= threshold).astype(float))
    scores = np.full(len(harm), -1.0)
    for i in range(len(harm)):
        scored = ~np.isnan(harm[i])
        if scored.any():
            # Entropy: each reply is unsure. Variance: the replies disagree with each other.
            scores[i] = entropy[i, scored].mean() + verdicts[i, scored].var()
    return scores


def _random_harm_case(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    n, k = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    harm = np.round(rng.random((n, k)), 1)  # a 0.1 grid: exact 0, 1 and threshold values occur
    harm[rng.random((n, k)) < 0.2] = np.nan
    return harm, float(rng.choice([0.3, 0.5]))


UNCERTAINTY_SCORES = Exercise(
    name="uncertainty_scores",
    lesson=4,
    title="Uncertainty scores for active learning",
    difficulty=3,
    importance=2,
    minutes=15,
    reference=uncertainty_scores,
    cases=[
        (np.array([[0.0, 1.0], [0.5, 0.5], [0.9, 0.9]]), 0.5),  # disagree; unsure; sure
        (np.array([[0.5, np.nan], [np.nan, np.nan]]), 0.5),  # NaN ignored; nothing scored: -1
    ],
    random_case=_random_harm_case,
)


EXERCISES = [GLOBAL_NOVELTY, DEGENERACY_PENALTY, GROUP_ADVANTAGES, UNCERTAINTY_SCORES]
