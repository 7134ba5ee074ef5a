"""Taxonomy nodes: the survey's top-level names, :func:`slugify`, :class:`TaxonomyError` and
:class:`TaxonomyNode`, one node of the tree (the tree itself is in :mod:`.tree`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

#: The survey's eight top-level areas, in the survey's order.
TOP_LEVEL_NAMES: tuple[str, ...] = (
    "Value Misalignment",
    "Robustness to Attack",
    "Misuse",
    "Autonomous AI Risks",
    "Agent Safety",
    "Interpretability for LLM Safety",
    "Technology Roadmaps / Strategies to LLM Safety in Practice",
    "Governance",
)
#: The four areas the survey reviews as risks (with methods and evaluation for each).
RISK_AREAS: tuple[str, ...] = TOP_LEVEL_NAMES[:4]
#: The four further topics the survey discusses.
TOPICS: tuple[str, ...] = TOP_LEVEL_NAMES[4:]

#: Values of :attr:`TaxonomyNode.kind`.
RISK_AREA = "risk area"
TOPIC = "topic"

_NODE_KEYS = {"name", "description", "key_terms", "children"}


def slugify(name: str) -> str:
    """Lower-case ``name`` and join its runs of letters and digits with "-".

    >>> slugify("Technology Roadmaps / Strategies to LLM Safety in Practice")
    'technology-roadmaps-strategies-to-llm-safety-in-practice'
    """
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class TaxonomyError(ValueError):
    """The taxonomy YAML is malformed; the message names the file and the bad node."""


@dataclass(frozen=True, eq=False, repr=False)
class TaxonomyNode:
    """One node of the taxonomy: an area, a sub-area or a leaf.

    Attributes
    ----------
    id : str
        Slugs of the path joined by "/", e.g. ``"value-misalignment/privacy"``.
    name : str
        The name the survey's paper list uses, e.g. ``"Privacy"``.
    description : str
        Two to four sentences explaining the node to a student.
    key_terms : tuple of str
        A few terms worth knowing (and searching for) in this area.
    depth : int
        0 for the eight top-level areas, 1 for their children, and so on.
    path : tuple of str
        Names from the top-level area down to this node.
    kind : str
        ``"risk area"`` or ``"topic"``: which half of the survey the node's area belongs to.
    parent : TaxonomyNode or None
    children : tuple of TaxonomyNode
    """

    id: str
    name: str
    description: str
    key_terms: tuple[str, ...]
    depth: int
    path: tuple[str, ...]
    kind: str
    # Set once while the tree is built (the loader links parents and children), never after.
    parent: TaxonomyNode | None = None
    children: tuple[TaxonomyNode, ...] = ()

    @property
    def slug(self) -> str:
        """The last part of the id: ``slugify(name)``."""
        return self.id.rsplit("/", 1)[-1]

    @property
    def top(self) -> TaxonomyNode:
        """The top-level area this node belongs to (itself for a top-level node)."""
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def walk(self) -> Iterator[TaxonomyNode]:
        """This node and all its descendants, depth-first in the survey's order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def __repr__(self) -> str:
        return f"TaxonomyNode({self.id!r})"

