"""Strip machine paths from the saved outputs of the lessons (run after executing them).

    python scripts/clean_notebooks.py            # rewrite notebooks/*.ipynb in place
    python scripts/clean_notebooks.py --check    # exit 1 and list what would change

A kernel prints the path of its temporary cell file in front of every warning
("/tmp/ipykernel_8008/421907560.py:3: PaperListWarning: ...") and library messages name the files
they read. Neither teaches anything, and both would publish the layout of the machine that ran
the lesson. Warning prefixes go; any other absolute path keeps only its last two parts
("…/awesome-llm-safety-papers/README.md"). tests/test_notebooks_clean.py holds the same rule.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# "/tmp/ipykernel_8008/421907560.py:3: " in front of a warning (any OS's temp folder).
KERNEL_CELL_PREFIX = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s\"']*ipykernel_\d+[/\\]\d+\.py:\d+: ")
# An absolute POSIX path with at least three parts, or a Windows drive path.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:])(?:/(?:[\w.@+-]+/){2,}[\w.@+-]*|[A-Za-z]:\\(?:[\w.@+ -]+\\)+[\w.@+-]*)")


def scrub(text: str) -> str:
    text = KERNEL_CELL_PREFIX.sub("", text)

    def tail(match: re.Match) -> str:
        parts = [p for p in re.split(r"[/\\]", match.group(0)) if p]
        return "…/" + "/".join(parts[-2:])

    return ABSOLUTE_PATH.sub(tail, text)


def machine_paths(text: str) -> list[str]:
    return KERNEL_CELL_PREFIX.findall(text) + ABSOLUTE_PATH.findall(text)


def clean_notebook(path: Path, write: bool = True) -> int:
    """Scrub every text output of one notebook; returns how many output fields changed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            fields = [("text", output)] if "text" in output else []
            fields += [(mime, output["data"]) for mime in output.get("data", {}) if mime.startswith("text/")]
            for key, holder in fields:
                value = holder[key]
                lines = value if isinstance(value, list) else [value]
                new = [scrub(line) for line in lines]
                if new != lines:
                    holder[key] = new if isinstance(value, list) else new[0]
                    changed += 1
    if changed and write:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything would change")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    args = parser.parse_args()
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    dirty = {p: n for p in paths if (n := clean_notebook(p, write=not args.check))}
    for path, n in dirty.items():
        print(f"{path.name}: {n} output(s) {'hold machine paths' if args.check else 'cleaned'}")
    return 1 if (dirty and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
