"""Lesson 01 exercises: walking the survey's taxonomy tree.

The tree is :mod:`llmsafety.taxonomy`'s: every node has ``.id`` (its path of slugs,
``"robustness-to-attack/jailbreaking"``), ``.name``, ``.key_terms``, ``.parent`` (``None`` for
the eight top-level areas), ``.children`` and ``.is_leaf``; ``tax[node_id]`` looks a node up and
iterating over ``tax`` visits every node depth-first. The library already answers each question
here (``tax.leaves``, ``node.path``, ``tax.find``); the exercises ask you to answer them from the
parent and child links alone, which is what those helpers do inside.
"""

from __future__ import annotations

import numpy as np

from llmsafety.exercises import Exercise
from llmsafety.taxonomy import Taxonomy, TaxonomyNode, load_taxonomy

# Small (95 nodes) and cached by load_taxonomy, so loading it here costs nothing later.
TAX: Taxonomy = load_taxonomy()


def _random_node(rng: np.random.Generator) -> TaxonomyNode:
    return TAX[TAX.ids[int(rng.integers(len(TAX.ids)))]]


# --------------------------------------------------------------------------------------------
# 1. Count the leaves under a node
# --------------------------------------------------------------------------------------------


def count_leaves(node: TaxonomyNode) -> int:
    """How many leaves (nodes without children) lie under ``node``; a leaf counts itself (1)."""
    if node.is_leaf:
        return 1
    # A node's leaves are its children's leaves: recursion follows the tree's own shape.
    return sum(count_leaves(child) for child in node.children)


COUNT_LEAVES = Exercise(
    name="count_leaves",
    lesson=1,
    title="Count the leaves under a node",
    difficulty=1,
    importance=2,
    minutes=5,
    reference=count_leaves,
    cases=[
        (TAX["robustness-to-attack"],),  # a top-level area: leaves two levels down
        (TAX["robustness-to-attack/jailbreaking"],),
        (TAX["misuse/deepfakes"],),  # a leaf: 1, not 0
    ],
    random_case=lambda rng: (_random_node(rng),),
    copy_inputs=False,  # the tree is read-only, and copying it would break its parent links
)


# --------------------------------------------------------------------------------------------
# 2. The path of names from the top-level area down to a node
# --------------------------------------------------------------------------------------------


def path_names(node: TaxonomyNode) -> list[str]:
    """Names from the top-level area down to ``node`` (both included), e.g.
    ``["Robustness to Attack", "Jailbreaking"]``."""
    names = []
    # Climb the parent links to the root, then reverse: the path is read top-down.
    while node is not None:
        names.append(node.name)
        node = node.parent
    return names[::-1]


PATH_NAMES = Exercise(
    name="path_names",
    lesson=1,
    title="The path of names from the root to a node",
    difficulty=1,
    importance=2,
    minutes=5,
    reference=path_names,
    cases=[
        (TAX["governance"],),  # a top-level area: a path of one name
        (TAX["value-misalignment/privacy"],),
        (TAX[TAX.leaves("robustness-to-attack/jailbreaking")[0].id],),  # the deepest kind of node
    ],
    random_case=lambda rng: (_random_node(rng),),
    copy_inputs=False,
)


# --------------------------------------------------------------------------------------------
# 3. The nodes whose name or key terms mention a word
# --------------------------------------------------------------------------------------------


def nodes_mentioning(tax: Taxonomy, word: str) -> list[str]:
    """Ids, in tree order, of the nodes whose name or one of whose key terms contains ``word``.

    Case-insensitive ("privacy" finds "Privacy"); a part of a word counts ("jailbreak" finds
    "Jailbreaking"). Descriptions are not searched (``tax.find`` searches them too).
    """
    word = word.lower()
    hits = []
    for node in tax:  # depth-first, so the ids come in tree order
        texts = [node.name, *node.key_terms]
        if any(word in text.lower() for text in texts):
            hits.append(node.id)
    return hits


def _random_word_case(rng: np.random.Generator) -> tuple[Taxonomy, str]:
    # A word from a random node's name or key terms, in a random case, so there is a hit.
    node = _random_node(rng)
    words = [w for text in (node.name, *node.key_terms) for w in text.split() if len(w) >= 4]
    word = words[int(rng.integers(len(words)))] if words else node.slug
    return TAX, word.upper() if rng.random() < 0.3 else word


NODES_MENTIONING = Exercise(
    name="nodes_mentioning",
    lesson=1,
    title="The nodes whose name or key terms mention a word",
    difficulty=1,
    importance=2,
    minutes=8,
    reference=nodes_mentioning,
    cases=[
        (TAX, "jailbreak"),  # part of "Jailbreaking", and a key term of several nodes
        (TAX, "PRIVACY"),  # case must not matter
        (TAX, "no-such-word"),  # no hit: an empty list, not an error
    ],
    random_case=_random_word_case,
    copy_inputs=False,
)


# --------------------------------------------------------------------------------------------
# 4. How many levels lie below a node
# --------------------------------------------------------------------------------------------


def subtree_height(node: TaxonomyNode) -> int:
    """The number of levels below ``node``: 0 for a leaf, 1 for a node whose children are all
    leaves, and so on (the longest way down)."""
    if node.is_leaf:
        return 0
    # max, not sum: the height is set by the deepest branch, whatever the others do.
    return 1 + max(subtree_height(child) for child in node.children)


SUBTREE_HEIGHT = Exercise(
    name="subtree_height",
    lesson=1,
    title="How many levels lie below a node",
    difficulty=2,
    importance=1,
    minutes=8,
    reference=subtree_height,
    cases=[
        (TAX["misuse/deepfakes"],),  # a leaf: 0
        (TAX["robustness-to-attack"],),  # branches of different depths: the deepest counts
        (TAX["governance"],),
    ],
    random_case=lambda rng: (_random_node(rng),),
    copy_inputs=False,
)


EXERCISES = [COUNT_LEAVES, PATH_NAMES, NODES_MENTIONING, SUBTREE_HEIGHT]
