"""The taxonomy of the survey "Large Language Model Safety: A Holistic Survey" as a tree.

The survey (Shi et al., 2024, arXiv 2412.17686) sorts LLM safety research into four *risk
areas* (Value Misalignment, Robustness to Attack, Misuse, Autonomous AI Risks) and four related
*topics* (Agent Safety, Interpretability, Technology Roadmaps, Governance). Its paper list
(tjunlp-lab/Awesome-LLM-Safety-Papers) files every paper under a node of that tree. This package
loads the tree from ``taxonomy/taxonomy.yaml`` (shipped as ``llmsafety.taxonomy_data``) and lets
you look nodes up, search them, print them, explore them in a widget and draw them.

Every node has an id made from its path of names, so ids never drift from names::

    slugify("Black-box Attacks") == "black-box-attacks"
    "robustness-to-attack/jailbreaking/black-box-attacks/role-play"

Typical use::

    from llmsafety.taxonomy import load_taxonomy
    tax = load_taxonomy()
    print(tax.render("robustness-to-attack", max_depth=1))
    tax["value-misalignment/privacy"].description
    tax.find("watermark")

Modules (everything below is importable from ``llmsafety.taxonomy`` itself):

- :mod:`.node`: the top-level names (``TOP_LEVEL_NAMES``, ``RISK_AREAS``, ``TOPICS``, ``RISK_AREA``,
  ``TOPIC``), :func:`slugify`, :class:`TaxonomyError` and :class:`TaxonomyNode`;
- :mod:`.tree`: :class:`Taxonomy`, the whole tree (look-up, search, text, paper counts);
- :mod:`.views`: what its ``to_dataframe``, ``explorer`` and ``plot`` methods build;
- :mod:`.load`: :func:`default_taxonomy_path` and :func:`load_taxonomy` (reading and validation);
- :mod:`.counts`: :func:`paper_counts` and the helpers that read paper frames.
"""

from __future__ import annotations

from llmsafety.taxonomy.counts import paper_counts
from llmsafety.taxonomy.load import default_taxonomy_path, load_taxonomy
from llmsafety.taxonomy.node import (
    RISK_AREA,
    RISK_AREAS,
    TOP_LEVEL_NAMES,
    TOPIC,
    TOPICS,
    TaxonomyError,
    TaxonomyNode,
    slugify,
)
from llmsafety.taxonomy.tree import Taxonomy

__all__ = [
    "TOP_LEVEL_NAMES",
    "RISK_AREAS",
    "TOPICS",
    "RISK_AREA",
    "TOPIC",
    "Taxonomy",
    "TaxonomyError",
    "TaxonomyNode",
    "default_taxonomy_path",
    "load_taxonomy",
    "paper_counts",
    "slugify",
]
