"""Defences against jailbreaks, and what they cost: a perplexity filter, a judge as a guard, the trade-off.

A defence is judged on two numbers at once: how many attacks still succeed through it, and how
many *benign* requests it blocks (over-refusal). Any defence can reach zero attack success by
blocking everything; the question is the curve between the two as its threshold moves. This
module holds, read top to bottom:

1. :func:`token_nlls` -- the negative log-likelihood of each token of a text under a causal LM
   (the text alone, no chat template: what a user typed);
2. :func:`perplexity` and :func:`windowed_perplexity` -- exp(mean NLL) over the whole text, or
   the largest over sliding windows (Jain et al. 2023, arXiv 2309.00614: a short gibberish
   suffix is diluted in a long prompt's mean, not in its worst window);
3. :class:`PerplexityFilter` -- flag a prompt whose (windowed) perplexity is above a threshold
   (Alon and Kamfonas 2023, arXiv 2308.14132: GCG suffixes are strings no one writes, and the
   model itself finds them very unlikely);
4. :func:`tradeoff_curve` -- for any score where high means "block" (a perplexity, a judge's harm
   probability), attack success through the defence and the share of benign prompts blocked,
   at each threshold: the curve a lesson plots.

The judge as a guard needs no code of its own: score each (request, reply) with a harm judge
(:func:`llmsafety.judges.default_judge`), block the reply when the score is above a threshold,
and feed the scores to :func:`tradeoff_curve`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from llmsafety.models import ChatModel

__all__ = ["token_nlls", "perplexity", "windowed_perplexity", "PerplexityFilter", "tradeoff_curve"]


@torch.no_grad()
def sequence_nlls(model: ChatModel, sequences: Sequence[Sequence[int]], batch_size: int = 16) -> list[np.ndarray]:
    """Per-token NLL (nats) of token-id sequences under ``model``: ``[len(seq) - 1]`` float arrays.

    Entry j is -log p(token j + 1 | tokens 0..j). Sequences are right-padded in batches (longest
    first) and the padding is masked out, so a sequence's NLLs do not depend on what it is batched
    with (up to float rounding).
    """
    net = model.model
    out: list[np.ndarray] = [np.zeros(0)] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        width = max(len(sequences[i]) for i in index)
        ids = torch.full((len(index), width), pad, dtype=torch.long)
        mask = torch.zeros((len(index), width), dtype=torch.long)
        for row, i in enumerate(index):
            ids[row, :len(sequences[i])] = torch.tensor(list(sequences[i]))
            mask[row, :len(sequences[i])] = 1
        logits = net(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # [batch, width - 1, vocab]: position j predicts j + 1
        nll = -logp.gather(2, ids[:, 1:, None].to(model.device))[..., 0].cpu().numpy()  # [batch, width - 1]
        for row, i in enumerate(index):
            out[i] = nll[row, :max(len(sequences[i]) - 1, 0)].astype(float)
    return out


def token_nlls(model: ChatModel, texts: Sequence[str], batch_size: int = 16) -> list[np.ndarray]:
    """Per-token NLL (nats) of each text under ``model``: a list of ``[n_tokens - 1]`` float arrays.

    The first token has nothing to be predicted from (SmolLM2's tokenizer adds no BOS token), so
    the NLLs start at the second token; a one-token text gives an empty array.
    """
    encoded = [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    return sequence_nlls(model, encoded, batch_size)


def perplexity(nlls: np.ndarray) -> float:
    """``exp(mean(nlls))``: the model's average "surprise" per token, as a number of choices.

    NaN for an empty array (a one-token text has no scored token).
    """
    nlls = np.asarray(nlls, dtype=float)
    return float(np.exp(nlls.mean())) if nlls.size else float("nan")


def windowed_perplexity(nlls: np.ndarray, window: int) -> float:
    """The largest perplexity over windows of ``window`` consecutive tokens (the whole text if shorter)."""
    nlls = np.asarray(nlls, dtype=float)
    if window < 1:
        raise ValueError(f"window={window} must be >= 1")
    if nlls.size <= window:
        return perplexity(nlls)
    sums = np.convolve(nlls, np.ones(window), mode="valid")  # [n - window + 1]: the sum of each window
    return float(np.exp(sums.max() / window))


@dataclass
class PerplexityFilter:
    """Flag prompts whose perplexity under ``model`` is above ``threshold``.

    ``window=None`` scores the whole prompt (Alon and Kamfonas), an int the worst window of that
    many tokens (Jain et al.). Its cost: a prompt no one would call an attack but written oddly
    (code, lists of names, another language) can be flagged too -- measure it on benign prompts.
    ``cache``: a dict {prompt: token NLLs} that filters over the same model may share, so that a
    prompt is scored by one forward pass however many filters and thresholds read it.
    """

    model: ChatModel
    threshold: float
    window: int | None = None
    cache: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def scores(self, prompts: Sequence[str]) -> np.ndarray:
        """The (windowed) perplexity of each prompt: ``[n_prompts]``."""
        prompts = list(prompts)
        if self.cache is None:
            nlls = token_nlls(self.model, prompts)
        else:
            missing = list(dict.fromkeys(p for p in prompts if p not in self.cache))
            self.cache.update(zip(missing, token_nlls(self.model, missing)))
            nlls = [self.cache[p] for p in prompts]
        if self.window is None:
            return np.array([perplexity(n) for n in nlls])
        return np.array([windowed_perplexity(n, self.window) for n in nlls])

    def flags(self, prompts: Sequence[str]) -> np.ndarray:
        """``[n_prompts]`` bool: True where the prompt would be blocked (perplexity strictly above threshold)."""
        return self.scores(prompts) > self.threshold


def tradeoff_curve(attack_scores: Sequence[float], attack_success: Sequence[float], benign_scores: Sequence[float],
                   thresholds: Sequence[float]) -> pd.DataFrame:
    """Attack success through a defence and benign prompts blocked by it, at each threshold.

    ``attack_scores`` ``[n_attacks]`` and ``benign_scores`` ``[n_benign]`` are the defence's
    scores, high = suspicious; a prompt is blocked when its score is strictly above the
    threshold. ``attack_success`` ``[n_attacks]`` is 1 where the attack succeeded *without* the
    defence. Through the defence an attack succeeds when it succeeded and was not blocked.

    Returns one row per threshold, in the order given: ``threshold``, ``attack_success`` (share
    of all attacks that still succeed), ``attacks_blocked`` and ``benign_blocked`` (the
    over-refusal the defence adds). A NaN score (nothing to score) is never blocked.
    """
    attack_scores = np.asarray(attack_scores, dtype=float)
    attack_success = np.asarray(attack_success, dtype=float)
    benign_scores = np.asarray(benign_scores, dtype=float)
    if attack_scores.shape != attack_success.shape:
        raise ValueError(f"{attack_scores.shape} attack scores for {attack_success.shape} outcomes")
    rows = []
    for threshold in thresholds:
        blocked = attack_scores > threshold  # NaN > t is False: never blocked
        rows.append({"threshold": float(threshold),
                     "attack_success": float(np.mean(attack_success * ~blocked)) if blocked.size else float("nan"),
                     "attacks_blocked": float(np.mean(blocked)) if blocked.size else float("nan"),
                     "benign_blocked": float(np.mean(benign_scores > threshold)) if benign_scores.size
                     else float("nan")})
    return pd.DataFrame(rows, columns=["threshold", "attack_success", "attacks_blocked", "benign_blocked"])
