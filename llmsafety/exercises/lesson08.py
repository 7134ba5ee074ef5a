"""Lesson 08 exercises: the refusal direction, by hand, on plain arrays.

Lesson 8 finds the direction in SmolLM2's residual stream along which harmful requests differ from
harmless ones, reads it with probes, and then removes or adds it to change whether the model
refuses. Each step is written here in its simplest form, with numpy and no model:

- the difference-of-means direction from two sets of activations, scaled to length 1 (what
  ``llmsafety.refusal_direction.mean_difference_directions`` computes per layer, before ``unit``);
- projecting a direction out of vectors (``llmsafety.refusal_direction.project_out``, the core of
  directional ablation);
- the held-out accuracy of the simplest probe there is: project on the training direction, cut
  halfway between the two class means;
- the paired bootstrap CI of a change in refusal rate on the same prompts (the interval of
  ``llmsafety.dart.stats.paired_difference`` for one seed).

Activations are ``[n_prompts, d_model]`` arrays of floats; refusals are 0/1 per prompt.
"""

from __future__ import annotations

import numpy as np

from llmsafety.exercises import Exercise

# --------------------------------------------------------------------------------------------
# 1. The difference-of-means direction
# --------------------------------------------------------------------------------------------


def mean_difference_direction(harmful: np.ndarray, harmless: np.ndarray) -> np.ndarray:
    """The unit vector along ``mean(harmful) - mean(harmless)``: ``[d_model]``.

    ``harmful`` is ``[n_harmful, d_model]``, ``harmless`` ``[n_harmless, d_model]``, one row per
    prompt; the two counts may differ, so there are no pairs to subtract, only two means. The
    direction points *towards* harmful (a harmful prompt has a larger projection on it), and it
    has length 1, so that projecting on it measures distance along it. When the two means are
    equal there is no direction: return the zero vector (at layer 0, the token embedding of the
    last prompt token, every prompt looks the same).
    """
    difference = np.asarray(harmful, dtype=float).mean(axis=0) - np.asarray(harmless, dtype=float).mean(axis=0)
    length = np.linalg.norm(difference)
    return difference / length if length > 0 else difference


def _random_clouds(rng: np.random.Generator, d: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two small clouds of points, ``harmful`` shifted along a random direction from ``harmless``."""
    d = int(rng.integers(2, 7)) if d is None else d
    shift = rng.normal(size=d)
    shift *= float(rng.uniform(1.0, 3.0)) / np.linalg.norm(shift)
    harmless = rng.normal(size=(int(rng.integers(2, 9)), d)) + rng.normal(size=d)
    harmful = harmless.mean(axis=0) + shift + rng.normal(size=(int(rng.integers(2, 9)), d))
    return np.round(harmful, 2), np.round(harmless, 2)


MEAN_DIFFERENCE_DIRECTION = Exercise(
    name="mean_difference_direction",
    lesson=8,
    title="The difference-of-means direction",
    difficulty=1,
    importance=3,
    minutes=5,
    reference=mean_difference_direction,
    cases=[
        (np.array([[3.0, 0.0], [5.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 0.0]])),  # length 4: normalise
        (np.array([[0.0, 1.0]]), np.array([[0.0, 3.0], [0.0, 5.0], [0.0, 7.0]])),  # points to harmful: down
        # mean over prompts (axis 0), not over dimensions; three harmful, one harmless: no pairs
        (np.array([[1.0, 2.0, 3.0], [1.0, 4.0, 3.0], [1.0, 0.0, 6.0]]), np.array([[1.0, 2.0, 0.0]])),
        (np.array([[0.5, -1.0], [0.5, -1.0]]), np.array([[0.5, -1.0]])),  # equal means: no direction, zeros
    ],
    random_case=_random_clouds,
)


# --------------------------------------------------------------------------------------------
# 2. Projecting a direction out
# --------------------------------------------------------------------------------------------


def project_out(vectors: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``vectors`` ``[n, d]`` without their component along ``direction`` ``[d]``: ``[n, d]``.

    Each row ``x`` becomes ``x - (x · r̂) r̂`` with ``r̂ = direction / |direction|``. The direction
    need not have length 1: normalise it first, or a long direction removes too much. Every row
    of the result is orthogonal to the direction, and a row already orthogonal to it is unchanged.
    """
    vectors = np.asarray(vectors, dtype=float)
    r = np.asarray(direction, dtype=float)
    r = r / np.linalg.norm(r)
    return vectors - np.outer(vectors @ r, r)  # [n, 1] coefficients times [d] direction


def _random_projection_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    d = int(rng.integers(2, 7))
    vectors = np.round(rng.normal(size=(int(rng.integers(1, 6)), d)) * 3, 2)
    direction = np.round(rng.normal(size=d) * float(rng.choice([0.5, 1.0, 4.0])), 2)
    if not np.any(direction):
        direction[0] = 1.0
    return vectors, direction


PROJECT_OUT = Exercise(
    name="project_out",
    lesson=8,
    title="Project a direction out of vectors",
    difficulty=1,
    importance=3,
    minutes=8,
    reference=project_out,
    cases=[
        (np.array([[2.0, 3.0]]), np.array([1.0, 0.0])),  # a unit direction: drop the first coordinate
        (np.array([[2.0, 3.0], [-1.0, 5.0]]), np.array([4.0, 0.0])),  # length 4: normalise it first
        (np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]), np.array([1.0, 1.0, 0.0])),  # 2nd row is orthogonal: kept
    ],
    random_case=_random_projection_case,
)


# --------------------------------------------------------------------------------------------
# 3. A probe's held-out accuracy
# --------------------------------------------------------------------------------------------


def mean_difference_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                                   test_y: np.ndarray) -> float:
    """Held-out accuracy of the difference-of-means probe: fit on train, score on test.

    1. From the *training* prompts only: ``r̂`` = the unit vector along mean(rows with y = 1)
       - mean(rows with y = 0), and the threshold = halfway between the two classes' mean
       projections ``x · r̂``.
    2. A *test* prompt is predicted harmful (1) when its projection is strictly above the
       threshold, else harmless (0).
    3. Return the share of test prompts predicted right.

    Reuse ``mean_difference_direction``: where it finds no direction (equal means) every
    projection is 0, no prompt is above the threshold, and every prompt is predicted harmless.

    Nothing about the test prompts may enter step 1: a direction or threshold fitted on them
    scores itself and overstates what the probe knows.
    """
    train_x, test_x = np.asarray(train_x, dtype=float), np.asarray(test_x, dtype=float)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    r = mean_difference_direction(train_x[train_y == 1], train_x[train_y == 0])
    projection = train_x @ r  # [n_train]
    threshold = (projection[train_y == 1].mean() + projection[train_y == 0].mean()) / 2
    predicted = (test_x @ r > threshold).astype(int)
    return float(np.mean(predicted == test_y))


def _random_probe_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d = int(rng.integers(2, 6))
    parts = []
    for _ in range(2):  # a train set and a test set from the same two clouds
        harmful, harmless = _random_clouds(rng, d)
        parts.append((np.vstack([harmful, harmless]), np.array([1] * len(harmful) + [0] * len(harmless))))
    (train_x, train_y), (test_x, test_y) = parts
    return train_x, train_y, test_x, test_y


MEAN_DIFFERENCE_PROBE_ACCURACY = Exercise(
    name="mean_difference_probe_accuracy",
    lesson=8,
    title="Held-out accuracy of a difference-of-means probe",
    difficulty=2,
    importance=3,
    minutes=12,
    reference=mean_difference_probe_accuracy,
    cases=[
        # 1-D: train means 4 (harmful) and 0, threshold 2 (fitted on the test set it would be 1.45)
        (np.array([[4.0], [4.0], [0.0], [0.0]]), np.array([1, 1, 0, 0]),
         np.array([[1.0], [3.0], [0.0], [1.8]]), np.array([1, 1, 0, 0])),
        # a test prompt exactly on the threshold (2.0) is predicted harmless: strictly above
        (np.array([[4.0, 1.0], [0.0, 1.0]]), np.array([1, 0]),
         np.array([[2.0, 5.0], [3.0, -2.0], [-1.0, 0.0]]), np.array([1, 1, 0])),
        # the threshold is not 0: both classes project far from the origin
        (np.array([[10.0], [12.0], [8.0], [9.0]]), np.array([1, 1, 0, 0]),
         np.array([[9.0], [11.0], [9.9]]), np.array([0, 1, 1])),
        # equal class means: no direction, everything predicted harmless (2 of 3 right)
        (np.array([[1.0, 2.0], [1.0, 2.0]]), np.array([1, 0]),
         np.array([[1.0, 2.0], [3.0, 0.0], [0.0, 5.0]]), np.array([1, 0, 0])),
    ],
    random_case=_random_probe_case,
)


# --------------------------------------------------------------------------------------------
# 4. The paired bootstrap CI of a change in refusal rate
# --------------------------------------------------------------------------------------------


def refusal_rate_change_ci(after: np.ndarray, before: np.ndarray, n_boot: int, seed: int,
                           level: float = 0.95) -> tuple[float, float, float]:
    """``(change, low, high)``: rate(after) - rate(before) and its paired percentile-bootstrap CI.

    ``after`` and ``before`` are ``[n]`` 0/1 refusals on the *same* n prompts (before and after an
    intervention). A resample draws prompts, and the same prompts for both, so that what a
    prompt's difficulty does to both rates cancels:

    1. ``rng = np.random.default_rng(seed)``; ``idx = rng.integers(0, n, size=(n_boot, n))``
       (row b: the prompts of resample b);
    2. per resample, the mean of ``after`` minus the mean of ``before`` over those prompts;
    3. the CI's ends are the ``(1 - level) / 2`` and ``1 - (1 - level) / 2`` quantiles
       (``np.quantile``) of the n_boot changes.

    The draw order matches ``llmsafety.dart.stats.paired_difference`` for one seed: same seed, same
    interval.
    """
    after, before = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(after), size=(n_boot, len(after)))  # [n_boot, n]: one draw for both
    changes = after[idx].mean(axis=1) - before[idx].mean(axis=1)  # [n_boot]
    low, high = np.quantile(changes, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(after.mean() - before.mean()), float(low), float(high)


def _random_change_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, int, float]:
    n = int(rng.integers(2, 16))
    before = (rng.random(n) < 0.4).astype(float)
    after = np.where(rng.random(n) < 0.6, before, (rng.random(n) < 0.4).astype(float))  # mostly the same
    return after, before, int(rng.integers(50, 201)), int(rng.integers(0, 1000)), float(rng.choice([0.9, 0.95]))


REFUSAL_RATE_CHANGE_CI = Exercise(
    name="refusal_rate_change_ci",
    lesson=8,
    title="Paired bootstrap CI of a change in refusal rate",
    difficulty=2,
    importance=2,
    minutes=12,
    reference=refusal_rate_change_ci,
    cases=[
        # the same prompt refused before and after, in every resample: a paired CI of width 0 there
        (np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]), np.array([1.0, 1.0, 1.0, 0.0, 1.0, 0.0]), 200, 0, 0.95),
        (np.array([0.0, 0.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0, 1.0]), 100, 3, 0.9),  # sign: after - before
        (np.array([1.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0]), 50, 1, 0.95),  # no change: (0, 0, 0)
    ],
    random_case=_random_change_case,
)


EXERCISES = [MEAN_DIFFERENCE_DIRECTION, PROJECT_OUT, MEAN_DIFFERENCE_PROBE_ACCURACY, REFUSAL_RATE_CHANGE_CI]
