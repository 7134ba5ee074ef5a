"""Alignment training: make a chat model safer with SFT, then DPO, on hh-rlhf harmless pairs.

Before red teaming a model, someone usually tried to make it safe. The two workhorse steps, on a
LoRA adapter (peft) with TRL's trainers, read top to bottom:

0. :func:`load_hh_pairs` -- chosen / rejected first-turn replies from hh-rlhf *harmless-base*
   (Bai et al. 2022, arXiv 2204.05862), shipped with the package: only pairs from the part of the
   test split the evaluation never uses (``judge_split == "train"``), so no training prompt is an
   evaluation prompt. :func:`build_hh_pairs` is how the shipped file was made.
1. :func:`pair_messages` -- one pair as chat messages, the conversational format TRL reads.
2. :func:`run_sft` -- supervised fine-tuning on the *chosen* replies (loss on the reply only):
   imitate the safer demonstration (InstructGPT's first step, arXiv 2203.02155).
3. :func:`run_dpo` -- Direct Preference Optimization (Rafailov et al. 2023, arXiv 2305.18290) on
   the pairs: raise the log-probability of the chosen reply *relative to* the rejected one, measured
   against a frozen reference (the model DPO starts from). ``beta`` is how far it may move away
   from that reference: a small beta lets the margin grow with little KL penalty, a large one keeps
   the model close.
4. :func:`merge_adapter` and :func:`save_as_target` -- fold the LoRA into the weights and save
   model + tokenizer as a plain checkpoint, so ``DARTConfig(target_model=path)`` (and
   :func:`llmsafety.models.load_chat_model`) loads it like any other model.
5. :func:`alignment_eval_sets` and :func:`evaluate_alignment` -- greedy replies to DART's held-out
   evaluation sets, graded as DART's eval phase grades them (the outcome judge: comply / refuse /
   other), one row per prompt so that before / after compare on the same prompts.

Devices: the model's own device and dtype (:func:`llmsafety.models.load_chat_model`: CUDA + bf16
when present, CPU + fp32 otherwise); the trainer arguments follow them
(:func:`llmsafety.dart.red.small_run_args`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from llmsafety.models import ChatModel

__all__ = [
    "PAIRS_RESOURCE",
    "AlignmentConfig",
    "build_hh_pairs",
    "load_hh_pairs",
    "pair_messages",
    "attach_adapter",
    "run_sft",
    "run_dpo",
    "merge_adapter",
    "save_as_target",
    "alignment_eval_sets",
    "evaluate_alignment",
]

#: The shipped pairs (``llmsafety/resources/``): see ``HH_RLHF_LICENSE.md`` there.
PAIRS_RESOURCE = "hh_harmless_train_pairs.jsonl"


# ----------------------------------------------------------------------------- the recipe


@dataclass
class AlignmentConfig:
    """The SFT + DPO recipe of lesson 6. Defaults are the lesson's quick mode on a laptop CPU."""

    pairs: str = field(default="refusals", metadata={"help": (
        "Which shipped pairs to train on. refusals: the chosen reply declines and the rejected one does not "
        "(the refusal detector's reading) -- a sharp safety signal; all: every pair, where the chosen reply is "
        "only the *less harmful* of two and mostly not a refusal (what hh-rlhf's labellers compared).")})
    n_pairs: int = field(default=12, metadata={"help": (
        "Pairs to train on (0 = all that `pairs` keeps): the same pairs for SFT (their chosen replies) and DPO.")})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank of the adapter (DART's Target adapter uses 16)."})
    lora_alpha_multiplier: float = field(default=2.0, metadata={"help": "LoRA alpha = this x r."})
    sft_epochs: int = field(default=1, metadata={"help": "Passes over the chosen replies in SFT."})
    sft_learning_rate: float = field(default=2e-3, metadata={"help": (
        "SFT learning rate of the adapter: high, because a few steps must show an effect on a CPU.")})
    dpo_epochs: int = field(default=1, metadata={"help": "Passes over the pairs in DPO."})
    dpo_learning_rate: float = field(default=1e-3, metadata={"help": (
        "DPO learning rate of the (fresh) adapter; TRL's default 1e-6 is for full fine-tuning of large models.")})
    betas: tuple[float, ...] = field(default=(0.1,), metadata={"help": (
        "DPO beta, one DPO run from the same SFT model per value: the KL leash to the reference. The DPO paper "
        "uses 0.1 (0.5 for some tasks); TRL's default is 0.1.")})
    batch_size: int = field(default=4, metadata={"help": "Examples (SFT) or pairs (DPO) per optimizer step."})
    max_length: int = field(default=64, metadata={"help": (
        "Tokens per training sequence (prompt + reply), longer ones cut at the end: first-turn replies are short, "
        "and on a CPU the cost grows with it.")})
    seed: int = field(default=0, metadata={"help": "Seed of the adapters' initialisation and data order."})

    def __post_init__(self) -> None:
        if self.pairs not in ("refusals", "all"):
            raise ValueError(f"pairs={self.pairs!r}: choose 'refusals' or 'all'")
        for name in ("lora_r", "sft_epochs", "dpo_epochs", "batch_size", "max_length"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be an integer >= 1")
        if self.n_pairs < 0:
            raise ValueError(f"n_pairs={self.n_pairs} must be >= 0 (0 = all)")
        self.betas = tuple(float(b) for b in self.betas)
        if not self.betas or any(b <= 0 for b in self.betas):
            raise ValueError(f"betas={self.betas}: give at least one beta, each > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- 0. the pairs


def build_hh_pairs(source: str | Path, max_chars: int = 600) -> pd.DataFrame:
    """The pairs the package ships, from the full hh-rlhf harmless-base *test* file ``source``.

    Kept: single-exchange dialogues (one human turn, one assistant reply: the first turn *is*
    the compared reply), on the judge's ``train`` side of :func:`llmsafety.judges.hh_judge_split`
    (the ``heldout`` side holds every hh evaluation prompt), both replies non-empty, different and
    at most ``max_chars`` long, one pair per prompt (its first). Returns columns ``id`` (``hh-`` and the
    first 10 hex digits of the prompt's SHA-256: the id of the same prompt in
    :func:`llmsafety.data.load_hh_prompts`), ``prompt``, ``chosen``, ``rejected``.
    """
    import hashlib

    from llmsafety.data import load_hh_harmless
    from llmsafety.judges import hh_judge_split

    frame = load_hh_harmless("test", source=source)
    frame = frame[(hh_judge_split(frame) == "train") & (frame["n_turns"] == 2)]
    chosen, rejected = frame["chosen_response"].str.strip(), frame["rejected_response"].str.strip()
    keep = ((chosen != "") & (rejected != "") & (chosen != rejected)
            & (chosen.str.len() <= max_chars) & (rejected.str.len() <= max_chars))
    out = pd.DataFrame({"prompt": frame["prompt"].str.strip(), "chosen": chosen, "rejected": rejected})[keep]
    out = out.drop_duplicates("prompt").reset_index(drop=True)
    out.insert(0, "id", ["hh-" + hashlib.sha256(p.encode()).hexdigest()[:10] for p in out["prompt"]])
    return out


def load_hh_pairs(pairs: str = "all", n: int = 0) -> pd.DataFrame:
    """The shipped hh-rlhf harmless pairs, with what the refusal detector reads in each reply.

    ``pairs``: ``"all"`` or ``"refusals"`` (chosen declines, rejected does not); ``n``: the first
    ``n`` of them (0 = all), in the file's order. Columns ``id``, ``prompt``, ``chosen``,
    ``rejected``, ``chosen_refuses``, ``rejected_refuses``. No network, no shared data.
    """
    from llmsafety.data import _read_resource
    from llmsafety.judges import RefusalJudge

    frame = pd.DataFrame(_read_resource(PAIRS_RESOURCE, ("id", "prompt", "chosen", "rejected")),
                         columns=["id", "prompt", "chosen", "rejected"])
    detector = RefusalJudge()
    frame["chosen_refuses"] = detector.is_refusal(list(frame["chosen"]))
    frame["rejected_refuses"] = detector.is_refusal(list(frame["rejected"]))
    if pairs == "refusals":
        frame = frame[frame["chosen_refuses"] & ~frame["rejected_refuses"]]
    elif pairs != "all":
        raise ValueError(f"pairs={pairs!r}: choose 'all' or 'refusals'")
    frame = frame.reset_index(drop=True)
    return frame.head(n) if n else frame


# ----------------------------------------------------------------------------- 1. chat format


def pair_messages(prompt: str, chosen: str, rejected: str) -> dict[str, list[dict[str, str]]]:
    """One pair in TRL's conversational preference format: the prompt as a user turn, each reply as
    an assistant turn. The trainer applies the chat template, so the model is trained on exactly
    the tokens it sees when it is asked the prompt."""
    return {"prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


# ----------------------------------------------------------------------------- 2-3. training


def attach_adapter(model: ChatModel, config: AlignmentConfig) -> ChatModel:
    """Give ``model`` a fresh LoRA adapter on every linear layer (in place; returns it)."""
    import torch

    from llmsafety.dart.red import attach_lora

    torch.manual_seed(config.seed)  # LoRA's A matrices are random: the same adapter every run
    model.model = attach_lora(model.model, config.lora_r, alpha_multiplier=config.lora_alpha_multiplier)
    return model


def _train(trainer, model: ChatModel) -> dict[str, Any]:
    from llmsafety.dart.red import _quiet

    _quiet(trainer)
    t0 = time.perf_counter()
    trainer.train()
    model.model = trainer.model
    model.model.eval()
    model.tokenizer.padding_side = "left"  # the trainer pads on the right; generation pads on the left
    logs = [h for h in trainer.state.log_history if "loss" in h]
    return {"losses": [h["loss"] for h in logs], "logs": logs, "seconds": time.perf_counter() - t0}


def run_sft(model: ChatModel, pairs: pd.DataFrame, config: AlignmentConfig, output_dir: str | Path) -> dict[str, Any]:
    """SFT of ``model``'s adapter (a fresh one if it has none) on the pairs' chosen replies.

    Prompt-completion examples with the loss on the completion only (as DART's Target phase):
    the model learns to *say* the safer reply, not to predict the red-teamer's prompt. Returns the
    per-step ``losses``, TRL's ``logs`` and the ``seconds`` it took; ``model`` is changed in place.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from llmsafety.dart.red import small_run_args
    from llmsafety.dart.target import sft_examples

    if not hasattr(model.model, "peft_config"):
        attach_adapter(model, config)
    args = SFTConfig(
        num_train_epochs=config.sft_epochs, per_device_train_batch_size=config.batch_size,
        learning_rate=config.sft_learning_rate, lr_scheduler_type="constant", max_length=config.max_length,
        packing=False, completion_only_loss=True, **small_run_args(model, output_dir, config.seed))
    examples = sft_examples(list(pairs["prompt"]), list(pairs["chosen"]))
    trainer = SFTTrainer(model=model.model, args=args, train_dataset=Dataset.from_list(examples),
                         processing_class=model.tokenizer)
    return _train(trainer, model)


def run_dpo(model: ChatModel, pairs: pd.DataFrame, config: AlignmentConfig, output_dir: str | Path,
            beta: float | None = None) -> dict[str, Any]:
    """DPO of a fresh LoRA adapter on ``model``, against ``model`` itself as the frozen reference.

    ``model`` must carry no adapter (merge the SFT one first: :func:`merge_adapter`). Then TRL's
    reference pass is the same network with the adapter switched off -- exactly the model DPO
    started from -- and needs no second copy in memory. ``beta``: default ``config.betas[0]``.
    Returns ``losses``, ``logs`` (with TRL's ``rewards/chosen``, ``rewards/rejected``,
    ``rewards/margins``: beta x log-ratio to the reference, and ``rewards/accuracies``: the share
    of pairs whose chosen reply has the larger reward) and ``seconds``.
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from llmsafety.dart.red import small_run_args

    if hasattr(model.model, "peft_config"):
        raise ValueError("run_dpo needs a model without an adapter (its reference is the model with the adapter off): "
                         "merge the SFT adapter first with merge_adapter(model)")
    beta = config.betas[0] if beta is None else float(beta)
    attach_adapter(model, config)
    args = DPOConfig(
        num_train_epochs=config.dpo_epochs, per_device_train_batch_size=config.batch_size,
        learning_rate=config.dpo_learning_rate, lr_scheduler_type="constant", beta=beta,
        max_length=config.max_length, **small_run_args(model, output_dir, config.seed))
    dataset = Dataset.from_list([pair_messages(p, c, r)
                                 for p, c, r in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"])])
    trainer = DPOTrainer(model=model.model, args=args, train_dataset=dataset, processing_class=model.tokenizer)
    return {**_train(trainer, model), "beta": beta}


# ----------------------------------------------------------------------------- 4. a Target for DART


def merge_adapter(model: ChatModel) -> ChatModel:
    """Fold ``model``'s LoRA adapter into its weights (in place; returns it): a plain transformers
    model again, which a new adapter (DPO, or DART's Target phase) can start from."""
    if hasattr(model.model, "merge_and_unload"):
        model.model = model.model.merge_and_unload()
    model.model.eval()
    return model


def save_as_target(model: ChatModel, path: str | Path) -> Path:
    """Save ``model`` (its adapter merged in, if it has one) with its tokenizer as a plain checkpoint.

    safetensors weights, config, generation config, tokenizer and chat template in ``path``: what
    :func:`llmsafety.models.load_chat_model` and so ``DARTConfig(target_model=str(path))`` load.
    A model with an adapter is merged into a *copy*, so ``model`` keeps its adapter.
    """
    import copy

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    net = model.model
    if hasattr(net, "merge_and_unload"):
        net = copy.deepcopy(net).merge_and_unload()
    net.save_pretrained(path, safe_serialization=True)
    model.tokenizer.save_pretrained(path)
    return path


# ----------------------------------------------------------------------------- 5. evaluation


def alignment_eval_sets(n_harmful: int, n_benign: int, n_hh_benign: int, n_seed: int = 0):
    """DART's held-out evaluation sets (:func:`llmsafety.dart.eval_sets.build_eval_sets`) at these sizes.

    Harmful: ``n_harmful`` held-out hh prompts labelled harmful (source ``hh``) and ``n_seed`` seed
    attacks of the eval split (``seed_eval``; 0 = none, unlike DARTConfig's 0 = all). Benign:
    ``n_benign`` benign-but-alarming prompts (``benign``) and ``n_hh_benign`` held-out hh prompts
    labelled benign (``hh_benign``). The same prompts as a DART run of those sizes evaluates on.
    """
    from llmsafety.dart.config import DARTConfig
    from llmsafety.dart.eval_sets import build_eval_sets

    sets = build_eval_sets(DARTConfig(eval_hh_prompts=n_harmful, eval_seed_prompts=max(n_seed, 1),
                                      eval_benign_prompts=n_benign, eval_hh_benign_prompts=n_hh_benign))
    if n_seed == 0:
        sets.harmful = sets.harmful[sets.harmful["source"] != "seed_eval"].reset_index(drop=True)
    return sets


def evaluate_alignment(model: ChatModel, sets, *, embed_fn=None, max_new_tokens: int = 32, batch_size: int = 64,
                       n_boot: int = 1000, seed: int = 0) -> tuple[dict[str, Any], pd.DataFrame]:
    """Greedy replies to ``sets`` graded as DART's eval phase grades them; ``(evaluation, rows)``.

    ``evaluation`` is :func:`llmsafety.dart.evaluate.evaluate_target`'s dict: violation rate (the
    outcome judge's *comply*) with its bootstrap CI, outcomes, over-refusal. ``rows`` has one row
    per prompt, harmful then benign, in the sets' order: ``prompt``, ``kind`` (harmful / benign),
    ``source``, ``reply``, ``refused`` (the refusal detector, 0/1), ``violation`` (0/1, harmful
    only) and ``outcome``. ``embed_fn``: texts -> unit-norm embeddings (default: the embedded MiniLM).
    """
    from llmsafety.dart.eval_judge import OutcomeJudge
    from llmsafety.dart.evaluate import evaluate_target
    from llmsafety.judges import RefusalJudge

    if embed_fn is None:
        from llmsafety.models import load_embedder

        embedder = load_embedder(device=str(model.device))

        def embed_fn(texts):
            return embedder.encode(list(texts), batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                                   show_progress_bar=False)
    judge = OutcomeJudge(embed_fn)
    evaluation = evaluate_target(model, judge, sets.harmful, sets.benign_eval, benign_sources=sets.benign_eval_sources,
                                 outcome_fn=judge.outcomes, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                 n_boot=n_boot, seed=seed, progress=False)
    rows = pd.DataFrame(evaluation["records"])
    rows.insert(1, "kind", ["harmful"] * len(sets.harmful) + ["benign"] * (len(rows) - len(sets.harmful)))
    rows["refused"] = RefusalJudge().is_refusal(list(rows["reply"])).astype(int)
    rows["violation"] = rows["harm"].where(rows["kind"] == "harmful")
    return evaluation, rows[["prompt", "kind", "source", "reply", "refused", "violation", "outcome"]]
