"""Saved lesson outputs hold no machine paths (a kernel's temp cell file, the folder that ran it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

_spec = importlib.util.spec_from_file_location("clean_notebooks", REPO / "scripts" / "clean_notebooks.py")
clean_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(clean_notebooks)


def test_the_rule_catches_kernel_prefixes_and_absolute_paths_but_not_urls():
    text = ("/tmp/ipykernel_8008/421907560.py:3: PaperListWarning: reading /work/shared/data/x/README.md\n"
            "see https://arxiv.org/abs/2407.03876v1 and taxonomy/taxonomy.yaml, 1/2/3")
    assert clean_notebooks.machine_paths(text)
    cleaned = clean_notebooks.scrub(text)
    assert cleaned.startswith("PaperListWarning: reading …/x/README.md")
    assert "https://arxiv.org/abs/2407.03876v1" in cleaned and "taxonomy/taxonomy.yaml" in cleaned
    assert clean_notebooks.machine_paths(cleaned) == []
    assert clean_notebooks.scrub(r"C:\Users\ann\llmsafety\runs\demo") == "…/runs/demo"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_saved_notebook_holds_no_machine_paths(notebook):
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    found = []
    for index, cell in enumerate(nb["cells"]):
        texts = ["".join(cell["source"])]
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")))
            texts += ["".join(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
        found += [f"cell {index}: {p}" for t in texts for p in clean_notebooks.machine_paths(t)]
    assert not found, (f"{notebook.name} holds machine paths: {found[:5]}; "
                       "run `python scripts/clean_notebooks.py` after executing it")
