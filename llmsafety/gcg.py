"""Greedy Coordinate Gradient (GCG): a white-box adversarial suffix, small enough to read and run on a CPU.

Zou et al. 2023 (*Universal and Transferable Adversarial Attacks on Aligned Language Models*,
arXiv 2307.15043) append a run of tokens to a harmful request and change them, one at a time,
to make the model's reply start with a chosen *target string* ("Sure, here is ..."): once a
model has written a compliant opening it tends to go on. The loss is the cross-entropy of the
target tokens given the prompt; each step

1. takes the gradient of that loss with respect to a one-hot encoding of the suffix
   (``[n_suffix, vocab]``): a first-order guess of how much swapping each suffix token for each
   vocabulary token would lower the loss;
2. keeps, per position, the ``topk`` most promising tokens, and draws ``search_width`` candidate
   suffixes, each with one random position swapped for one of its top tokens;
3. computes the *true* loss of every candidate in one batched forward pass and moves to the best.

Step 3 is where the time goes. Two things keep it small here: the chat template and the goal in
front of the suffix are the same for every candidate, so they run once and every candidate
reuses their key/value cache; and logits are computed only at the target positions.

Why not the ``nanogcg`` package: its release on PyPI (0.3.0) requires transformers <= 4.47.1,
and installing it downgrades the transformers (>= 4.56) this project needs. This module is the
same algorithm (without nanogcg's buffer of several suffixes and its probe sampling), for
Llama-style causal LMs such as SmolLM2.

Tokenisation: a suffix is a list of token ids, but a Target reads text. A candidate is kept only
if its text, rendered in the chat template with the goal, re-tokenises to exactly the ids that
were optimised; so :func:`generate` on ``goal + result.suffix`` sees the optimised tokens.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from llmsafety.decoding import _cache_argument
from llmsafety.models import ChatModel, _as_messages

__all__ = ["GCGResult", "gcg_attack", "target_logprob", "allowed_token_mask"]

_SLOT = "\x00SUFFIX\x00"  # a marker that no tokenizer merges with its neighbours


@dataclass
class GCGResult:
    """What :func:`gcg_attack` found.

    ``suffix`` is the best suffix's text (it starts with a space: append it to the goal as it is)
    and ``suffix_ids`` its ``[n_suffix]`` token ids; ``losses`` the loss of the current suffix
    before the first step and after each step (``[steps + 1]``, cross-entropy per target token,
    nats); ``best_loss`` the lowest loss seen, the one ``suffix`` has; ``init_loss`` the starting
    suffix's; ``steps`` how many steps ran (fewer than asked when the time budget ran out).
    """

    goal: str
    target: str
    suffix: str
    suffix_ids: list[int]
    init_suffix: str
    losses: list[float] = field(default_factory=list)
    init_loss: float = float("nan")
    best_loss: float = float("nan")
    steps: int = 0
    seconds: float = 0.0

    @property
    def prompt(self) -> str:
        """The attack: the goal followed by the optimised suffix."""
        return self.goal + self.suffix


_ALLOWED: dict[int, torch.Tensor] = {}  # by id(tokenizer): decoding the whole vocabulary takes a second


def _allowed(tokenizer) -> torch.Tensor:
    if id(tokenizer) in _ALLOWED:
        return _ALLOWED[id(tokenizer)]
    vocab = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    texts = tokenizer.batch_decode([[i] for i in range(vocab)])
    allowed = [i not in special and t.isascii() and t.isprintable() and t.strip() != "" for i, t in enumerate(texts)]
    _ALLOWED[id(tokenizer)] = torch.tensor(allowed)
    return _ALLOWED[id(tokenizer)]


def allowed_token_mask(tokenizer, n_embeddings: int | None = None) -> torch.Tensor:
    """``[vocab]`` bool: tokens a suffix may use -- printable ASCII, not blank, not special tokens.

    As in the GCG paper's code: non-ASCII and control tokens make suffixes that do not survive
    being copied as text, and special tokens (``<|im_end|>``) would end the user turn.
    ``n_embeddings`` pads the mask with ``False`` up to the embedding matrix's row count.
    """
    mask = _allowed(tokenizer)
    if n_embeddings is not None and n_embeddings > len(mask):
        mask = torch.cat([mask, torch.zeros(n_embeddings - len(mask), dtype=torch.bool)])
    return mask


def _segments(model: ChatModel, goal: str, system: str | None) -> tuple[str, str]:
    """The chat-rendered prompt cut at the suffix's place: (text before it, text after it)."""
    text = model.tokenizer.apply_chat_template(_as_messages(goal + _SLOT, system), tokenize=False,
                                               add_generation_prompt=True)
    before, after = text.split(_SLOT)
    return before, after


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class _Problem:
    """One goal and target, tokenised once, with the prefix's key/value cache."""

    def __init__(self, model: ChatModel, goal: str, target: str, system: str | None):
        self.model, self.net, self.tok = model, model.model, model.tokenizer
        self.before_text, self.after_text = _segments(model, goal, system)
        device = model.device
        self.before = torch.tensor([_ids(self.tok, self.before_text)], device=device)  # [1, n_before]
        self.after = torch.tensor(_ids(self.tok, self.after_text), device=device)  # [n_after]
        self.target = torch.tensor(_ids(self.tok, target), device=device)  # [n_target]
        self.cache_name = _cache_argument(self.net)
        with torch.no_grad():
            out = self.net(input_ids=self.before, use_cache=True, logits_to_keep=1)
        self.prefix_cache = out["cache"] if "cache" in out else out["past_key_values"]

    def _cache(self, batch: int):
        cache = copy.deepcopy(self.prefix_cache)  # a forward pass appends to the cache it is given
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        return cache

    def _loss_from_embeds(self, embeds: torch.Tensor) -> torch.Tensor:
        """``embeds`` ``[batch, n_suffix + n_after + n_target, d]`` -> per-row mean target CE ``[batch]``."""
        n_target = len(self.target)
        out = self.net(inputs_embeds=embeds, use_cache=True, logits_to_keep=n_target + 1,
                       **{self.cache_name: self._cache(embeds.shape[0])})
        logits = out.logits[:, :-1].float()  # [batch, n_target, vocab]: position j predicts target[j]
        target = self.target.expand(embeds.shape[0], -1)
        return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(dim=1)

    def _rest_embeds(self, batch: int) -> torch.Tensor:
        table = self.net.get_input_embeddings()
        rest = table(torch.cat([self.after, self.target]))  # [n_after + n_target, d]
        return rest.unsqueeze(0).expand(batch, -1, -1)

    def gradient(self, suffix: torch.Tensor) -> tuple[torch.Tensor, float]:
        """d loss / d one-hot(suffix): ``[n_suffix, vocab]``, and the suffix's loss."""
        table = self.net.get_input_embeddings().weight  # [vocab, d]
        one_hot = F.one_hot(suffix, table.shape[0]).to(table.dtype).requires_grad_(True)  # [n_suffix, vocab]
        embeds = torch.cat([(one_hot @ table).unsqueeze(0), self._rest_embeds(1).detach()], dim=1)
        loss = self._loss_from_embeds(embeds)[0]
        (grad,) = torch.autograd.grad(loss, [one_hot])
        return grad, float(loss.detach())

    @torch.no_grad()
    def losses(self, candidates: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """The loss of each candidate suffix ``[n_candidates, n_suffix]``: ``[n_candidates]``."""
        table = self.net.get_input_embeddings()
        out = []
        for start in range(0, len(candidates), batch_size):
            chunk = candidates[start:start + batch_size]
            embeds = torch.cat([table(chunk), self._rest_embeds(len(chunk))], dim=1)
            out.append(self._loss_from_embeds(embeds))
        return torch.cat(out)

    def round_trips(self, suffix: Sequence[int]) -> bool:
        """Whether the suffix's text, rendered with the goal, re-tokenises to the same ids."""
        text = self.tok.decode(list(suffix))
        want = self.before[0].tolist() + list(suffix) + self.after.tolist()
        return _ids(self.tok, self.before_text + text + self.after_text) == want


def gcg_attack(model: ChatModel, goal: str, target: str, *, init_suffix: str = " ! ! ! ! ! ! ! !",
               steps: int = 20, search_width: int = 32, topk: int = 64, seed: int = 0,
               system: str | None = None, time_budget_s: float | None = None) -> GCGResult:
    """Optimise a suffix so that ``goal + suffix`` makes the model's reply begin with ``target``.

    ``init_suffix`` sets the suffix's length in tokens (GCG starts from a run of ``" !"``);
    ``steps`` coordinate steps of ``search_width`` candidates drawn from each position's ``topk``
    tokens by gradient; ``seed`` seeds the draws (a torch Generator of its own: the global RNG is
    untouched); ``system`` the system prompt the attack is optimised under (``None``: the model's
    default); ``time_budget_s`` stops early, after the step that crosses it. On a CPU, float
    rounding differs with the thread count, so two machines can pick different candidates after
    some steps; the seed fixes the draws, not the arithmetic.

    Returns a :class:`GCGResult`. The model's weights are not changed and need no gradient.
    """
    start = time.perf_counter()
    net = model.model
    was_training = net.training
    net.eval()
    requires = [p.requires_grad for p in net.parameters()]
    for p in net.parameters():  # only the one-hot input needs a gradient
        p.requires_grad_(False)
    try:
        problem = _Problem(model, goal, target, system)
        suffix = torch.tensor(_ids(model.tokenizer, init_suffix), device=model.device)
        if not problem.round_trips(suffix.tolist()):
            raise ValueError(f"init_suffix {init_suffix!r} does not survive re-tokenisation after the goal")
        allowed = allowed_token_mask(model.tokenizer, net.get_input_embeddings().weight.shape[0]).to(model.device)
        gen = torch.Generator().manual_seed(seed)
        result = GCGResult(goal=goal, target=target, suffix=init_suffix, suffix_ids=suffix.tolist(),
                           init_suffix=init_suffix)
        best_ids, best_loss = suffix.tolist(), float("inf")
        for step in range(steps + 1):
            grad, loss = problem.gradient(suffix)
            result.losses.append(loss)
            if loss < best_loss:
                best_ids, best_loss = suffix.tolist(), loss
            if step == steps or (time_budget_s is not None and time.perf_counter() - start > time_budget_s):
                break
            # 2. candidates: one random position each, swapped for one of its top-k tokens by -gradient
            grad = grad.masked_fill(~allowed, float("inf"))
            top = (-grad).topk(topk, dim=1).indices.cpu()  # [n_suffix, topk]
            positions = torch.randint(len(suffix), (search_width,), generator=gen)
            choices = torch.randint(topk, (search_width,), generator=gen)
            candidates = suffix.cpu().repeat(search_width, 1)
            candidates[torch.arange(search_width), positions] = top[positions, choices]
            keep = [c for c in dict.fromkeys(map(tuple, candidates.tolist())) if problem.round_trips(c)]
            if not keep:  # every candidate re-tokenised differently: draw again next step
                continue
            candidates = torch.tensor(keep, device=model.device)
            # 3. the true loss of every candidate; move to the best (even if worse: GCG does not stay put)
            suffix = candidates[int(problem.losses(candidates).argmin())]
            result.steps = step + 1
        result.init_loss = result.losses[0]
        result.best_loss = best_loss
        result.suffix_ids = best_ids
        result.suffix = model.tokenizer.decode(best_ids)
    finally:
        for p, r in zip(net.parameters(), requires):
            p.requires_grad_(r)
        net.train(was_training)
    result.seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def target_logprob(model: ChatModel, prompts: Sequence[str], targets: Sequence[str] | str,
                   system: str | None = None) -> np.ndarray:
    """``log p(target | prompt)`` summed over the target's tokens, per prompt: ``[n_prompts]`` (nats).

    Each prompt is one user turn rendered with the chat template (and ``system``), assistant turn
    opened; the target is what the reply would begin with. One forward pass per prompt, so no
    padding enters the numbers. A higher value means the model is more ready to open with the
    target: the quantity GCG raises (its loss is minus this, divided by the target's length).
    """
    prompts = list(prompts)
    targets = [targets] * len(prompts) if isinstance(targets, str) else list(targets)
    if len(targets) != len(prompts):
        raise ValueError(f"{len(targets)} targets for {len(prompts)} prompts")
    tok, net = model.tokenizer, model.model
    out = np.empty(len(prompts))
    for i, (prompt, target) in enumerate(zip(prompts, targets)):
        text = tok.apply_chat_template(_as_messages(prompt, system), tokenize=False, add_generation_prompt=True)
        prompt_ids, target_ids = _ids(tok, text), _ids(tok, target)
        ids = torch.tensor([prompt_ids + target_ids], device=model.device)
        logits = net(input_ids=ids, logits_to_keep=len(target_ids) + 1).logits[0, :-1].float()
        logp = torch.log_softmax(logits, dim=-1)  # [n_target, vocab]
        out[i] = float(logp.gather(1, torch.tensor(target_ids, device=model.device)[:, None]).sum())
    return out
