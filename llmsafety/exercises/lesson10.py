"""Lesson 10 exercises: measuring and limiting what a fine-tuned model remembers, by hand, on plain arrays.

Lesson 10 plants canaries (``"Ana Kovac's PIN is 4815."``) in a small fine-tuning set of fake records,
fine-tunes SmolLM2 with LoRA, and measures what leaks: the exposure of each canary, extraction by
sampling, membership inference from the loss; then it trains again with DP-SGD. Each measurement is
written here in its simplest form, with numpy and no model:

- the rank and exposure of a secret among all candidates, from their log-likelihoods
  (``llmsafety.privacy.exposure``);
- the loss-threshold membership attack of Yeom et al. 2018: its true- and false-positive rates and
  its membership advantage;
- the AUC of a membership score as the Mann-Whitney statistic (``llmsafety.privacy.auc``);
- one DP-SGD gradient: clip each example's gradient, sum, add Gaussian noise, average (what opacus's
  ``DPOptimizer`` does before the optimizer's own step).

Scores are ``[n]`` float arrays; for a membership score, higher means "more likely a member".
"""

from __future__ import annotations

import numpy as np

from llmsafety.exercises import Exercise, default_compare

LESSON = 10


# --------------------------------------------------------------------------------------------
# 1. Exposure from the candidates' log-likelihoods
# --------------------------------------------------------------------------------------------


def canary_exposure(log_likelihoods: np.ndarray, secret_index: int) -> tuple[int, float]:
    """``(rank, exposure)`` of candidate ``secret_index`` among ``log_likelihoods`` ``[n_candidates]``.

    The rank is 1 plus the number of candidates the model finds *strictly* more likely than the
    secret (1 = the most likely; candidates tied with the secret do not push it down). Exposure,
    in bits, is ``log2(n_candidates) - log2(rank)``: 0 for the least likely candidate, the
    maximum ``log2(n_candidates)`` for the most likely. Return the rank as an int, the exposure
    as a float.
    """
    scores = np.asarray(log_likelihoods, dtype=float)
    rank = 1 + int(np.sum(scores > scores[secret_index]))  # ties do not count against the secret
    return rank, float(np.log2(scores.size) - np.log2(rank))


def _random_candidates(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    n = int(rng.choice([1, 2, 10, 100, 1000]))
    scores = np.round(rng.normal(-9.0, 2.0, size=n), 1)  # rounded: ties happen, as in real log-likelihoods
    secret = int(rng.integers(0, n))
    if rng.random() < 0.3:  # a memorised secret: far above the rest
        scores[secret] = scores.max() + float(rng.uniform(0.5, 5.0))
    return scores, secret


CANARY_EXPOSURE = Exercise(
    lesson=LESSON,
    name="canary_exposure",
    title="The rank and exposure of a canary's secret",
    difficulty=1,
    importance=3,
    minutes=8,
    reference=canary_exposure,
    cases=[
        # the secret (index 2) is the most likely of 8: rank 1, exposure log2(8) = 3 bits
        (np.array([-9.0, -7.5, -0.4, -8.0, -6.0, -9.9, -7.0, -8.8]), 2),
        # the least likely of 4: rank 4, exposure 0 (rank counts from 1, not from 0)
        (np.array([-1.0, -2.0, -3.0, -4.0]), 3),
        # tied with two others for the top: still rank 1 (only strictly better candidates count)
        (np.array([-2.0, -2.0, -5.0, -2.0]), 3),
        # one candidate only: nothing to learn from it, exposure 0
        (np.array([-3.0]), 0),
        # 1000 candidates, the secret beaten by 9: rank 10, exposure log2(100) = 6.64 bits
        (np.concatenate([np.full(9, -1.0), [-2.0], np.full(990, -12.0)]), 9),
    ],
    random_case=_random_candidates,
)


# --------------------------------------------------------------------------------------------
# 2. The loss-threshold membership attack
# --------------------------------------------------------------------------------------------


def loss_threshold_attack(member_losses: np.ndarray, nonmember_losses: np.ndarray,
                          threshold: float) -> dict[str, float]:
    """Yeom et al.'s attack: call a record a member when its loss is at most ``threshold``.

    ``member_losses`` ``[n_m]`` are the model's losses on records it was trained on,
    ``nonmember_losses`` ``[n_n]`` on fresh records. Return ``{"tpr", "fpr", "advantage"}``: the
    share of members called members (true-positive rate), the share of non-members called members
    (false-positive rate), and the membership advantage ``tpr - fpr`` (0 for an attack that
    guesses; 1 for a perfect one). A loss equal to the threshold counts as a member.
    """
    tpr = float(np.mean(np.asarray(member_losses, dtype=float) <= threshold))
    fpr = float(np.mean(np.asarray(nonmember_losses, dtype=float) <= threshold))
    return {"tpr": tpr, "fpr": fpr, "advantage": tpr - fpr}


def _random_losses(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    gap = float(rng.uniform(0.0, 1.5))  # members' losses are lower by about this much
    members = np.round(rng.normal(1.5 - gap, 0.4, size=int(rng.integers(1, 12))), 2)
    nonmembers = np.round(rng.normal(1.5, 0.4, size=int(rng.integers(1, 12))), 2)
    pool = np.concatenate([members, nonmembers])
    threshold = float(rng.choice(pool)) if rng.random() < 0.5 else float(np.round(rng.uniform(0.0, 2.5), 2))
    return members, nonmembers, threshold


LOSS_THRESHOLD_ATTACK = Exercise(
    lesson=LESSON,
    name="loss_threshold_attack",
    title="The loss-threshold membership attack",
    difficulty=1,
    importance=2,
    minutes=8,
    reference=loss_threshold_attack,
    cases=[
        # members' losses are lower: below 1.0 are 3 of 4 members and 1 of 4 non-members
        (np.array([0.4, 0.7, 0.9, 1.6]), np.array([0.8, 1.2, 1.5, 2.0]), 1.0),
        # a loss exactly at the threshold is a member (<=, not <)
        (np.array([0.5, 1.0]), np.array([1.0, 2.0]), 1.0),
        # a threshold above every loss calls everyone a member: tpr = fpr = 1, advantage 0
        (np.array([0.3, 0.6]), np.array([0.9, 1.1, 1.3]), 5.0),
        # the wrong way round (members' losses *higher*): a negative advantage, not its absolute value
        (np.array([2.0, 2.5]), np.array([0.5, 1.5]), 1.5),
    ],
    random_case=_random_losses,
)


# --------------------------------------------------------------------------------------------
# 3. The AUC as the Mann-Whitney statistic
# --------------------------------------------------------------------------------------------


def membership_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """The AUC of a membership score: the chance that a random member scores higher than a random non-member.

    Compare every member with every non-member: a win counts 1, a tie 1/2, a loss 0; the AUC is
    the mean over all ``n_m * n_n`` pairs (the Mann-Whitney U statistic divided by ``n_m * n_n``),
    which is exactly the area under the ROC curve. 0.5 = no better than guessing. With no member
    or no non-member there is no pair: return NaN.
    """
    members = np.asarray(member_scores, dtype=float)
    nonmembers = np.asarray(nonmember_scores, dtype=float)
    if members.size == 0 or nonmembers.size == 0:
        return float("nan")
    diff = members[:, None] - nonmembers[None, :]  # [n_m, n_n]: every pair
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def _random_scores(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shift = float(rng.uniform(-0.5, 2.0))
    members = np.round(rng.normal(shift, 1.0, size=int(rng.integers(1, 15))), 1)  # rounded: ties happen
    nonmembers = np.round(rng.normal(0.0, 1.0, size=int(rng.integers(1, 15))), 1)
    return members, nonmembers


MEMBERSHIP_AUC = Exercise(
    lesson=LESSON,
    name="membership_auc",
    title="The membership AUC by hand (Mann-Whitney)",
    difficulty=2,
    importance=3,
    minutes=12,
    reference=membership_auc,
    cases=[
        # every member above every non-member: 1.0
        (np.array([3.0, 2.5, 4.0]), np.array([1.0, 2.0])),
        # 3 wins of 4 pairs: 0.75 (pairs, not "how many members beat the mean")
        (np.array([2.0, 0.5]), np.array([1.0, 0.0])),
        # all tied: 0.5, not 0 (a tie counts half)
        (np.array([1.0, 1.0]), np.array([1.0, 1.0, 1.0])),
        # different sizes, one tie: (1 + 1 + 0.5 + 1 + 0 + 0) / 6
        (np.array([2.0, 1.0, 0.0]), np.array([1.0, 0.5])),
        # no non-member: undefined
        (np.array([1.0, 2.0]), np.array([])),
    ],
    random_case=_random_scores,
)


# --------------------------------------------------------------------------------------------
# 4. One DP-SGD step: clip, sum, add noise, average
# --------------------------------------------------------------------------------------------


def dp_sgd_gradient(per_example_grads: np.ndarray, max_grad_norm: float, noise_multiplier: float,
                    noise: np.ndarray, expected_batch_size: int) -> np.ndarray:
    """The gradient DP-SGD hands the optimizer: ``[n_params]``.

    ``per_example_grads`` ``[batch, n_params]`` holds one row per example. Scale each row by
    ``min(1, C / (norm + 1e-6))`` with ``C = max_grad_norm`` and ``norm`` the row's L2 norm (as
    opacus does: rows shorter than C stay as they are, longer ones are cut to length C, and a zero
    row gives no division by zero); sum the clipped rows; add ``noise_multiplier * C * noise``
    (``noise`` ``[n_params]`` are standard normal draws, given so that the answer is fixed); divide
    by ``expected_batch_size`` -- under Poisson sampling the batch size itself varies, and dividing
    by it would tell the world how many examples were drawn.
    """
    grads = np.asarray(per_example_grads, dtype=float)
    norms = np.linalg.norm(grads, axis=1)  # [batch]
    factors = np.minimum(1.0, max_grad_norm / (norms + 1e-6))  # clip to C, never divide by zero
    clipped_sum = (grads * factors[:, None]).sum(axis=0)  # [n_params]: each example moves it by at most C
    return (clipped_sum + noise_multiplier * max_grad_norm * np.asarray(noise, dtype=float)) / expected_batch_size


def _compare_gradients(expected: np.ndarray, got) -> str | None:
    """Arrays equal to 1e-4 of the largest entry: ``C / norm`` and opacus's ``C / (norm + 1e-6)`` are both right
    (they differ by about 1e-6 relative per clipped row, more where entries nearly cancel)."""
    difference = default_compare(expected, got)
    if difference is None:
        return None
    try:
        values = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return difference
    scale = 1e-4 * max(1e-6, float(np.abs(expected).max(initial=0.0)))
    if values.shape == expected.shape and np.allclose(values, expected, rtol=1e-4, atol=scale):
        return None
    return difference


def _random_dp_step(rng: np.random.Generator) -> tuple[np.ndarray, float, float, np.ndarray, int]:
    batch, n_params = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    grads = np.round(rng.normal(0.0, float(rng.uniform(0.2, 3.0)), size=(batch, n_params)), 2)
    if rng.random() < 0.2:
        grads[0] = 0.0
    noise = np.round(rng.normal(size=n_params), 2)
    return (grads, float(rng.choice([0.5, 1.0, 2.0])), float(rng.choice([0.0, 0.5, 1.0, 2.0])), noise,
            int(rng.integers(1, 8)))


DP_SGD_GRADIENT = Exercise(
    lesson=LESSON,
    name="dp_sgd_gradient",
    title="One DP-SGD gradient: clip, sum, noise, average",
    difficulty=2,
    importance=3,
    minutes=15,
    reference=dp_sgd_gradient,
    cases=[
        # no noise: a long row (norm 5) is cut to length 1, a short one (norm 0.5) kept; divided by 2
        (np.array([[3.0, 4.0], [0.3, 0.4]]), 1.0, 0.0, np.array([0.0, 0.0]), 2),
        # a zero gradient stays zero: scaling every row to length C would give 0 / 0 = NaN
        (np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), 1.0, 0.0, np.zeros(3), 2),
        # noise scales with C: sigma * C * noise = 1.0 * 2.0 * [1, -1]
        (np.array([[0.5, 0.5]]), 2.0, 1.0, np.array([1.0, -1.0]), 1),
        # Poisson sampling drew 3 examples, but the expected batch is 4: divide by 4, not 3
        (np.array([[1.0], [-1.0], [0.25]]), 1.0, 0.5, np.array([0.8]), 4),
        # clip the whole row (all parameters together), not each parameter on its own
        (np.array([[2.0, 2.0, 2.0, 2.0]]), 1.0, 0.0, np.zeros(4), 1),
    ],
    random_case=_random_dp_step,
    compare=_compare_gradients,
)


EXERCISES = [CANARY_EXPOSURE, LOSS_THRESHOLD_ATTACK, MEMBERSHIP_AUC, DP_SGD_GRADIENT]  # the order of the lesson
