"""Write the students' copies of the lessons: every exercise's solution blanked, outputs cleared.

    python scripts/student_notebooks.py [--out student_notebooks]

The lessons in notebooks/ are the instructor's copies: each exercise's function is written out
between two marker lines, so CI runs every solution through the same check a student calls.
The students' copy keeps the markers and the function's first line (its signature and
docstring, when the cell has them) and replaces the body with ``raise NotImplementedError``,
so the check below it fails until the student writes the function.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "# --- your code below (solution shown; `make student-notebooks` blanks it) ---"
END = "# --- end of your code ---"
_DEF = re.compile(r"^def \w+\(.*")


def blank_solution(source: str) -> str:
    """The cell with the code between BEGIN and END replaced by the signature and a stub."""
    lines = source.split("\n")
    if BEGIN not in [line.strip() for line in lines]:
        return source
    start = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
    ends = [i for i, line in enumerate(lines) if line.strip() == END and i > start]
    if not ends:
        raise ValueError(f"an exercise cell opens with {BEGIN!r} but has no {END!r} line")
    end = ends[0]
    body = lines[start + 1:end]
    kept = []
    for i, line in enumerate(body):
        if _DEF.match(line):
            kept.append(line)
            # keep the signature's continuation lines and a docstring right after it
            j = i + 1
            while not kept[-1].rstrip().endswith(":") and j < len(body):
                kept.append(body[j])
                j += 1
            if j < len(body) and body[j].strip().startswith(('"""', "'''")):
                quote = body[j].strip()[:3]
                kept.append(body[j])
                if body[j].strip().count(quote) < 2:
                    j += 1
                    while j < len(body) and quote not in body[j]:
                        kept.append(body[j])
                        j += 1
                    if j < len(body):
                        kept.append(body[j])
            indent = "    "
            kept.append(f"{indent}raise NotImplementedError(\"write this function, then run the check below\")")
            kept.append("")
    if not kept:
        kept = ["raise NotImplementedError(\"write your code here, then run the check below\")"]
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(lines[:start + 1] + kept + lines[end:])


def student_copy(notebook: dict) -> dict:
    out = json.loads(json.dumps(notebook))
    for cell in out["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = blank_solution(source)
        cell["outputs"], cell["execution_count"] = [], None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "student_notebooks")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        (args.out / path.name).write_text(json.dumps(student_copy(notebook), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {args.out / path.name}")


if __name__ == "__main__":
    main()
