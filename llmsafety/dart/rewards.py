"""The Red LLM's reward: harm of the Target's reply + lambda * global novelty - penalties.

Each term is a plain callable with TRL's reward signature
``f(prompts, completions, completion_ids, **columns) -> list[float | None]``, so GRPOTrainer logs
each one separately (``rewards/harm_reward/mean`` ...) and weights them with ``reward_weights``.

The harm term is the expensive one: it asks the Target to reply to each attack and the judge to
score the reply. It records every (attack, reply, harm) it sees in :class:`RolloutLog`, so the red
phase's rollouts *are* the iteration's attacks and nothing is generated twice.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from llmsafety.diversity import global_novelty

_QUOTES = "\"'“”‘’`"


def extract_attack(completion: Any) -> str:
    """The attack prompt inside a red completion.

    The red model is asked to write only the prompt, but small models add a preamble ("Sure, here
    is a prompt:") or quotes. We keep the first non-empty paragraph after such a preamble.
    """
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        completion = completion[-1]["content"] if completion else ""
    text = str(completion).strip()
    text = re.sub(r"^(sure|okay|ok|here('s| is)|new prompt|prompt)\b[^:\n]{0,60}:\s*", "", text, flags=re.I)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n|\n(?=-|\d+\.)", text) if p.strip()]
    text = paragraphs[0] if paragraphs else ""
    text = re.sub(r"^(-|\*|\d+[.)])\s*", "", text)
    return text.strip().strip(_QUOTES).strip()


def degeneracy_penalty(attacks: Sequence[str], min_words: int = 5) -> np.ndarray:
    """1 for an attack too short to be a request or mostly one repeated word, else 0..1.

    Without it the red model can earn novelty with strings of random tokens (ours).
    """
    out = np.zeros(len(attacks))
    for i, attack in enumerate(attacks):
        words = re.findall(r"\w+", attack.lower())
        if len(words) < min_words:
            out[i] = 1.0
            continue
        repeated = 1.0 - len(set(words)) / len(words)  # 0 when every word is distinct
        out[i] = max(0.0, (repeated - 0.5) * 2)  # penalise only heavy repetition
    return out


@dataclass
class RolloutLog:
    """Every attack the red phase produced, with the Target's reply and each reward term."""

    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"target_replies": 0.0, "judging": 0.0, "novelty": 0.0})

    def by_attack(self) -> dict[str, dict[str, Any]]:
        return {r["attack"]: r for r in self.records}


class RedRewards:
    """Builds the three reward callables of one red phase around a Target, a judge and an archive.

    ``archive_embeddings``: embeddings of every attack of all *earlier* iterations (DART's global
    diversity: attacks are pushed away from everything the Target was already tuned on).
    """

    def __init__(
        self,
        *,
        reply_fn: Callable[[list[str]], list[str]],
        judge: Callable,
        embed_fn: Callable[[list[str]], np.ndarray],
        archive_embeddings: np.ndarray,
        novelty_kind: str = "nearest",
        min_attack_words: int = 5,
    ) -> None:
        self.reply_fn = reply_fn
        self.judge = judge
        self.embed_fn = embed_fn
        self.archive_embeddings = archive_embeddings
        self.novelty_kind = novelty_kind
        self.min_attack_words = min_attack_words
        self.log = RolloutLog()
        # TRL calls the reward functions in order on the same completions: harm_reward opens the
        # batch (extracts the attacks, appends their records), the other two fill those records in.
        self._batch_attacks: list[str] = []
        self._batch_start = 0

    # The three callables; their __name__ becomes the name TRL logs.
    def harm_reward(self, prompts, completions, completion_ids=None, category=None, trainer_state=None, **_):
        attacks = [extract_attack(c) for c in completions]
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        usable = [i for i, a in enumerate(attacks) if a]
        replies = [""] * len(attacks)
        harm: list[float | None] = [None] * len(attacks)
        reasons: list[str | None] = ["empty attack"] * len(attacks)
        if usable:
            t0 = time.perf_counter()
            got = self.reply_fn([attacks[i] for i in usable])
            t1 = time.perf_counter()
            result = self.judge([attacks[i] for i in usable], got)
            self.log.seconds["target_replies"] += t1 - t0
            self.log.seconds["judging"] += time.perf_counter() - t1
            for j, i in enumerate(usable):
                replies[i] = got[j]
                harm[i] = result.scores[j]
                reasons[i] = result.reasons[j] if hasattr(result, "reasons") else None
        categories = list(category) if category is not None else [None] * len(attacks)
        for i, attack in enumerate(attacks):
            self.log.records.append({
                "step": step, "attack": attack, "category": categories[i], "reply": replies[i],
                "harm": harm[i], "harm_reason": reasons[i] if harm[i] is None else None,
            })
        self._batch_start = len(self.log.records) - len(attacks)
        self._batch_attacks = attacks
        # An empty attack or an unscored reply gets the lowest harm, not NaN: GRPO needs a number
        # to push the red model away from it; the record keeps the reason.
        return [0.0 if h is None else float(h) for h in harm]

    def _batch_records(self) -> list[dict[str, Any]]:
        return self.log.records[self._batch_start : self._batch_start + len(self._batch_attacks)]

    def novelty_reward(self, prompts, completions, **_):
        attacks = self._batch_attacks
        t0 = time.perf_counter()
        texts = [a if a else "(empty)" for a in attacks]
        emb = self.embed_fn(texts)
        novelty = global_novelty(emb, self.archive_embeddings, kind=self.novelty_kind)
        novelty = np.where([bool(a) for a in attacks], novelty, 0.0)
        self.log.seconds["novelty"] += time.perf_counter() - t0
        for k, rec in enumerate(self._batch_records()):
            rec["novelty"] = float(novelty[k])
            rec["embedding"] = emb[k]
        return novelty.tolist()

    def degeneracy_reward(self, prompts, completions, **_):
        penalty = degeneracy_penalty(self._batch_attacks, self.min_attack_words)
        for k, rec in enumerate(self._batch_records()):
            rec["degeneracy"] = float(penalty[k])
        return (-penalty).tolist()

    def reward_funcs(self) -> list[Callable]:
        return [self.harm_reward, self.novelty_reward, self.degeneracy_reward]


def total_reward(harm: np.ndarray, novelty: np.ndarray, degeneracy: np.ndarray,
                 diversity_weight: float, length_penalty_weight: float) -> np.ndarray:
    """reward = harm + lambda * novelty - mu * degeneracy (what GRPO optimises, before group scaling)."""
    return np.asarray(harm) + diversity_weight * np.asarray(novelty) - length_penalty_weight * np.asarray(degeneracy)
