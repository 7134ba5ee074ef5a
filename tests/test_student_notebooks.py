"""The students' copies of the lessons: solutions blanked, signatures kept, cells still valid Python."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_notebooks", ROOT / "scripts" / "student_notebooks.py")
student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student)

CELL = f'''from llmsafety.exercises import check
{student.BEGIN}
def distinct_n(texts: list[str],
               n: int) -> float:
    """Distinct n-grams over all n-grams."""
    grams = [tuple(t.split()[i:i + n]) for t in texts for i in range(len(t.split()) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def helper(x):
    return x + 1
{student.END}
print("after")'''


def test_blanking_keeps_signature_and_docstring_and_drops_the_body():
    blanked = student.blank_solution(CELL)
    assert "def distinct_n(texts: list[str],\n               n: int) -> float:" in blanked
    assert '"""Distinct n-grams over all n-grams."""' in blanked
    assert "grams = " not in blanked and "return x + 1" not in blanked
    assert blanked.count("raise NotImplementedError") == 2  # each function of the cell
    assert blanked.startswith("from llmsafety.exercises import check\n") and blanked.endswith('print("after")')
    namespace: dict = {}
    exec(compile(blanked, "cell", "exec"), namespace)
    with pytest.raises(NotImplementedError):
        namespace["distinct_n"](["a b"], 1)


def test_cells_without_markers_are_unchanged_and_an_unclosed_exercise_is_an_error():
    assert student.blank_solution("x = 1\nprint(x)") == "x = 1\nprint(x)"
    with pytest.raises(ValueError, match="no '# --- end of your code ---'"):
        student.blank_solution(f"{student.BEGIN}\ndef f():\n    return 1")


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_lesson_has_a_valid_students_copy(path):
    notebook = json.loads(path.read_text())
    copy = student.student_copy(notebook)
    exercise_cells = 0
    for original, blanked in zip(notebook["cells"], copy["cells"]):
        if original["cell_type"] != "code":
            continue
        source = "".join(original["source"])
        assert blanked["outputs"] == []
        if student.BEGIN in source:
            exercise_cells += 1
            compile(blanked["source"], f"{path.name} exercise", "exec")
            assert "NotImplementedError" in blanked["source"]
    assert exercise_cells >= 3, f"{path.name} has {exercise_cells} exercises; a lesson has at least 3"
