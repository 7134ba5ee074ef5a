"""A plain decoding loop for batched chat replies: prefill once, then one token per step.

Why not ``model.generate``? On a 2-core CPU at batch 64 its sampling step costs more than the
model: nucleus (top-p) sampling sorts the whole 49k-token vocabulary of every row each step
(~155 ms) and ``torch.multinomial`` draws over all of it (~88 ms), next to a forward pass of
~360 ms (benchmarks/results/speed/generation_cpu.md). This loop samples the same distribution for a
fraction of that:

- **top-p without a full sort.** The nucleus of a chat model is almost always inside its few
  hundred most likely tokens, so we sort only ``torch.topk(probs, candidates)``; a row whose
  candidates hold less than ``top_p`` of the mass (rare) falls back to the full sort, so the
  result is exact, not an approximation.
- **one uniform number per row.** Sampling from a categorical distribution is a search of one
  uniform draw in the cumulative probabilities (inverse CDF), not a draw over every token.

The rest follows ``generate`` step for step (left padding, position ids from the attention mask,
finished rows padded, stop when every row has ended), so greedy decoding gives the same tokens
(tested against ``generate``). Sampled tokens follow the same distribution but not the same
random stream: a seed gives the same replies on every run of this loop, not the ones ``generate`` gave.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch

#: Candidates sorted for top-p; a row whose nucleus is larger falls back to a full sort.
TOP_P_CANDIDATES = 256


def sample_from_probs(probs: torch.Tensor) -> torch.Tensor:
    """One token id per row of ``probs`` [batch, vocab] (rows need not sum to 1) -> [batch].

    Inverse CDF: the first token whose cumulative mass exceeds ``u * total``, ``u`` uniform.
    The cumulative sum is taken in float64 so tokens of tiny probability keep their share.
    """
    cumulative = probs.to(torch.float64).cumsum(dim=-1)  # [batch, vocab]
    u = torch.rand(probs.shape[0], 1, dtype=torch.float64, device=probs.device) * cumulative[:, -1:]
    index = torch.searchsorted(cumulative, u, right=True)  # [batch, 1]
    return index.clamp_(max=probs.shape[-1] - 1).squeeze(-1)


def top_p_filter_sorted(sorted_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tokens outside the nucleus of probabilities sorted in descending order.

    A token stays when the mass of the tokens before it is below ``top_p`` (so the most likely
    token always stays): the smallest set whose mass reaches ``top_p``, as transformers' top-p.
    """
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    return sorted_probs.masked_fill(mass_before >= top_p, 0.0)


def sample_next_token(
    logits: torch.Tensor, *, temperature: float, top_p: float = 1.0, candidates: int = TOP_P_CANDIDATES
) -> torch.Tensor:
    """Next token ids [batch] from last-position ``logits`` [batch, vocab].

    ``temperature == 0``: greedy (argmax). Else softmax(logits / temperature), restricted to the
    top-p nucleus when ``top_p < 1``, sampled with the global torch RNG (seed it to reproduce).
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [batch, vocab]
    if top_p >= 1.0:
        return sample_from_probs(probs)
    k = min(candidates, probs.shape[-1])
    top_probs, top_ids = probs.topk(k, dim=-1)  # [batch, k], sorted descending
    overflow = top_probs.sum(dim=-1) < top_p  # the nucleus is larger than the candidates
    if bool(overflow.any()):
        full_probs, full_ids = probs[overflow].sort(dim=-1, descending=True)
        tokens = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
        tokens[overflow] = full_ids.gather(
            -1, sample_from_probs(top_p_filter_sorted(full_probs, top_p)).unsqueeze(-1)
        ).squeeze(-1)
        inside = ~overflow
        if bool(inside.any()):
            picked = sample_from_probs(top_p_filter_sorted(top_probs[inside], top_p))
            tokens[inside] = top_ids[inside].gather(-1, picked.unsqueeze(-1)).squeeze(-1)
        return tokens
    picked = sample_from_probs(top_p_filter_sorted(top_probs, top_p))  # [batch]
    return top_ids.gather(-1, picked.unsqueeze(-1)).squeeze(-1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids [batch, len] of left-padded prompts: the real tokens at 0, 1, ...; pads at 1.

    Pads are masked, so their position only has to be valid; 1 is what ``generate`` gives them.
    """
    return (attention_mask.long().cumsum(dim=-1) - 1).masked_fill_(attention_mask == 0, 1)


@torch.no_grad()
def decode(
    net,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """New token ids [batch, <= max_new_tokens] for left-padded prompts ``input_ids`` [batch, len].

    Rows that end (an EOS token) are padded with ``pad_token_id`` until every row has ended or
    ``max_new_tokens`` is reached, as ``generate`` does. ``net``: a causal LM (peft-wrapped too).
    """
    attention_mask = attention_mask.long()
    position_ids = position_ids_from_mask(attention_mask)
    eos = torch.tensor(list(eos_token_ids), device=input_ids.device)
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    new_tokens: list[torch.Tensor] = []
    cache_name = _cache_argument(net)
    out = net(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
              use_cache=True, logits_to_keep=1)
    for step in range(max_new_tokens):
        token = sample_next_token(out.logits[:, -1, :], temperature=temperature, top_p=top_p)  # [batch]
        token = torch.where(unfinished, token, torch.full_like(token, pad_token_id))
        new_tokens.append(token)
        unfinished &= ~torch.isin(token, eos)
        if not bool(unfinished.any()) or step == max_new_tokens - 1:
            break
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=-1)
        position_ids = position_ids[:, -1:] + 1
        cache = out["cache"] if "cache" in out else out["past_key_values"]  # newer / older transformers
        out = net(input_ids=token.unsqueeze(-1), attention_mask=attention_mask, position_ids=position_ids,
                  use_cache=True, logits_to_keep=1, **{cache_name: cache})
    return torch.stack(new_tokens, dim=-1)


def _cache_argument(net) -> str:
    """``cache`` (transformers >= 5.2x) or ``past_key_values`` (older): what the model's forward takes."""
    base = net.get_base_model() if hasattr(net, "get_base_model") else net  # peft wraps the model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"
