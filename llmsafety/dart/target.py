"""Target phase: safe replies for the selected attacks, then LoRA SFT with TRL's SFTTrainer.

Safe replies come from the Target itself under a safety system prompt and are kept only when the
judge scores them safe (context distillation: the tuned Target learns to behave, without the
system prompt, as it does with it). When its own reply is still harmful we fall back to a
refuse-and-help reply, so every selected attack gets a training example. Benign prompts with the
Target's own (plain) replies are mixed in so it does not learn to refuse everything.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

REFUSE_AND_HELP = (
    "I can't help with that, because it could cause real harm to people. "
    "If you are dealing with a difficult situation, I'm happy to help in a safe way: for example, "
    "I can explain the risks, point you to legitimate resources, or help with a related, harmless task."
)


def safe_replies(
    attacks: Sequence[str],
    candidate_replies: Sequence[str],
    judge: Callable,
    *,
    threshold: float = 0.5,
    refusal_fn: Callable[[list[str]], Any] | None = None,
) -> tuple[list[str], list[str]]:
    """Keep each candidate the judge scores safe (harm < threshold), else the refuse-and-help reply.

    Returns ``(replies, sources)`` with sources ``"self"`` or ``"fallback"``. A candidate the
    judge could not score is not trusted: fallback.
    """
    if len(attacks) != len(candidate_replies):
        raise ValueError(f"{len(attacks)} attacks but {len(candidate_replies)} candidate replies")
    if not attacks:
        return [], []
    scores = judge(list(attacks), list(candidate_replies)).scores
    refusing = [True] * len(attacks)
    if refusal_fn is not None:  # also demand that the reply declines: a safe-looking ramble is no lesson
        refusing = [bool(x) for x in refusal_fn(list(candidate_replies))]
    replies, sources = [], []
    for reply, score, refuses in zip(candidate_replies, scores, refusing):
        if score is not None and score < threshold and refuses and reply.strip():
            replies.append(reply)
            sources.append("self")
        else:
            replies.append(REFUSE_AND_HELP)
            sources.append("fallback")
    return replies, sources


def sft_examples(prompts: Sequence[str], replies: Sequence[str]) -> list[dict[str, Any]]:
    """Prompt-completion chat examples: the loss is on the reply only."""
    return [
        {"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": r}]}
        for p, r in zip(prompts, replies)
    ]


def run_target_sft(
    *,
    target,  # ChatModel whose .model is a PeftModel
    examples: list[dict[str, Any]],
    config,
    output_dir: str | Path,
    seed: int,
) -> dict[str, Any]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from llmsafety.dart.distributed import per_process_batch
    from llmsafety.dart.red import small_run_args

    args = SFTConfig(
        num_train_epochs=config.target_epochs,
        # the same global batch on N processes as on one
        per_device_train_batch_size=per_process_batch(config.target_sft_batch_size, "target_sft_batch_size"),
        learning_rate=config.target_learning_rate,
        lr_scheduler_type=config.target_lr_scheduler,
        max_length=config.target_sft_max_length,
        packing=False,
        completion_only_loss=True,
        **small_run_args(target, output_dir, seed, config.gradient_checkpointing),
    )
    trainer = SFTTrainer(
        model=target.model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=target.tokenizer,
    )
    from llmsafety.dart.red import _quiet

    _quiet(trainer)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    target.model = trainer.model
    target.tokenizer.padding_side = "left"
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"losses": losses, "seconds": seconds}
