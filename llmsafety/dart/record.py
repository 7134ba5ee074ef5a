"""AttackRecord: one attack on its way through an iteration, the one record every phase shares.

The red phase creates it (the attack a red completion holds, the Target's reply, the judge's harm,
its novelty against the archive, its degeneracy), writes it to ``iter_t/attacks.jsonl`` (the
embedding goes to ``attack_embeddings.npy``, row for row), and the target phase reads it back to
select what the Target is tuned on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class AttackRecord:
    attack: str
    """The attack prompt (empty when the red completion held none)."""
    category: str | None = None
    """The taxonomy id of the red instruction (or seed attack) it came from."""
    step: int = 0
    """The GRPO step that sampled it (0 for seed attacks)."""
    reply: str = ""
    """The Target's (sampled) reply, the one the judge scored."""
    harm: float | None = None
    """The training judge's harm in [0, 1]; None: not scored (see ``harm_reason``)."""
    harm_reason: str | None = None
    """Why there is no harm score (``empty attack``, or the judge's reason)."""
    novelty: float | None = None
    """Global novelty against every attack of earlier iterations (0 for an empty attack)."""
    degeneracy: float | None = None
    """Degeneracy penalty in [0, 1]: too short or mostly repeated words."""
    on_goal: float | None = None
    """Goal-conditioned harm's factor in [0, 1] (None: goals off): is the attack on its instruction's
    goal, and the reply on the attack? The red reward pays harm x on_goal."""
    harmful_request: float | None = None
    """P(the attack is a harmful request) from the request head (None: request gate off). The red
    reward pays harm x on_goal x (1 - w (1 - harmful_request))."""
    request_gate: float | None = dataclasses.field(default=None, repr=False)
    """The gate factor that P gave, 1 - w (1 - P): what harm is multiplied by."""
    embedding: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    """float32[dim], unit norm; kept apart from the JSON (``attack_embeddings.npy``)."""

    # The order of attacks.jsonl's keys, kept from the files runs have written so far.
    _JSON_KEYS = ("step", "attack", "category", "reply", "harm", "harm_reason", "novelty", "degeneracy", "on_goal",
                  "harmful_request", "request_gate")

    def to_json(self) -> dict[str, Any]:
        """The JSON line of attacks.jsonl: every field but the embedding; unset scores are left out."""
        row = {k: getattr(self, k) for k in self._JSON_KEYS}
        return {k: v for k, v in row.items() if v is not None or k in ("category", "harm", "harm_reason")}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "AttackRecord":
        known = {f.name for f in dataclasses.fields(cls)} - {"embedding"}
        unknown = sorted(set(row) - known)
        if unknown:
            raise ValueError(f"an attack record has unknown key(s) {unknown}: attacks.jsonl was written by "
                             f"another version or edited by hand (known keys: {sorted(known)})")
        return cls(**row)
