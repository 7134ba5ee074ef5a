"""Privacy of a fine-tuned model (lesson 10): the fake data, exposure, membership-inference statistics,
the DP accountant, and the lesson's exercises, without a model; then the exact candidate ranking, the
plain and the DP-SGD fine-tune and extraction on the real tiny model (marked slow).

The slow tests load SmolLM2-135M-Instruct once and train on a handful of texts for a few steps, with
2-digit secrets (100 candidates): seconds each on a CPU.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from llmsafety import privacy as pv
from llmsafety.exercises import check, lesson10

# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


def test_config_validates_and_documents_every_field():
    assert pv.PrivacyConfig(insertions=[0, 2]).insertions == (0, 2)
    for bad in ({"insertions": ()}, {"insertions": (-1,)}, {"secret_digits": 0},
                {"secret_digits": pv.MAX_SECRET_DIGITS + 1}, {"epochs": 0}, {"noise_multiplier": -0.1},
                {"max_grad_norm": 0.0}, {"delta": 1.0}, {"insertions": tuple(range(30))}):
        with pytest.raises(ValueError):
            pv.PrivacyConfig(**bad)
    fields = pv.PrivacyConfig.__dataclass_fields__.values()
    assert all(f.metadata.get("help") for f in fields)  # every field says what it does


def test_fake_records_are_distinct_reproducible_and_never_name_a_canary():
    records = pv.fake_records(200, seed=3)
    assert len(records) == len(set(records)) == 200
    assert records == pv.fake_records(200, seed=3) and records != pv.fake_records(200, seed=4)
    assert pv.fake_records(50, seed=3) == records[:50]  # members then non-members: one stream, split
    canary_words = {w for name in pv.CANARY_NAMES for w in name.split()}
    assert not canary_words & {w for r in records for w in re.findall(r"[A-Za-z]+", r)}
    assert not canary_words & set(pv.FIRST_NAMES + pv.LAST_NAMES)


def test_canaries_and_the_training_set():
    config = pv.PrivacyConfig(insertions=(0, 1, 3), canaries_per_insertion=2, secret_digits=4, seed=5)
    canaries = pv.make_canaries(config)
    assert list(canaries["insertions"]) == [0, 0, 1, 1, 3, 3] and canaries["canary"].is_unique
    assert all(len(s) == 4 and s.isdigit() for s in canaries["secret"])
    assert all(t == f"{p}{s}." for p, s, t in zip(canaries["prefix"], canaries["secret"], canaries["text"]))
    assert all(p.endswith("'s PIN is ") for p in canaries["prefix"])
    assert canaries.equals(pv.make_canaries(config))
    # more records or other sizes leave the secrets alone: their stream is their own
    assert list(pv.make_canaries(pv.PrivacyConfig(insertions=(0, 1, 3), canaries_per_insertion=2, seed=5,
                                                  n_members=7))["secret"]) == list(canaries["secret"])
    members = pv.fake_records(10, seed=5)
    texts = pv.training_texts(members, canaries, seed=5)
    assert len(texts) == 10 + 2 * (0 + 1 + 3)
    for text, k in zip(canaries["text"], canaries["insertions"]):
        assert texts.count(text) == k  # the k = 0 canary is never seen
    assert sorted(t for t in texts if t in members) == sorted(members)
    assert texts == pv.training_texts(members, canaries, seed=5)  # the same shuffle every time


# --------------------------------------------------------------------------------------------
# Exposure and the membership statistics
# --------------------------------------------------------------------------------------------


def test_exposure_ranks_and_bits():
    scores = np.array([-5.0, -1.0, -3.0, -1.0, -9.0, -2.0, -7.0, -4.0])
    assert pv.exposure(scores, 1) == (1, 3.0)  # tied for the top: still rank 1
    assert pv.exposure(scores, 4) == (8, 0.0)
    assert pv.exposure(scores, 5) == (3, pytest.approx(3 - math.log2(3)))
    # a secret the model knows nothing about: a uniform rank, about 1/ln 2 = 1.44 bits on average
    rng = np.random.default_rng(0)
    bits = [pv.exposure(rng.normal(size=1000), 0)[1] for _ in range(2000)]
    assert abs(np.mean(bits) - 1 / math.log(2)) < 0.1


def test_roc_curve_auc_and_tpr_at_fpr():
    members, nonmembers = np.array([0.9, 0.8, 0.4, 0.4]), np.array([0.4, 0.3, 0.1])
    fpr, tpr = pv.roc_curve(members, nonmembers)
    assert list(fpr) == pytest.approx([0, 0, 0, 1 / 3, 2 / 3, 1])
    assert list(tpr) == pytest.approx([0, 0.25, 0.5, 1, 1, 1])
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # the trapezoid rule over the curve
    assert pv.auc(members, nonmembers) == pytest.approx(area) == pytest.approx((3 + 3 + 2.5 + 2.5) / 12)
    assert pv.tpr_at_fpr(members, nonmembers, 0.0) == 0.5  # sure about half the members, no false alarm
    assert pv.tpr_at_fpr(members, nonmembers, 0.5) == 1.0
    assert pv.auc([1.0], [1.0]) == 0.5 and pv.auc([2.0], [1.0]) == 1.0 and math.isnan(pv.auc([], [1.0]))
    with pytest.raises(ValueError):
        pv.roc_curve([], [1.0])


def test_auc_ci_resamples_members_and_nonmembers_apart():
    rng = np.random.default_rng(1)
    members, nonmembers = rng.normal(1.0, 1.0, 30), rng.normal(0.0, 1.0, 25)
    estimate, low, high = pv.auc_ci(members, nonmembers, n_boot=400, seed=2)
    assert estimate == pytest.approx(pv.auc(members, nonmembers)) and low < estimate < high
    assert (estimate, low, high) == pv.auc_ci(members, nonmembers, n_boot=400, seed=2)
    # the same replicates as the plain loop: draw members, then non-members, recompute the AUC
    draw = np.random.default_rng(2)
    idx_m, idx_n = draw.integers(0, 30, size=(400, 30)), draw.integers(0, 25, size=(400, 25))
    loop = [pv.auc(members[i], nonmembers[j]) for i, j in zip(idx_m, idx_n)]
    assert (low, high) == pytest.approx(tuple(np.quantile(loop, [0.025, 0.975])))
    _, low_big, high_big = pv.auc_ci(np.tile(members, 10), np.tile(nonmembers, 10), n_boot=400, seed=2)
    assert high_big - low_big < high - low  # ten times the records: a narrower interval
    assert all(math.isnan(x) for x in pv.auc_ci([], [1.0]))


def test_dp_epsilon_is_opacus_accounting():
    from opacus.accountants.utils import get_noise_multiplier

    sigma = get_noise_multiplier(target_epsilon=3.0, target_delta=1e-5, sample_rate=0.1, steps=50, accountant="rdp")
    assert pv.dp_epsilon(sigma, 0.1, 50, 1e-5) == pytest.approx(3.0, rel=0.02)
    eps = [pv.dp_epsilon(s, 0.1, 50, 1e-5) for s in (0.5, 1.0, 2.0)]
    assert eps[0] > eps[1] > eps[2] > 0  # more noise, less privacy spent
    assert pv.dp_epsilon(1.0, 0.01, 50, 1e-5) < eps[1]  # a smaller sampling rate (more data) spends less
    assert pv.dp_epsilon(0.0, 0.1, 50, 1e-5) == math.inf
    # small epsilons need RDP orders above opacus's default 63, which would overstate them
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(3.0, 1e-4, 20_000)]
    with pytest.warns(UserWarning, match="largest alpha"):
        default_orders = accountant.get_epsilon(delta=1e-5)
    assert pv.dp_epsilon(3.0, 1e-4, 20_000, 1e-5) < 0.9 * default_orders


# --------------------------------------------------------------------------------------------
# The exercises
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exercise", lesson10.EXERCISES, ids=lambda e: e.name)
def test_lesson10_references_pass_their_checks(exercise, capsys):
    assert exercise.lesson == 10 and f"def {exercise.name}(" in exercise.source
    assert check(exercise.reference, exercise)
    assert capsys.readouterr().out.startswith(f"✔ {exercise.title}: passed")


def _fails(fn, exercise, capsys) -> str:
    assert not check(fn, exercise)
    out = capsys.readouterr().out
    assert out.startswith(f"✘ {exercise.title}: case ")
    return out


def test_lesson10_wrong_answers_fail_saying_what_differs(capsys):
    def rank_from_zero(scores, secret):
        rank = int(np.sum(np.asarray(scores) > scores[secret]))
        return rank, float(np.log2(len(scores)) - np.log2(max(rank, 1)))

    assert "case 1" in _fails(rank_from_zero, lesson10.CANARY_EXPOSURE, capsys)

    def ties_count_against(scores, secret):  # the secret and every candidate tied with it
        rank = int(np.sum(np.asarray(scores) >= scores[secret]))
        return rank, float(np.log2(len(scores)) - np.log2(rank))

    assert "case 3" in _fails(ties_count_against, lesson10.CANARY_EXPOSURE, capsys)

    def strict_threshold(members, nonmembers, threshold):
        tpr, fpr = float(np.mean(members < threshold)), float(np.mean(nonmembers < threshold))
        return {"tpr": tpr, "fpr": fpr, "advantage": tpr - fpr}

    assert "case 2" in _fails(strict_threshold, lesson10.LOSS_THRESHOLD_ATTACK, capsys)

    def ties_lose(members, nonmembers):
        if len(members) == 0 or len(nonmembers) == 0:
            return float("nan")
        return float(np.mean(np.asarray(members)[:, None] > np.asarray(nonmembers)[None, :]))

    assert "case 3" in _fails(ties_lose, lesson10.MEMBERSHIP_AUC, capsys)

    def scales_every_row_to_c(grads, c, sigma, noise, expected):  # normalises instead of clipping
        norms = np.linalg.norm(grads, axis=1)
        return ((grads * (c / norms)[:, None]).sum(axis=0) + sigma * c * noise) / expected

    with np.errstate(divide="ignore", invalid="ignore"):
        assert "case 1" in _fails(scales_every_row_to_c, lesson10.DP_SGD_GRADIENT, capsys)

    def textbook_norm(grads, c, sigma, noise, expected):  # C / norm, without opacus's 1e-6: also right
        factors = np.minimum(1.0, c / np.maximum(np.linalg.norm(grads, axis=1), 1e-12))
        return ((grads * factors[:, None]).sum(axis=0) + sigma * c * noise) / expected

    assert check(textbook_norm, lesson10.DP_SGD_GRADIENT)
    capsys.readouterr()

    def actual_batch(grads, c, sigma, noise, expected):
        return lesson10.dp_sgd_gradient(grads, c, sigma, noise, len(grads))

    assert "case 4" in _fails(actual_batch, lesson10.DP_SGD_GRADIENT, capsys)

    def per_coordinate_clip(grads, c, sigma, noise, expected):
        return (np.clip(grads, -c, c).sum(axis=0) + sigma * c * noise) / expected

    assert "case 1" in _fails(per_coordinate_clip, lesson10.DP_SGD_GRADIENT, capsys)


def test_lesson10_references_agree_with_the_library():
    for case in lesson10.CANARY_EXPOSURE.all_cases():
        assert lesson10.canary_exposure(*case) == pv.exposure(*case)
    for case in lesson10.MEMBERSHIP_AUC.all_cases():
        expected, got = lesson10.membership_auc(*case), pv.auc(*case)
        assert (math.isnan(expected) and math.isnan(got)) or expected == pytest.approx(got)
    for members, nonmembers, threshold in lesson10.LOSS_THRESHOLD_ATTACK.all_cases():
        fpr, tpr = pv.roc_curve(-members, -nonmembers)  # the attack is one point of the ROC curve
        attack = lesson10.loss_threshold_attack(members, nonmembers, threshold)
        assert any(np.isclose(f, attack["fpr"]) and np.isclose(t, attack["tpr"]) for f, t in zip(fpr, tpr)) or (
            attack["tpr"] == 0 and attack["fpr"] == 0)


def test_dp_sgd_gradient_is_what_opacus_hands_the_optimizer():
    """opacus clips, sums, adds noise and divides by the expected batch size: the exercise, to the float."""
    import torch
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2, bias=False)
    x = torch.tensor([[3.0, 0.0, 1.0], [0.1, 0.2, -0.1], [0.0, 0.0, 0.0], [-2.0, 1.0, 4.0]])
    model = GradSampleModule(layer)
    sigma, c, expected = 0.7, 1.0, 5
    optimizer = DPOptimizer(torch.optim.SGD(model.parameters(), lr=1.0), noise_multiplier=sigma, max_grad_norm=c,
                            expected_batch_size=expected, generator=torch.Generator().manual_seed(3))
    (model(x) ** 2).sum(dim=1).mean().backward()
    per_example = layer.weight.grad_sample.reshape(4, -1).double().numpy()  # [4, 6]: opacus's per-example grads
    optimizer.pre_step()  # clip, sum, add noise, scale: p.grad is what SGD would now apply
    noise = torch.normal(0.0, sigma * c, size=(2, 3), generator=torch.Generator().manual_seed(3))
    expected_grad = lesson10.dp_sgd_gradient(per_example, c, sigma, noise.reshape(-1).double().numpy() / (sigma * c),
                                             expected)
    assert np.allclose(layer.weight.grad.reshape(-1).double().numpy(), expected_grad, atol=1e-6)


# --------------------------------------------------------------------------------------------
# On the real tiny model
# --------------------------------------------------------------------------------------------

TINY = pv.PrivacyConfig(n_members=4, n_nonmembers=4, insertions=(0, 6), secret_digits=2, epochs=3, batch_size=4,
                        learning_rate=5e-3, max_length=32, noise_multiplier=1.0, seed=0)


@pytest.fixture(scope="module")
def base_model():
    from llmsafety.models import load_chat_model

    return load_chat_model(device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def tuned():
    """A fresh model fine-tuned (plain) on 4 records and a canary planted 6 times: ``(model, log, canaries)``."""
    from llmsafety.models import load_chat_model

    model = load_chat_model(device="cpu", dtype="float32")
    canaries = pv.make_canaries(TINY)
    texts = pv.training_texts(pv.fake_records(TINY.n_members, TINY.seed), canaries, TINY.seed)
    return model, pv.fine_tune(model, texts, TINY), canaries


@pytest.mark.slow
def test_candidate_log_likelihoods_are_exact(base_model):
    import torch

    prefix = "Ana Kovac's PIN is "
    scores = pv.candidate_log_likelihoods(base_model, prefix, 3)
    assert scores.shape == (1000,) and np.all(scores < 0) and np.exp(scores).sum() <= 1.0
    tok = base_model.tokenizer
    for candidate in ("000", "481", "999"):  # the tree against one full forward pass per candidate
        ids = tok(prefix + candidate, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(base_model.model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
        n = len(ids) - 3
        direct = sum(float(logp[n - 1 + j, ids[n + j]]) for j in range(3))
        assert scores[int(candidate)] == pytest.approx(direct, abs=1e-4)
    with pytest.raises(ValueError, match="n_digits"):
        pv.candidate_log_likelihoods(base_model, prefix, pv.MAX_SECRET_DIGITS + 1)


@pytest.mark.slow
def test_text_losses_do_not_depend_on_the_batch(base_model):
    texts = pv.fake_records(3, seed=1) + ["Short."]
    together = pv.text_losses(base_model, texts, batch_size=4)
    alone = np.array([pv.text_losses(base_model, [t])[0] for t in texts])
    assert together.shape == (4,) and np.allclose(together, alone, atol=1e-4)  # right padding: same positions


@pytest.mark.slow
def test_the_plain_fine_tune_memorises_the_planted_canary(base_model, tuned):
    model, log, canaries = tuned
    assert hasattr(model.model, "peft_config") and log["epsilon"] is None and log["steps"] == 3 * 3
    assert log["epoch_losses"][-1] < log["epoch_losses"][0]
    before, after = pv.canary_exposures(base_model, canaries), pv.canary_exposures(model, canaries)
    planted = canaries["insertions"] > 0
    assert (after.loc[planted, "exposure"] > before.loc[planted, "exposure"]).all()
    assert after.loc[planted, "rank"].iloc[0] == 1 and after.loc[planted, "p_secret"].iloc[0] > 0.3
    table = pv.extraction_table(model, canaries, after, n_samples=16)
    assert table.loc[planted, "greedy_hit"].all() and table.loc[planted, "sampled_hits"].iloc[0] >= 4
    assert np.allclose(table["p_any_hit"], 1 - (1 - table["p_secret"]) ** 16)
    members = pv.fake_records(TINY.n_members, TINY.seed)
    assert pv.text_losses(model, members).mean() < pv.text_losses(base_model, members).mean()


@pytest.mark.slow
def test_the_dp_fine_tune_counts_its_epsilon_and_leaves_no_hooks():
    from llmsafety.models import generate, load_chat_model

    model = load_chat_model(device="cpu", dtype="float32")
    canaries = pv.make_canaries(TINY)
    texts = pv.training_texts(pv.fake_records(TINY.n_members, TINY.seed), canaries, TINY.seed)
    log = pv.fine_tune(model, texts, TINY, private=True)
    batches_per_epoch = math.ceil(len(texts) / TINY.batch_size)
    assert log["sample_rate"] == pytest.approx(1 / batches_per_epoch) and log["steps"] == 3 * batches_per_epoch
    assert log["epsilon"] == pytest.approx(pv.dp_epsilon(1.0, log["sample_rate"], log["steps"], TINY.delta))
    assert 0 < log["epsilon"] < math.inf
    hooked = [name for name, m in model.model.named_modules() if m._forward_hooks or m._backward_hooks]
    assert hooked == []  # opacus's per-example gradient hooks are gone
    assert not any(hasattr(p, "grad_sample") and p.grad_sample is not None for p in model.model.parameters())
    assert len(generate(model, ["Hi"], max_new_tokens=4, temperature=0.0, progress=False)[0]) > 0

    # An empty Poisson batch: no forward pass, but a noisy step that the accountant counts
    import torch
    from opacus.accountants import RDPAccountant
    from opacus.grad_sample import GradSampleHooks
    from opacus.optimizers import DPOptimizer

    params = [p for p in model.model.parameters() if p.requires_grad]
    hooks = GradSampleHooks(model.model)
    optimizer = DPOptimizer(torch.optim.SGD(params, lr=1.0), noise_multiplier=1.0, max_grad_norm=1.0,
                            expected_batch_size=4, generator=torch.Generator().manual_seed(0))
    accountant = RDPAccountant()
    optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=0.5))
    ids, mask = pv._right_padded(model.tokenizer, ["Maria from Porto called."], 16)
    empty = (ids[:0], mask[:0])
    before = [p.detach().clone() for p in params]
    try:
        losses, epoch_losses, steps = pv._train_steps(model.model, [(ids, mask), empty], optimizer, 1, model.device)
    finally:
        hooks.cleanup()
    assert steps == 2 and len(losses) == 1 and accountant.history == [(1.0, 0.5, 2)]
    assert any(not torch.equal(b, p) for b, p in zip(before, params))
