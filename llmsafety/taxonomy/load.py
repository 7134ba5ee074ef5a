"""Loading the taxonomy: :func:`default_taxonomy_path` finds the packaged ``taxonomy.yaml``,
:func:`load_taxonomy` reads it (cached) and ``_build`` validates it into linked nodes."""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llmsafety.taxonomy.node import _NODE_KEYS, RISK_AREA, TOPIC, TaxonomyError, TaxonomyNode, slugify
from llmsafety.taxonomy.tree import Taxonomy


def default_taxonomy_path() -> Path:
    """Where the packaged ``taxonomy.yaml`` lives.

    It is read through ``importlib.resources`` (package ``llmsafety.taxonomy_data``). In a
    source checkout that has not been pip-installed that package does not exist, so the
    file next to the package (``taxonomy/taxonomy.yaml``) is used instead.
    """
    try:
        resource = importlib.resources.files("llmsafety.taxonomy_data") / "taxonomy.yaml"
        if resource.is_file():
            return Path(str(resource))
    except ModuleNotFoundError:
        pass
    # This file is llmsafety/taxonomy/load.py: parents[2] is the checkout's root.
    return Path(__file__).resolve().parents[2] / "taxonomy" / "taxonomy.yaml"


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate the taxonomy (the packaged one by default, cached).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    TaxonomyError
        (a ValueError) If the YAML is malformed; the message names the bad node.
    """
    if path is None:
        return _load_default()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _load_default() -> Taxonomy:
    return _load(default_taxonomy_path())


def _load(path: Path) -> Taxonomy:
    if not path.is_file():
        raise FileNotFoundError(
            f"taxonomy file not found: {path}; call load_taxonomy() without a path for the "
            "packaged taxonomy"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise TaxonomyError(f"{path} is not valid YAML: {err}") from None
    return _build(data, str(path))


def _build(data: Any, source: str) -> Taxonomy:
    """Check the parsed YAML and turn it into linked nodes with derived ids."""

    def fail(where: str, problem: str) -> TaxonomyError:
        return TaxonomyError(f"{source}: {where}: {problem}")

    if not isinstance(data, Mapping):
        raise fail("top level", "expected a mapping with keys survey, risk_areas, topics, areas")
    for key in ("survey", "risk_areas", "topics", "areas"):
        if key not in data:
            raise fail("top level", f"missing key {key!r}")
    survey = data["survey"]
    if not isinstance(survey, Mapping) or not survey.get("arxiv_id"):
        raise fail("survey", "expected a mapping with at least an arxiv_id")
    areas = data["areas"]
    if not isinstance(areas, list) or not areas:
        raise fail("areas", "expected a non-empty list of top-level areas")

    kinds: dict[str, str] = {}
    for key, kind in (("risk_areas", RISK_AREA), ("topics", TOPIC)):
        names = data[key]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise fail(key, "expected a list of top-level area names")
        for name in names:
            if name in kinds:
                raise fail(key, f"{name!r} is listed as both a risk area and a topic (or twice)")
            kinds[name] = kind

    by_id: dict[str, TaxonomyNode] = {}

    def build(raw: Any, where: str, parent: TaxonomyNode | None, kind: str) -> TaxonomyNode:
        if not isinstance(raw, Mapping):
            raise fail(where, f"expected a mapping with name/description/key_terms, got {raw!r}")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip() or not slugify(name):
            raise fail(where, f"missing or empty 'name' (got {name!r})")
        path = (*parent.path, name) if parent else (name,)
        label = f"node {' > '.join(path)!r}"
        extra = set(raw) - _NODE_KEYS
        if extra:
            raise fail(label, f"unknown keys {sorted(extra)}; allowed: {sorted(_NODE_KEYS)}")
        description = raw.get("description")
        if not isinstance(description, str) or not description.strip():
            raise fail(label, "missing or empty 'description'")
        key_terms = raw.get("key_terms")
        if (
            not isinstance(key_terms, list)
            or not key_terms
            or not all(isinstance(t, str) and t.strip() for t in key_terms)
        ):
            raise fail(label, f"'key_terms' must be a non-empty list of strings, got {key_terms!r}")
        children_raw = raw.get("children") or []
        if not isinstance(children_raw, list):
            raise fail(label, f"'children' must be a list, got {children_raw!r}")

        node_id = f"{parent.id}/{slugify(name)}" if parent else slugify(name)
        if node_id in by_id:
            raise fail(label, f"duplicate id {node_id!r} (same slug as {by_id[node_id].path!r})")
        node = TaxonomyNode(
            id=node_id,
            name=name.strip(),
            description=" ".join(description.split()),
            key_terms=tuple(t.strip() for t in key_terms),
            depth=len(path) - 1,
            path=path,
            kind=kind,
            parent=parent,
        )
        by_id[node_id] = node
        children = tuple(
            build(child, f"{label}, child {i}", node, kind) for i, child in enumerate(children_raw)
        )
        object.__setattr__(node, "children", children)  # the one place nodes are completed
        return node

    roots = []
    for i, raw in enumerate(areas):
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if name not in kinds:
            raise fail(
                f"areas[{i}] ({name!r})",
                "every top-level area must be listed under risk_areas or topics",
            )
        roots.append(build(raw, f"areas[{i}]", None, kinds[name]))
    missing = set(kinds) - {r.name for r in roots}
    if missing:
        raise fail("risk_areas/topics", f"names without a top-level area: {sorted(missing)}")
    return Taxonomy(roots, survey=survey, source=source)

