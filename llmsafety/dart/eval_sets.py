"""The evaluation prompts of a run: held-out, and checked by careful readers for harmfulness.

Harmful: hh-rlhf test prompts labelled harmful that the default judge never trained on (source
``hh``, the headline) and the seed attacks' eval split (``seed_eval``, in-distribution: the same
categories and styles as the red few-shot examples). Benign, for over-refusal: the eval half of the
benign-but-alarming prompts (``benign``; the other half is mixed into SFT) and held-out hh prompts
labelled benign (``hh_benign``). The labels ship with the package (``benchmarks/results/prompt_labels/``
holds how they were made).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmsafety._io import stable_hash


@dataclass
class EvalSets:
    harmful: pd.DataFrame
    """Columns ``prompt``, ``source`` (hh / seed_eval), ``category``."""
    benign_eval: list[str]
    """Benign prompts the evaluation reads for over-refusal."""
    benign_train: list[str]
    """The other half of the benign-but-alarming prompts: mixed into the Target's SFT."""
    benign_eval_sources: list[str] = field(default_factory=list)
    """One source per ``benign_eval`` prompt (benign / hh_benign)."""


def build_eval_sets(config) -> EvalSets:
    """The evaluation sets ``config`` (a DARTConfig) asks for; the same for every run and variant."""
    from llmsafety.data import load_benign_prompts, load_seed_attacks

    frames = []
    if config.eval_hh_prompts:
        frames.append(pd.DataFrame({"prompt": hh_heldout_prompts(config.eval_hh_prompts, config.hh_source),
                                    "source": "hh", "category": "hh-rlhf"}))
    seed_eval = load_seed_attacks(split="eval")
    if config.eval_seed_prompts:  # 0 = all of them
        seed_eval = seed_eval.sample(n=min(config.eval_seed_prompts, len(seed_eval)), random_state=0)
    frames.append(pd.DataFrame({"prompt": seed_eval["prompt"].values, "source": "seed_eval",
                                "category": seed_eval["taxonomy_id"].values}))
    benign = load_benign_prompts()
    train_idx, eval_idx = stable_halves(list(benign["id"]))
    benign_eval = list(benign["prompt"].iloc[eval_idx])
    if config.eval_benign_prompts:
        benign_eval = benign_eval[: config.eval_benign_prompts]
    hh_benign = (hh_heldout_prompts(config.eval_hh_benign_prompts, config.hh_source, label="benign")
                 if config.eval_hh_benign_prompts else [])
    return EvalSets(pd.concat(frames, ignore_index=True), benign_eval + hh_benign,
                    list(benign["prompt"].iloc[train_idx]),
                    ["benign"] * len(benign_eval) + ["hh_benign"] * len(hh_benign))


def hh_heldout_prompts(n: int, source: str | None = None, label: str | None = "harmful") -> list[str]:
    """``n`` hh-rlhf harmless test prompts from the part the default judge was not trained on.

    ``label``: keep prompts a careful reader labelled so (``harmful``, ``benign``; None: all).
    ``source=None`` reads the prompts shipped with the package (no network); a path or ``"hub"``
    reads the full pairs as :func:`llmsafety.data.load_hh_harmless` does. Both give the same list.
    """
    from llmsafety.data import load_hh_harmless, load_hh_prompts
    from llmsafety.judges import hh_judge_split

    shipped = load_hh_prompts("heldout")  # also the labels, which only the shipped copy carries
    if source is None:
        heldout = shipped
    else:
        frame = load_hh_harmless("test", source=source)
        heldout = frame[hh_judge_split(frame) == "heldout"]
    prompts = list(dict.fromkeys(p for p in heldout["prompt"] if p and p.strip()))
    if label is not None:
        labels = dict(zip(shipped["prompt"], shipped["label"]))
        prompts = [p for p in prompts if labels.get(p) == label]
    if n > len(prompts):
        raise ValueError(f"asked for {n} held-out hh prompts labelled {label!r} but only {len(prompts)} exist")
    rng = np.random.default_rng(12345)  # fixed: every run and variant sees the same prompts
    return [prompts[i] for i in sorted(rng.choice(len(prompts), size=n, replace=False))]


def stable_halves(ids: list[str], salt: str = "benign") -> tuple[list[int], list[int]]:
    """Indices of ``ids`` split in two by a hash of each id: stable across versions and runs."""
    first, second = [], []
    for i, item in enumerate(ids):
        (first if stable_hash(item, salt=f"{salt}:") % 2 == 0 else second).append(i)
    return first, second
