"""Tests for llmsafety.taxonomy: the survey's tree, its derived ids, look-ups and views."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

from llmsafety._cache import env_path
from llmsafety.taxonomy import (
    RISK_AREA,
    RISK_AREAS,
    TOP_LEVEL_NAMES,
    TOPIC,
    TOPICS,
    Taxonomy,
    TaxonomyError,
    TaxonomyNode,
    default_taxonomy_path,
    load_taxonomy,
    paper_counts,
    slugify,
)

REPO = Path(__file__).resolve().parents[1]
PAPERS_SOURCE = Path(
    env_path("LLMSAFETY_PAPERS_SOURCE")
    or REPO.parent / "shared" / "data" / "awesome-llm-safety-papers" / "README.md"
)

# Ids that other modules (papers, data, notebooks) rely on; see notes/COMMON.md.
DOCUMENTED_IDS = [
    "robustness-to-attack/jailbreaking/black-box-attacks/role-play",
    "value-misalignment/privacy",
    "misuse/weaponization/risks-of-misuse-in-weapons-acquisition/cyber-attacks",
    "technology-roadmaps-strategies-to-llm-safety-in-practice/training",
    "governance/proposals",
]


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return load_taxonomy()


def _sentences(text: str) -> list[str]:
    """Split prose into sentences at ., ! or ? followed by space and a capital or "("."""
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(\"'])", text.strip()) if s]


def _toc_paths(readme: Path) -> list[tuple[str, ...]]:
    """The paths of names under "Papers" in the paper list's Table of Contents."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "## Table of Contents")
    entry = re.compile(r"^(?P<indent>\s*)[*-] \[(?P<name>[^\]]+)\]\(#[^)]*\)\s*$")
    paths, stack = [], []  # stack: (indent, name) of the open ancestors
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        match = entry.match(line.expandtabs(4))
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["name"].strip()))
        names = [name for _, name in stack]
        if names[0] == "Papers" and len(names) > 1:
            paths.append(tuple(names[1:]))
    return paths


# --------------------------------------------------------------------------- the tree itself
def test_roots_are_the_surveys_eight_areas_in_order(tax):
    assert [r.name for r in tax.roots] == list(TOP_LEVEL_NAMES)
    assert RISK_AREAS + TOPICS == TOP_LEVEL_NAMES
    assert [r.name for r in tax.risk_areas] == list(RISK_AREAS)
    assert [r.name for r in tax.topics] == list(TOPICS)
    assert {r.kind for r in tax.risk_areas} == {RISK_AREA}
    assert {r.kind for r in tax.topics} == {TOPIC}


def test_survey_metadata_names_the_survey(tax):
    assert tax.survey["arxiv_id"] == "2412.17686"
    assert "Holistic Survey" in tax.survey["title"]
    assert "2412.17686" in tax.survey["citation"]
    assert tax.survey["paper_list"].endswith("Awesome-LLM-Safety-Papers")


def test_ids_are_unique_slug_paths(tax):
    ids = [n.id for n in tax]
    assert len(ids) == len(set(ids)) == len(tax)
    for node in tax:
        assert node.id == "/".join(slugify(name) for name in node.path)
        assert node.slug == slugify(node.name)
    for node_id in DOCUMENTED_IDS:
        assert node_id in tax


def test_parents_and_children_agree(tax):
    for root in tax.roots:
        assert root.parent is None and root.depth == 0 and root.top is root
    for node in tax:
        for child in node.children:
            assert child.parent is node
            assert child.depth == node.depth + 1
            assert child.path == node.path + (child.name,)
            assert child.top is node.top
            assert child.kind == node.kind
        assert node.is_leaf == (not node.children)
    assert sum(1 for root in tax.roots for _ in root.walk()) == len(tax)


def test_every_node_is_described_for_students(tax):
    descriptions = set()
    for node in tax:
        n_sentences = len(_sentences(node.description))
        assert 2 <= n_sentences <= 4, f"{node.id}: {n_sentences} sentences"
        assert node.description.endswith("."), node.id
        assert 3 <= len(node.key_terms) <= 6, node.id
        assert len(set(t.lower() for t in node.key_terms)) == len(node.key_terms), node.id
        assert all(t.strip() == t and t for t in node.key_terms), node.id
        descriptions.add(node.description)
    assert len(descriptions) == len(tax), "two nodes share a description"


def test_slugify_matches_the_documented_convention():
    assert slugify("Black-box Attacks") == "black-box-attacks"
    assert slugify("Cyber attacks") == slugify("Cyber Attacks") == "cyber-attacks"
    assert (
        slugify("Technology Roadmaps / Strategies to LLM Safety in Practice")
        == "technology-roadmaps-strategies-to-llm-safety-in-practice"
    )


def test_node_repr_is_short(tax):
    node = tax["value-misalignment/privacy"]
    assert repr(node) == "TaxonomyNode('value-misalignment/privacy')"
    assert "2412.17686" in repr(tax) and str(len(tax)) in repr(tax)


def test_nodes_are_read_only(tax):
    with pytest.raises(AttributeError):
        tax.roots[0].name = "renamed"


# --------------------------------------------------------------------------- loading
def test_yaml_is_package_data_found_through_importlib_resources():
    resource = importlib.resources.files("llmsafety.taxonomy_data") / "taxonomy.yaml"
    assert resource.is_file(), "taxonomy.yaml is not shipped as llmsafety.taxonomy_data"
    assert Path(str(resource)).resolve() == default_taxonomy_path().resolve()
    data = yaml.safe_load(resource.read_text(encoding="utf-8"))
    assert [area["name"] for area in data["areas"]] == list(TOP_LEVEL_NAMES)


def test_default_load_is_cached_and_explicit_path_gives_same_tree(tax):
    assert load_taxonomy() is tax
    fresh = load_taxonomy(default_taxonomy_path())
    assert fresh is not tax
    assert fresh.ids == tax.ids


def _write_yaml(tmp_path: Path, areas: list, **extra) -> Path:
    data = {
        "survey": {"arxiv_id": "0000.00000"},
        "risk_areas": [a["name"] for a in areas if isinstance(a, dict) and "name" in a],
        "topics": [],
        "areas": areas,
    }
    data.update(extra)
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _node(name: str, children: list | None = None, **fields) -> dict:
    node = {
        "name": name,
        "description": "A test node. It has two sentences.",
        "key_terms": ["a", "b", "c"],
        "children": children or [],
    }
    node.update(fields)
    return node


def test_a_small_valid_yaml_loads(tmp_path):
    path = _write_yaml(tmp_path, [_node("Area One", [_node("Sub Area")])])
    small = load_taxonomy(path)
    assert small.ids == ("area-one", "area-one/sub-area")
    assert small["area-one/sub-area"].kind == RISK_AREA


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (_node("Area", [_node("Leaf", description="")]), "Area > Leaf"),
        (_node("Area", [_node("Leaf", key_terms=[])]), "key_terms"),
        (_node("Area", [_node("Leaf", id="area/leaf")]), "unknown keys"),
        (_node("Area", [_node("Same Name"), _node("Same  name")]), "duplicate id"),
        (_node("Area", [{"description": "No name. Really."}]), "name"),
    ],
)
def test_malformed_nodes_are_named_in_the_error(tmp_path, node, message):
    path = _write_yaml(tmp_path, [node])
    with pytest.raises(TaxonomyError, match=re.escape(message)):
        load_taxonomy(path)


def test_top_level_area_must_be_a_risk_area_or_topic(tmp_path):
    path = _write_yaml(tmp_path, [_node("Area")], risk_areas=[])
    with pytest.raises(TaxonomyError, match="risk_areas or topics"):
        load_taxonomy(path)


def test_missing_file_and_bad_yaml_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_taxonomy(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("areas: [unclosed", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="not valid YAML"):
        load_taxonomy(bad)
    assert issubclass(TaxonomyError, ValueError)


# --------------------------------------------------------------------------- look-ups
def test_getitem_get_and_contains(tax):
    node = tax["value-misalignment/privacy"]
    assert isinstance(node, TaxonomyNode) and node.name == "Privacy"
    assert tax.get("value-misalignment/privacy") is node
    assert tax.get("no/such/node", None) is None
    assert "value-misalignment/privacy" in tax and node in tax
    assert "privacy" not in tax and 42 not in tax


def test_unknown_id_error_names_it_and_suggests_close_ids(tax):
    with pytest.raises(KeyError) as err:
        tax["value-misalignment/privcy"]
    assert "value-misalignment/privcy" in str(err.value)
    assert "value-misalignment/privacy" in str(err.value)
    with pytest.raises(KeyError, match="robustness-to-attack/jailbreaking"):
        tax.get("jailbreaking")


def test_walk_and_leaves(tax):
    jailbreaking = "robustness-to-attack/jailbreaking"
    subtree = list(tax.walk(jailbreaking))
    assert subtree[0].id == jailbreaking
    assert all(n.id.startswith(jailbreaking) for n in subtree)
    leaves = tax.leaves(jailbreaking)
    assert tax["robustness-to-attack/jailbreaking/white-box-attacks"] in leaves
    assert len(leaves) == 10  # nine black-box styles and white-box attacks
    assert [n.id for n in tax] == list(tax.ids)


def test_node_for_path_matches_names_by_slug(tax):
    path = ("Robustness to Attack", "Jailbreaking", "Black-box Attacks", "Role Play")
    node = tax.node_for_path(path)
    assert node.id == "robustness-to-attack/jailbreaking/black-box-attacks/role-play"
    assert node.path == path
    cyber = ("Misuse", "Weaponization", "Risks of Misuse in Weapons Acquisition", "Cyber attacks")
    assert tax.node_for_path(cyber).name == "Cyber Attacks"
    assert tax.node_for_path("Governance > Proposals").id == "governance/proposals"


def test_node_for_path_error_names_path_and_closest_nodes(tax):
    typo = ("Autonomous AI Risks", "Evaluation", "Capability Evluation")
    with pytest.raises(KeyError) as err:
        tax.node_for_path(typo)
    message = str(err.value)
    assert "Capability Evluation" in message
    assert "autonomous-ai-risks/evaluation/capability-evaluation" in message
    with pytest.raises(KeyError, match="top-level"):
        tax.node_for_path(("Safety",))
    with pytest.raises(ValueError):
        tax.node_for_path(())


def test_find_searches_names_descriptions_and_key_terms(tax):
    hits = tax.find("jailbreak")
    assert tax["robustness-to-attack/jailbreaking"] in hits
    assert tax.find("WATERMARK")  # case-insensitive
    # Every word must match: narrower than either word alone.
    both = tax.find("privacy unlearning")
    assert tax["value-misalignment/privacy/privacy-protection-methods"] in both
    assert set(both) <= set(tax.find("privacy")) & set(tax.find("unlearning"))
    assert tax.find("zzzz-no-such-term") == []
    with pytest.raises(ValueError):
        tax.find("   ")


# --------------------------------------------------------------------------- tables and text
def test_to_dataframe_has_one_row_per_node(tax):
    df = tax.to_dataframe()
    assert len(df) == len(tax)
    assert list(df.columns) == [
        "id", "name", "depth", "parent_id", "area", "kind", "is_leaf", "n_children",
        "key_terms", "description",
    ]
    assert df["id"].is_unique
    assert (df["depth"] == 0).sum() == 8
    assert df["parent_id"].isna().sum() == 8
    assert set(df["parent_id"].dropna()) <= set(df["id"])
    assert df.groupby("kind")["area"].nunique().to_dict() == {RISK_AREA: 4, TOPIC: 4}


def test_render_is_an_indented_tree(tax):
    text = tax.render("robustness-to-attack/jailbreaking")
    lines = text.splitlines()
    assert lines[0] == "Jailbreaking"
    assert "├── Black-box Attacks" in text
    assert "│   ├── Role Play" in text  # grandchildren are indented one level more
    assert lines[-1] == "└── White-box Attacks"
    assert len(lines) == len(list(tax.walk("robustness-to-attack/jailbreaking")))
    assert str(tax) == tax.render()
    assert tax.render(max_depth=0).splitlines() == list(TOP_LEVEL_NAMES)
    assert tax.render("misuse", max_depth=0) == "Misuse"
    with pytest.raises(ValueError):
        tax.render(max_depth=-1)


def test_render_shows_counts(tax):
    counts = {"misuse": 5, "misuse/deepfakes": 2}
    text = tax.render("misuse", max_depth=1, counts=counts)
    assert text.splitlines()[0] == "Misuse (5)"
    assert "Deepfakes (2)" in text
    assert "Weaponization (0)" in text
    with pytest.raises(ValueError, match="not-a-node"):
        tax.render(counts={"not-a-node": 1})


# --------------------------------------------------------------------------- papers
@pytest.fixture
def toy_papers() -> pd.DataFrame:
    role_play = "robustness-to-attack/jailbreaking/black-box-attacks/role-play"
    cipher = "robustness-to-attack/jailbreaking/black-box-attacks/cipher-text"
    white_box = "robustness-to-attack/jailbreaking/white-box-attacks"
    return pd.DataFrame(
        {
            "paper_id": ["p1", "p2", "p1", "p3", "p4"],
            "title": ["Persona paper", "Another persona paper", "Persona paper",
                      "Cipher paper", "Privacy paper"],
            "year": [2023, 2024, 2023, 2024, 2022],
            "url": ["https://arxiv.org/abs/1", None, "https://arxiv.org/abs/1", None, None],
            # p1 is listed twice, under role play and under cipher text
            "taxonomy_id": [role_play, role_play, cipher, white_box, "value-misalignment/privacy"],
        }
    )


def test_paper_counts_include_descendants(tax, toy_papers):
    counts = tax.paper_counts(toy_papers)
    assert list(counts.index) == list(tax.ids)
    black_box = "robustness-to-attack/jailbreaking/black-box-attacks"
    assert counts[f"{black_box}/role-play"] == 2
    assert counts[f"{black_box}/cipher-text"] == 1
    assert counts[black_box] == 2  # p1 counts once for the parent of both its sections
    assert counts["robustness-to-attack/jailbreaking"] == 3
    assert counts["value-misalignment"] == 1
    assert counts["governance"] == 0
    rows = tax.paper_counts(toy_papers, distinct=False)
    assert rows[black_box] == 3
    assert paper_counts(toy_papers).equals(counts)
    assert paper_counts(list(toy_papers["taxonomy_id"]))["robustness-to-attack"] == 4


def test_paper_counts_reject_unknown_ids_and_missing_column(tax, toy_papers):
    bad = toy_papers.assign(taxonomy_id=["robustness-to-attack/nope"] * len(toy_papers))
    with pytest.raises(ValueError, match="robustness-to-attack/nope"):
        tax.paper_counts(bad)
    with pytest.raises(ValueError, match="taxonomy_id"):
        tax.paper_counts(toy_papers.drop(columns="taxonomy_id"))
    with_gap = toy_papers.assign(taxonomy_id=[None] + list(toy_papers["taxonomy_id"][1:]))
    assert tax.paper_counts(with_gap, distinct=False)["robustness-to-attack"] == 3


def test_papers_under_selects_the_subtree(tax, toy_papers):
    under = tax.papers_under(toy_papers, "robustness-to-attack/jailbreaking/black-box-attacks")
    assert len(under) == 3
    assert tax.papers_under(toy_papers, "governance").empty


# --------------------------------------------------------------------------- views
def test_plot_returns_a_figure_of_the_tree(tax, tmp_path):
    fig = tax.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("Value Misalignment" in t for t in texts)
    assert len(texts) == len(tax)  # one label per node
    out = tmp_path / "taxonomy.png"
    fig.savefig(out, dpi=40)
    assert out.stat().st_size > 1000


def test_plot_with_papers_adds_counts_and_bars(tax, toy_papers):
    fig = tax.plot(toy_papers, node_id="robustness-to-attack/jailbreaking")
    assert len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert any(label.startswith("Jailbreaking (3)") for label in labels)
    bars = fig.axes[1].patches
    assert len(bars) == len(tax.leaves("robustness-to-attack/jailbreaking"))
    assert max(bar.get_width() for bar in bars) == 2


def test_explorer_shows_the_selected_node(tax, toy_papers):
    widgets = pytest.importorskip("ipywidgets")
    box = tax.explorer()
    assert isinstance(box, widgets.Widget)
    select, panel = box.children
    assert len(select.options) == len(tax)
    assert "Value Misalignment" in panel.value
    select.value = "value-misalignment/privacy"
    assert "<h3" in panel.value and "Privacy</h3>" in panel.value
    assert "differential privacy" in panel.value

    with_papers = tax.explorer(toy_papers)
    select, panel = with_papers.children
    select.value = "robustness-to-attack/jailbreaking/black-box-attacks/role-play"
    assert "Papers in this subtree:</b> 2" in panel.value
    assert "Persona paper" in panel.value and "https://arxiv.org/abs/1" in panel.value
    label = dict((v, k) for k, v in select.options)[select.value]
    assert label.endswith("Role Play  (2)") and label.startswith("\u00a0")


# --------------------------------------------------------------------------- the paper list
def test_every_table_of_contents_entry_is_a_node(tax):
    if not PAPERS_SOURCE.is_file():
        pytest.skip(
            f"paper list not found at {PAPERS_SOURCE}; set LLMSAFETY_PAPERS_SOURCE to the "
            "README.md of tjunlp-lab/Awesome-LLM-Safety-Papers"
        )
    paths = _toc_paths(PAPERS_SOURCE)
    assert len(paths) > 50, "the Table of Contents was not parsed"
    for path in paths:
        node = tax.node_for_path(path)
        assert node.name == path[-1], f"{path}: named {node.name!r} in the taxonomy"
    # ... and the taxonomy has nothing the Table of Contents lacks.
    assert {tax.node_for_path(p).id for p in paths} == set(tax.ids)
