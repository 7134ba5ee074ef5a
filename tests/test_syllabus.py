"""The syllabus (notebooks/README.md) lists every lesson, and each lesson's header repeats its run time."""

import json
import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ROW = re.compile(r"^\| \[(?P<title>[^\]]+)\]\((?P<file>[\w.-]+\.ipynb)\) \|.*\| (?P<quick>[^|·]+?) · [^|]+ \|$")


def syllabus_rows() -> dict[str, str]:
    rows = {}
    for line in (NOTEBOOKS / "README.md").read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows[match["file"]] = match["quick"].strip()
    return rows


def header(notebook: Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return "".join(cells[0]["source"])


def test_every_lesson_is_in_the_syllabus():
    lessons = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert lessons, "no lessons found"
    assert sorted(syllabus_rows()) == lessons


def test_each_header_repeats_the_syllabus_run_time():
    for name, quick in syllabus_rows().items():
        text = header(NOTEBOOKS / name)
        assert f"runs in {quick} " in text, f"{name}: the syllabus says {quick!r}; its header line says otherwise"
