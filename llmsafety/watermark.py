"""A green-list watermark for generated text, its detector, what it costs and how it is removed.

Kirchenbauer et al. 2023 (*A Watermark for Large Language Models*, arXiv 2301.10226) mark text as
it is generated, with no change to the model: before each token is sampled, a secret key and the
*previous* token seed a random split of the vocabulary into a **green list** (a fraction
``gamma``) and a red list, and a bias ``delta`` is added to the logits of the green tokens. The
model then picks green tokens more often than chance. Anyone who knows the key can recompute every
green list from the text alone and count: unwatermarked text has about ``gamma * T`` green tokens
out of ``T``, watermarked text many more, and a one-sided z-test says how surprising the count is.
This module holds, read top to bottom:

1. :class:`WatermarkConfig` -- gamma, delta, the key, which random generator draws the split;
2. :func:`green_list` and :func:`green_mask` -- the green tokens that may follow a given token;
3. :class:`GreenListLogitsProcessor` -- the bias as a ``transformers`` ``LogitsProcessor``, for
   ``model.generate(..., logits_processor=[...])``; :func:`generate_texts` generates with or
   without it, every text of the same length;
4. :func:`z_score`, :func:`p_value`, :func:`score_tokens`, :func:`detect` and
   :func:`detect_texts` -- the detector: green counts, z, p, a flag above a z threshold;
   :func:`z_by_length` -- z after each prefix, to see it grow with the length;
5. :func:`roc_curve`, :func:`roc_auc` and :func:`auc_ci` -- how well z separates watermarked from
   plain text, with a stratified bootstrap interval;
6. :func:`continuation_nlls` -- the quality cost: the watermarked text's likelihood under the
   model without the watermark (a perplexity);
7. :func:`paraphrase` and :func:`substitute_words` -- two removal attacks: a model rewrites the
   text (Krishna et al. 2023, arXiv 2303.13408), or a share of the words is replaced.

**The reference.** ``transformers`` ships the same scheme: ``WatermarkLogitsProcessor`` and
``WatermarkDetector`` (``seeding_scheme="lefthash"``, ``context_width=1``), from the authors'
follow-up (arXiv 2306.04634). With ``rng="torch"`` (the default) this module draws the split
exactly as they do -- ``torch.randperm(vocab_size)`` from a CPU generator seeded with
``hash_key * previous_token`` -- so its green lists, its z-scores and its greedy generations agree
with theirs token for token (tested). :meth:`WatermarkConfig.to_transformers` gives the matching
``WatermarkingConfig``. Two differences are choices, not accidents:

- green lists are always drawn on the CPU, so a GPU run marks text that the CPU detector reads
  (``transformers`` draws them on the model's device, whose generator gives other permutations);
- the bias is added *before* temperature and top-k / top-p, as in the paper's code (a processor
  passed to ``generate`` runs before the sampling warpers); ``transformers`` appends its own
  watermark processor after them. Greedy decoding is the same either way.

``rng="numpy"`` draws the split with numpy's generator instead (``np.random.default_rng(hash_key *
previous_token).permutation(vocab_size)``): the recipe of the lesson's exercises, without torch.

Text scored by the detector is the *generated* text alone: the detector does not see the prompt,
so the first token is only context and ``T`` tokens give ``T - 1`` scored ones (as
``WatermarkDetector`` scores them).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import LogitsProcessor

from llmsafety.defenses import sequence_nlls
from llmsafety.models import ChatModel, chat_prompt_ids
from llmsafety.models import generate as chat_generate

__all__ = [
    "DEFAULT_HASH_KEY",
    "WRITING_PROMPTS",
    "COMMON_WORDS",
    "PARAPHRASE_INSTRUCTION",
    "WatermarkConfig",
    "green_size",
    "green_list",
    "green_mask",
    "GreenListLogitsProcessor",
    "generate_texts",
    "z_score",
    "p_value",
    "score_tokens",
    "detect",
    "detect_texts",
    "z_by_length",
    "roc_curve",
    "roc_auc",
    "auc_ci",
    "continuation_nlls",
    "paraphrase",
    "substitute_words",
]

#: The key of ``transformers``' ``WatermarkingConfig`` (the millionth prime). A real deployment
#: keeps its key secret: whoever knows it can detect the watermark, and also forge or scrub it.
DEFAULT_HASH_KEY = 15485863

# ----------------------------------------------------------------------------- the course's data

#: Writing requests for the lesson's generations: short news reports on invented, harmless events
#: (the text a misinformation campaign would mass-produce, minus the misinformation). Written for
#: this course, Apache-2.0 like the package. Quick mode uses the first 16.
WRITING_PROMPTS: tuple[str, ...] = (
    "Write a short news report about a small town opening a new public library.",
    "Write a short news report about a city council approving a new bicycle lane.",
    "Write a short news report about a local bakery winning a national bread contest.",
    "Write a short news report about heavy rain closing a mountain road for a day.",
    "Write a short news report about a school robotics team reaching the national final.",
    "Write a short news report about a museum showing a newly restored old painting.",
    "Write a short news report about a farmers' market moving to a larger square.",
    "Write a short news report about a ferry service adding an evening crossing.",
    "Write a short news report about volunteers planting a thousand trees in a park.",
    "Write a short news report about a football club opening a training ground for children.",
    "Write a short news report about a hospital opening a new children's ward.",
    "Write a short news report about a zoo welcoming two baby red pandas.",
    "Write a short news report about a village restoring its old stone bridge.",
    "Write a short news report about a university launching a free evening course in astronomy.",
    "Write a short news report about a power cut that left a district without light for an hour.",
    "Write a short news report about a jazz festival returning to the harbour after five years.",
    "Write a short news report about a city starting a night bus line.",
    "Write a short news report about a chess tournament held in a town hall.",
    "Write a short news report about a lighthouse being turned into a small museum.",
    "Write a short news report about a new recycling centre opening on the edge of town.",
    "Write a short news report about students cleaning up a beach after a storm.",
    "Write a short news report about a theatre celebrating its hundredth anniversary.",
    "Write a short news report about a train line reopening after repairs.",
    "Write a short news report about a local choir singing at a national competition.",
    "Write a short news report about a town building a new skate park.",
    "Write a short news report about a dog show drawing a record crowd.",
    "Write a short news report about a community garden giving away its harvest.",
    "Write a short news report about a marathon closing streets in the city centre.",
    "Write a short news report about a bookshop celebrating fifty years in business.",
    "Write a short news report about a swimming pool reopening after renovation.",
    "Write a short news report about a snowstorm delaying flights at a regional airport.",
    "Write a short news report about a science fair held at a primary school.",
    "Write a short news report about a river festival with boat races.",
    "Write a short news report about a cycling race passing through a mountain village.",
    "Write a short news report about a new playground built with help from parents.",
    "Write a short news report about a library starting a programme of reading to dogs.",
    "Write a short news report about a harbour welcoming a tall sailing ship.",
    "Write a short news report about a town hall installing solar panels on its roof.",
    "Write a short news report about a cinema showing silent films with live music.",
    "Write a short news report about an old factory turned into artists' studios.",
    "Write a short news report about a firefighters' open day for families.",
    "Write a short news report about a town celebrating its annual apple harvest.",
    "Write a short news report about a pharmacy opening a late-night service.",
    "Write a short news report about a café run by volunteers for older people.",
    "Write a short news report about a stargazing night at a rural observatory.",
    "Write a short news report about a new footpath along a canal.",
    "Write a short news report about a kite festival on a windy hill.",
    "Write a short news report about a street renamed after a local nurse.",
)

#: The word-substitution attack's replacement words: common English words, written for this
#: course. The detector reads token ids, not meaning, so a random common word changes the green
#: count as a well-chosen synonym would (each is green with probability gamma either way).
COMMON_WORDS: tuple[str, ...] = (
    "time", "year", "people", "way", "day", "man", "woman", "child", "world", "life", "hand", "part",
    "place", "case", "week", "company", "system", "program", "question", "work", "government", "number",
    "night", "point", "home", "water", "room", "mother", "area", "money", "story", "fact", "month",
    "lot", "right", "study", "book", "eye", "job", "word", "business", "issue", "side", "kind", "head",
    "house", "service", "friend", "father", "power", "hour", "game", "line", "end", "member", "law",
    "car", "city", "community", "name", "president", "team", "minute", "idea", "kid", "body",
    "information", "back", "parent", "face", "others", "level", "office", "door", "health", "person",
    "art", "war", "history", "party", "result", "change", "morning", "reason", "research", "girl",
    "guy", "moment", "air", "teacher", "force", "education", "good", "new", "first", "last", "long",
    "great", "little", "own", "other", "old", "big", "high", "different", "small", "large", "next",
    "early", "young", "important", "few", "public", "bad", "same", "able", "say", "make", "go", "know",
    "take", "see", "come", "think", "look", "want", "give", "use", "find", "tell", "ask", "seem", "feel",
    "try", "leave", "call", "keep", "let", "begin", "help", "talk", "turn", "start", "show", "hear",
    "play", "run", "move", "like", "live", "believe", "hold", "bring", "happen", "write", "provide",
    "sit", "stand", "lose", "pay", "meet", "include", "continue", "set", "learn", "lead", "understand",
    "watch", "follow", "stop", "create", "speak", "read", "allow", "add", "spend", "grow", "open",
    "walk", "win", "offer", "remember", "love", "consider", "appear", "buy", "wait", "serve", "die",
    "send", "expect", "build", "stay", "fall", "cut", "reach", "kill", "remain",
)

#: What the paraphraser (the attacker's model, here SmolLM2 without the watermark) is asked.
PARAPHRASE_INSTRUCTION = ("Rewrite the following text in your own words. Keep its meaning and its length. "
                          "Reply with the rewritten text only.\n\nText: {text}")


# ----------------------------------------------------------------------------- 1. the configuration


@dataclass(frozen=True)
class WatermarkConfig:
    """The watermark's settings: the same for the generator and the detector, or nothing is detected."""

    gamma: float = field(default=0.25, metadata={"help": (
        "Fraction of the vocabulary that is green after each token (transformers' greenlist_ratio). Smaller "
        "gamma: a green token is rarer by chance, so each one says more, but fewer good continuations are green.")})
    delta: float = field(default=2.0, metadata={"help": (
        "Bias added to the logits of the green tokens (transformers' bias). Larger delta: more green tokens, "
        "a stronger watermark, and text further from what the model would write.")})
    hash_key: int = field(default=DEFAULT_HASH_KEY, metadata={"help": (
        "The secret key: the green list after token t is seeded with hash_key * t. Detection needs the same key.")})
    rng: str = field(default="torch", metadata={"help": (
        "Which generator draws the green lists. torch: torch.randperm on a CPU generator, exactly as "
        "transformers' WatermarkLogitsProcessor (lefthash) draws them; numpy: numpy's default_rng, the "
        "exercises' recipe. The two give different lists for the same key.")})
    z_threshold: float = field(default=4.0, metadata={"help": (
        "The detector flags a text when z is above this. The paper uses 4: a one-sided false-positive rate of "
        "3e-5 per text if the green count of plain text were exactly binomial.")})
    ignore_repeated_bigrams: bool = field(default=False, metadata={"help": (
        "Detection only: count each distinct (previous token, token) pair once. Repeated phrases are not "
        "independent draws and can inflate z (transformers' ignore_repeated_ngrams).")})

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma < 1.0:
            raise ValueError(f"gamma={self.gamma} must be strictly between 0 and 1")
        if self.delta < 0:
            raise ValueError(f"delta={self.delta} must be >= 0 (0 is no watermark)")
        if self.rng not in ("torch", "numpy"):
            raise ValueError(f"rng={self.rng!r}: choose 'torch' or 'numpy'")
        if not isinstance(self.hash_key, int) or self.hash_key < 1:
            raise ValueError(f"hash_key={self.hash_key!r} must be a positive integer")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_transformers(self):
        """The matching ``transformers.WatermarkingConfig`` (``rng="torch"`` only: it has no other)."""
        from transformers import WatermarkingConfig

        if self.rng != "torch":
            raise ValueError("transformers draws its green lists with torch: use rng='torch'")
        return WatermarkingConfig(greenlist_ratio=self.gamma, bias=self.delta, hashing_key=self.hash_key,
                                  seeding_scheme="lefthash", context_width=1)


# ----------------------------------------------------------------------------- 2. green lists


def green_size(vocab_size: int, gamma: float) -> int:
    """How many tokens are green: ``int(vocab_size * gamma)``, rounded down as transformers does."""
    return int(vocab_size * gamma)


def green_list(prev_token: int, vocab_size: int, config: WatermarkConfig) -> np.ndarray:
    """The green token ids after ``prev_token``: ``[green_size]`` int64, in the permutation's order.

    A permutation of the vocabulary seeded with ``hash_key * prev_token``; its first
    ``green_size(vocab_size, gamma)`` entries are green. The same token always gives the same list
    (that is what lets a detector recompute it); different tokens give unrelated lists.
    """
    seed = config.hash_key * int(prev_token)
    size = green_size(vocab_size, config.gamma)
    if config.rng == "numpy":
        return np.random.default_rng(seed).permutation(vocab_size)[:size]
    generator = torch.Generator(device="cpu")  # always the CPU: the same lists on every device
    generator.manual_seed(seed % (2**64 - 1))  # as transformers reduces the seed
    return torch.randperm(vocab_size, generator=generator)[:size].numpy()


def green_mask(prev_token: int, vocab_size: int, config: WatermarkConfig) -> np.ndarray:
    """``[vocab_size]`` bool: True for the tokens that are green after ``prev_token``."""
    mask = np.zeros(vocab_size, dtype=bool)
    mask[green_list(prev_token, vocab_size, config)] = True
    return mask


class _MaskCache:
    """The last ``size`` green masks used, by previous token: a permutation of 49k tokens costs
    ~0.2-0.4 ms, and the same previous tokens (" the", ",") come back all the time."""

    def __init__(self, vocab_size: int, config: WatermarkConfig, size: int = 1024):
        self.vocab_size, self.config, self.size = vocab_size, config, size
        self._masks: OrderedDict[int, np.ndarray] = OrderedDict()

    def __call__(self, prev_token: int) -> np.ndarray:
        mask = self._masks.get(prev_token)
        if mask is None:
            mask = green_mask(prev_token, self.vocab_size, self.config)
            self._masks[prev_token] = mask
            if len(self._masks) > self.size:
                self._masks.popitem(last=False)
        else:
            self._masks.move_to_end(prev_token)
        return mask


# ----------------------------------------------------------------------------- 3. generation


class GreenListLogitsProcessor(LogitsProcessor):
    """Add ``delta`` to the logits of the tokens that are green after each row's last token.

    For ``model.generate(..., logits_processor=LogitsProcessorList([processor]))``. At each step
    ``input_ids`` is ``[batch, length]`` (prompt and tokens so far) and ``scores`` ``[batch,
    vocab]``; the green list of a row is seeded by its last token, so the first new token's list
    comes from the prompt's last token. Every other logit is left as it is, so within the green
    list (and within the red one) the model's own preferences stand: where the model is sure of one
    token, a bias of 2 does not move it, and the watermark lives in the tokens where the model had
    a choice.
    """

    def __init__(self, vocab_size: int, config: WatermarkConfig, cache_size: int = 1024):
        self.vocab_size = vocab_size
        self.config = config
        self._mask = _MaskCache(vocab_size, config, cache_size)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        prev = input_ids[:, -1].tolist()  # [batch]: each row's last token seeds its list
        masks = np.stack([self._mask(int(t)) for t in prev])  # [batch, vocab_size] bool
        bias = torch.zeros_like(scores)  # [batch, vocab]; a wider logit row keeps 0 past vocab_size
        bias[:, : self.vocab_size] = torch.from_numpy(masks).to(scores.device, scores.dtype) * self.config.delta
        return scores + bias


@torch.no_grad()
def generate_texts(
    model: ChatModel,
    prompts: Sequence[str],
    watermark: WatermarkConfig | None,
    *,
    max_new_tokens: int = 64,
    min_new_tokens: int | None = None,
    temperature: float = 0.7,
    top_k: int = 0,
    top_p: float = 1.0,
    batch_size: int = 16,
    seed: int = 0,
) -> pd.DataFrame:
    """Reply to each prompt (chat template applied) with ``model.generate``, watermarked or not.

    ``watermark=None`` generates plain text with the same sampling, seeds and batches, so plain and
    watermarked texts differ only by the bias. ``min_new_tokens`` (default ``max_new_tokens``) keeps
    EOS away until then, so that every text has the same number of tokens and the detector compares
    like with like. ``temperature=0`` is greedy; otherwise multinomial sampling at ``temperature``
    (``top_k=0`` and ``top_p=1`` switch those filters off, as the paper samples), seeded per batch.

    Returns one row per prompt, in order: ``prompt``, ``prompt_ids`` (the chat-template ids the
    model read), ``tokens`` (the new ids, up to the first EOS) and ``text`` (``tokens`` decoded).
    """
    from transformers import LogitsProcessorList

    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty")
    min_new_tokens = max_new_tokens if min_new_tokens is None else min_new_tokens
    tok, net = model.tokenizer, model.model
    vocab_size = net.config.vocab_size
    processors = LogitsProcessorList([GreenListLogitsProcessor(vocab_size, watermark)] if watermark else [])
    ids = chat_prompt_ids(tok, prompts)
    eos = {tok.eos_token_id} | set(np.atleast_1d(net.generation_config.eos_token_id or []).tolist())
    sampling = ({"do_sample": False} if temperature == 0 else
                {"do_sample": True, "temperature": temperature, "top_k": top_k, "top_p": top_p})
    rows = []
    for b, start in enumerate(range(0, len(prompts), batch_size)):
        chunk = ids[start:start + batch_size]
        batch = tok.pad({"input_ids": chunk}, padding=True, return_tensors="pt")  # left padding
        batch = {k: v.to(model.device) for k, v in batch.items()}
        torch.manual_seed(seed * 100_003 + b)  # a seed per batch: plain and watermarked draw alike
        out = net.generate(**batch, logits_processor=processors, max_new_tokens=max_new_tokens,
                           min_new_tokens=min_new_tokens, pad_token_id=tok.pad_token_id, **sampling)
        new = out[:, batch["input_ids"].shape[1]:].tolist()  # [batch, <= max_new_tokens]
        for prompt_ids, tokens, prompt in zip(chunk, new, prompts[start:start + batch_size]):
            end = next((i for i, t in enumerate(tokens) if t in eos), len(tokens))
            tokens = tokens[:end]
            rows.append({"prompt": prompt, "prompt_ids": list(prompt_ids), "tokens": tokens,
                         "text": tok.decode(tokens, skip_special_tokens=True)})
    return pd.DataFrame(rows, columns=["prompt", "prompt_ids", "tokens", "text"])


# ----------------------------------------------------------------------------- 4. detection


def z_score(green: float, scored: float, gamma: float) -> float:
    """``(green - gamma * T) / sqrt(T * gamma * (1 - gamma))`` with ``T = scored``; NaN when ``T = 0``.

    Without a watermark each scored token is green with probability ``gamma`` (the lists are
    pseudo-random and the text does not know them), so the count is about Binomial(T, gamma), with
    mean ``gamma T`` and variance ``T gamma (1 - gamma)``: z counts standard deviations above chance.
    """
    if scored <= 0:
        return float("nan")
    return float((green - gamma * scored) / math.sqrt(scored * gamma * (1 - gamma)))


def p_value(z: float) -> float:
    """One-sided p-value of ``z`` under the normal approximation: ``P(Z >= z)``; NaN stays NaN."""
    return float("nan") if math.isnan(z) else 0.5 * math.erfc(z / math.sqrt(2))


def score_tokens(tokens: Sequence[int], vocab_size: int, config: WatermarkConfig, mask=None) -> np.ndarray:
    """``[len(tokens) - 1]`` bool: is ``tokens[t]`` green after ``tokens[t - 1]``, for ``t >= 1``.

    ``mask``: a function ``prev_token -> [vocab_size] bool`` (a cache); default :func:`green_mask`.
    """
    mask = mask or (lambda prev: green_mask(prev, vocab_size, config))
    tokens = [int(t) for t in tokens]
    return np.array([bool(mask(prev)[tok]) for prev, tok in zip(tokens[:-1], tokens[1:])], dtype=bool)


def detect(token_lists: Sequence[Sequence[int]], vocab_size: int, config: WatermarkConfig) -> pd.DataFrame:
    """The detector on token sequences: one row per sequence.

    Columns ``scored`` (T, tokens after the first; distinct bigrams when
    ``config.ignore_repeated_bigrams``), ``green``, ``green_fraction``, ``z``, ``p_value`` and
    ``flagged`` (z strictly above ``config.z_threshold``). A sequence of fewer than two tokens
    has nothing to score: z NaN, not flagged.
    """
    cache = _MaskCache(vocab_size, config, size=4096)
    rows = []
    for tokens in token_lists:
        tokens = [int(t) for t in tokens]
        pairs = list(zip(tokens[:-1], tokens[1:]))
        if config.ignore_repeated_bigrams:
            pairs = list(dict.fromkeys(pairs))  # first occurrences, in order
        green = sum(bool(cache(prev)[tok]) for prev, tok in pairs)
        scored = len(pairs)
        z = z_score(green, scored, config.gamma)
        rows.append({"scored": scored, "green": green, "green_fraction": green / scored if scored else float("nan"),
                     "z": z, "p_value": p_value(z), "flagged": bool(z > config.z_threshold)})
    return pd.DataFrame(rows, columns=["scored", "green", "green_fraction", "z", "p_value", "flagged"])


def detect_texts(texts: Sequence[str], tokenizer, config: WatermarkConfig, vocab_size: int | None = None
                 ) -> pd.DataFrame:
    """:func:`detect` on texts, as a detector that holds only the text (and the key) reads them.

    Each text is tokenized again (no special tokens); decoding and re-encoding mostly give back
    the generated ids, and where not, a few tokens differ -- the detector cannot know. ``vocab_size``:
    the model's logit width (default ``len(tokenizer)``), which fixes the permutations.
    """
    vocab_size = len(tokenizer) if vocab_size is None else vocab_size
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    return detect(ids, vocab_size, config)


def z_by_length(green_flags: np.ndarray, gamma: float) -> np.ndarray:
    """``[T]``: z of the first 1, 2, ..., T scored tokens, from the per-token flags of :func:`score_tokens`."""
    flags = np.asarray(green_flags, dtype=float)
    n = np.arange(1, flags.size + 1)
    return (np.cumsum(flags) - gamma * n) / np.sqrt(n * gamma * (1 - gamma))


# ----------------------------------------------------------------------------- 5. ROC and AUC


def roc_curve(positive: Sequence[float], negative: Sequence[float]) -> pd.DataFrame:
    """The ROC curve of a score (high = watermarked): one row per threshold, strictest first.

    Columns ``threshold``, ``tpr`` (share of ``positive`` scores >= it) and ``fpr`` (share of
    ``negative`` ones). The first row, at +inf, flags nothing (0, 0); the last, at the lowest
    score, flags everything (1, 1). NaN scores (nothing to score) are never flagged.
    """
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("an ROC curve needs positive and negative scores")
    scores = np.concatenate([pos, neg])
    thresholds = np.r_[np.inf, np.unique(scores[~np.isnan(scores)])[::-1]]
    return pd.DataFrame({"threshold": thresholds,
                         "tpr": [float(np.mean(pos >= t)) for t in thresholds],
                         "fpr": [float(np.mean(neg >= t)) for t in thresholds]})


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """The area under the ROC curve: P(a positive scores above a negative), ties counted half.

    The Mann-Whitney form, over all positive-negative pairs; NaN scores are dropped first, and
    with no positive or no negative left the area is NaN. 1 separates perfectly, 0.5 is chance.
    """
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]  # [n_pos, n_neg]
    return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))


def auc_ci(positive: Sequence[float], negative: Sequence[float], *, n_boot: int = 2000, seed: int = 0,
           level: float = 0.95) -> tuple[float, float, float]:
    """``(auc, low, high)``: the AUC and its stratified percentile-bootstrap interval.

    Positives and negatives are resampled separately (each keeps its size), so every replicate
    has both classes. With a handful of texts per class the interval is wide, and at AUC 1 it is
    [1, 1]: no resample can reorder perfectly separated scores, which says nothing about unseen
    texts -- read it with the sample size.
    """
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    auc = roc_auc(pos, neg)
    if math.isnan(auc):
        return auc, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    replicates = [roc_auc(pos[rng.integers(0, pos.size, pos.size)], neg[rng.integers(0, neg.size, neg.size)])
                  for _ in range(n_boot)]
    low, high = np.quantile(replicates, [(1 - level) / 2, 1 - (1 - level) / 2])
    return auc, float(low), float(high)


# ----------------------------------------------------------------------------- 6. the quality cost


@torch.no_grad()
def continuation_nlls(model: ChatModel, prompt_ids: Sequence[Sequence[int]], tokens: Sequence[Sequence[int]],
                      batch_size: int = 16) -> list[np.ndarray]:
    """NLL (nats) of each generated token given its prompt and the tokens before it, under ``model``.

    ``model`` is the model *without* the watermark (a processor only acts in ``generate``), so this
    is how likely the unbiased model finds what was written: ``exp(mean)`` is the text's perplexity,
    the paper's measure of what the watermark costs. Returns ``[len(tokens[i])]`` float arrays;
    the scoring is :func:`llmsafety.defenses.sequence_nlls`.
    """
    sequences = [list(p) + list(t) for p, t in zip(prompt_ids, tokens)]
    nlls = sequence_nlls(model, sequences, batch_size)
    # the first generated token is predicted at position len(prompt) - 1
    return [nll[len(p) - 1:] for nll, p in zip(nlls, prompt_ids)]


# ----------------------------------------------------------------------------- 7. attacks


def paraphrase(model: ChatModel, texts: Sequence[str], *, max_new_tokens: int = 96, temperature: float = 0.7,
               seed: int = 0, batch_size: int = 16) -> list[str]:
    """Ask ``model`` (no watermark: the attacker's own model) to rewrite each text in its own words.

    The attack of Krishna et al. 2023 (arXiv 2303.13408) with the lesson's tiny model as the
    paraphraser, through :func:`llmsafety.models.generate` and :data:`PARAPHRASE_INSTRUCTION`.
    A new text is a new token sequence: wherever the paraphraser chooses its own words, the green
    count falls back towards chance.
    """
    prompts = [PARAPHRASE_INSTRUCTION.format(text=t) for t in texts]
    return chat_generate(model, prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_p=0.9,
                         seed=seed, batch_size=batch_size, progress=False)


_WORD = re.compile(r"[A-Za-z]+")


def substitute_words(text: str, fraction: float, seed: int, pool: Sequence[str] = COMMON_WORDS) -> str:
    """Replace ``round(fraction * n_words)`` of the text's words with words drawn from ``pool``.

    Words are runs of ASCII letters; punctuation, numbers and spacing stay. The words to replace
    are drawn without replacement with ``np.random.default_rng(seed)``, each replacement uniformly
    from ``pool`` but never the word itself, capitalised when the original was. The edit an editor
    makes by hand, at a chosen rate: the detector sees only which tokens changed, not whether the
    new word fits.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction={fraction} must be in [0, 1]")
    words = list(_WORD.finditer(text))
    k = int(round(fraction * len(words)))
    if k == 0:
        return text
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(words), size=k, replace=False).tolist())
    pieces, last = [], 0
    for index in chosen:
        match = words[index]
        original = match.group()
        options = [w for w in pool if w.lower() != original.lower()]
        new = options[int(rng.integers(0, len(options)))]
        if original[0].isupper():
            new = new[0].upper() + new[1:]
        pieces += [text[last:match.start()], new]
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)
