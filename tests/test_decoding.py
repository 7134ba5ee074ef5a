"""The decoding loop: its sampler on hand-made distributions (unit), greedy agreement with
transformers' ``generate`` on the embedded SmolLM2 (integration)."""

import pytest
import torch

from llmsafety.decoding import decode, sample_from_probs, sample_next_token, top_p_filter_sorted
from llmsafety.models import chat_prompt_ids, load_chat_model


def _frequencies(draw, n_draws: int, vocab: int) -> torch.Tensor:
    counts = torch.bincount(draw(n_draws), minlength=vocab).float()
    return counts / n_draws


def test_top_p_keeps_the_smallest_set_that_reaches_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])

    def kept(p):
        return (top_p_filter_sorted(probs, p) > 0).int().tolist()[0]

    assert kept(0.75) == [1, 1, 0, 0]
    assert kept(0.79) == [1, 1, 0, 0]
    assert kept(0.81) == [1, 1, 1, 0]  # 0.5 + 0.3 falls short of 0.81: the third token joins
    assert kept(0.1) == [1, 0, 0, 0]  # the top token always stays
    assert torch.equal(top_p_filter_sorted(probs, 0.81)[0, :3], probs[0, :3])  # kept values unchanged


def test_inverse_cdf_sampling_follows_the_distribution_and_never_picks_zero_mass():
    torch.manual_seed(0)
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3, 0.0])
    freq = _frequencies(lambda n: sample_from_probs(probs.expand(n, -1)), 40_000, 5)
    assert freq[1] == 0 and freq[4] == 0
    assert torch.allclose(freq, probs, atol=0.01), freq


def test_unnormalised_rows_are_sampled_in_proportion():
    torch.manual_seed(1)
    weights = torch.tensor([2.0, 6.0, 0.0, 2.0])
    freq = _frequencies(lambda n: sample_from_probs(weights.expand(n, -1)), 40_000, 4)
    assert torch.allclose(freq, weights / weights.sum(), atol=0.01), freq


@pytest.mark.parametrize("candidates", [3, 64])  # 3: the nucleus overflows the candidates, full-sort path
def test_top_p_sampling_matches_the_renormalised_nucleus(candidates):
    torch.manual_seed(2)
    vocab = 50
    logits = torch.randn(vocab) * 0.5
    temperature, top_p = 0.9, 0.8
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    kept = top_p_filter_sorted(sorted_probs.unsqueeze(0), top_p).squeeze(0)
    expected = torch.zeros(vocab).scatter(0, order, kept / kept.sum())
    assert (expected > 0).sum() > 3  # the overflow case really overflows

    def draw(n):
        return sample_next_token(logits.expand(n, -1), temperature=temperature, top_p=top_p, candidates=candidates)

    freq = _frequencies(draw, 40_000, vocab)
    assert freq[expected == 0].sum() == 0
    assert torch.allclose(freq, expected, atol=0.012), (freq - expected).abs().max()


def test_mixed_rows_some_overflowing_some_not():
    torch.manual_seed(3)
    peaked = torch.full((10,), -20.0)
    peaked[4] = 5.0  # all the mass on token 4: inside 2 candidates
    flat = torch.zeros(10)  # uniform: the nucleus needs 8 of 10 tokens
    logits = torch.stack([peaked, flat] * 2000)
    tokens = sample_next_token(logits, temperature=1.0, top_p=0.75, candidates=2)
    assert (tokens[0::2] == 4).all()
    assert len(set(tokens[1::2].tolist())) >= 7


def test_greedy_is_argmax():
    logits = torch.tensor([[0.1, 3.0, -1.0], [2.0, 0.0, 1.9]])
    assert sample_next_token(logits, temperature=0).tolist() == [1, 0]


@pytest.fixture(scope="module")
def smollm2():
    return load_chat_model()


def test_greedy_decode_equals_transformers_generate(smollm2):
    tok, net = smollm2.tokenizer, smollm2.model
    prompts = ["How do I bake bread?", "Name three colours.", "Write one sentence about the sea, please, in French."]
    batch = tok.pad({"input_ids": chat_prompt_ids(tok, prompts)}, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # left padding is exercised
    expected = net.generate(**batch, max_new_tokens=20, do_sample=False, pad_token_id=tok.pad_token_id)
    expected = expected[:, batch["input_ids"].shape[1]:]
    ours = decode(net, batch["input_ids"], batch["attention_mask"], max_new_tokens=20,
                  eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id)
    assert torch.equal(ours, expected)


def test_decode_stops_when_every_row_has_ended(smollm2):
    tok, net = smollm2.tokenizer, smollm2.model
    batch = tok.pad({"input_ids": chat_prompt_ids(tok, ["Say only: yes."])}, return_tensors="pt")
    ours = decode(net, batch["input_ids"], batch["attention_mask"], max_new_tokens=200,
                  eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id)
    assert ours.shape[1] < 200 and ours[0, -1].item() == tok.eos_token_id
