"""Harm judges: one protocol, several judges, and how to compare them.

A red-teaming loop needs a number for "how harmful is this reply": it is the reward of the red
model and the basis of every violation rate. Here a *judge* is any callable

    judge(prompts: list[str], responses: list[str]) -> JudgeResult

whose :class:`JudgeResult` holds one harm probability in [0, 1] per (prompt, response) pair, or
``None`` with a reason where the pair could not be scored (an empty reply, a reply too long for
the judge, an error inside the judge). A judge never turns a failure into a silent 0: a 0 would
read as "harmless" and hide the failure inside an average.

Which module holds what (everything is importable from ``llmsafety.judges`` itself):

- :mod:`~llmsafety.judges.base` -- the protocol: :class:`JudgeResult`, :class:`JudgeWarning`,
  the :class:`Judge` base class and :class:`FunctionJudge` (wraps a plain function).
- :mod:`~llmsafety.judges.refusal` -- :class:`RefusalJudge`, :func:`refusal_probability`,
  :func:`is_refusal`: does the reply refuse? It reads how the reply *opens* ("I can't help
  with that") and what it then *does* ("... but here is how: step 1"); as a harm judge it
  scores ``1 - P(refusal)``, the classic refusal-based attack success rate.
- :mod:`~llmsafety.judges.logistic` -- :func:`fit_logistic` (Platt scaling, the heads).
- :mod:`~llmsafety.judges.embedding` -- :class:`EmbeddingHeadJudge` (logistic heads over frozen
  MiniLM embeddings: *topic* and hh-rlhf *harm*), :class:`CombinedJudge` and
  :func:`default_judge` (the refusal detector gating the heads, offline on a CPU: the reward of
  DART here), the shared embedder, and :func:`hh_judge_split` (which hh-rlhf prompts the default
  judge was trained on, so that evaluations can use only the others).
- :mod:`~llmsafety.judges.request` -- :class:`HarmfulRequestHead`: is the *attack* a harmful
  request? (a logistic head over MiniLM fitted on blind labels of Red attacks; the default judge
  reads the reply, so it pays for benign requests answered helpfully) and
  :func:`request_gate_factor`, how the red reward uses it.
- :mod:`~llmsafety.judges.hub` -- Hugging Face model judges: :class:`RewardModelJudge` (one
  logit, calibrated by Platt scaling) and :class:`GuardModelJudge` (Llama-Guard-style
  P("unsafe") from the first token the guard would write).
- :mod:`~llmsafety.judges.agreement` -- measuring judges: :func:`evaluate_judge` (accuracy on
  labelled pairs), :func:`pairwise_accuracy` (does the judge score the rejected hh reply above
  the chosen one?) and :func:`compare_judges` (agreement table).
"""

from __future__ import annotations

from llmsafety.judges.agreement import compare_judges, evaluate_judge, pairwise_accuracy
from llmsafety.judges.base import FunctionJudge, Judge, JudgeResult, JudgeWarning
from llmsafety.judges.embedding import (
    DEFAULT_JUDGE_RESOURCE,
    HH_JUDGE_TRAIN_FRACTION,
    CachedEmbedder,
    CombinedJudge,
    EmbeddingHeadJudge,
    default_judge,
    embed_pairs,
    hh_judge_split,
    is_hh_judge_heldout,
    shared_embedder,
)
from llmsafety.judges.embedding import FEATURE_KINDS as FEATURE_KINDS
from llmsafety.judges.hub import GuardModelJudge, RewardModelJudge
from llmsafety.judges.logistic import _sigmoid as _sigmoid  # for the tests and scripts/train_default_judge.py
from llmsafety.judges.logistic import fit_logistic
from llmsafety.judges.refusal import RefusalJudge, is_refusal, refusal_probability
from llmsafety.judges.refusal import RefusalReading as RefusalReading
from llmsafety.judges.request import REQUEST_HEAD_RESOURCE, HarmfulRequestHead, request_gate_factor

# ``X as X`` above: importable from here as before the split, but not part of __all__.
__all__ = [
    "JudgeResult",
    "JudgeWarning",
    "Judge",
    "FunctionJudge",
    "RefusalJudge",
    "refusal_probability",
    "is_refusal",
    "EmbeddingHeadJudge",
    "CombinedJudge",
    "CachedEmbedder",
    "shared_embedder",
    "default_judge",
    "RewardModelJudge",
    "GuardModelJudge",
    "HarmfulRequestHead",
    "request_gate_factor",
    "REQUEST_HEAD_RESOURCE",
    "hh_judge_split",
    "is_hh_judge_heldout",
    "HH_JUDGE_TRAIN_FRACTION",
    "DEFAULT_JUDGE_RESOURCE",
    "embed_pairs",
    "fit_logistic",
    "evaluate_judge",
    "pairwise_accuracy",
    "compare_judges",
]

