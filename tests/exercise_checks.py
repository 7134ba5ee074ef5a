"""What every lesson's exercise tests share: a wrong answer fails, in one line that names the case."""

from __future__ import annotations

from llmsafety.exercises import check, get


def fails(student_fn, name: str, capsys) -> str:
    """Check ``student_fn`` against exercise ``name``; assert it fails with one ``✘ ...: case`` line; return it."""
    assert check(student_fn, name) is False
    out = capsys.readouterr().out
    assert out.startswith(f"✘ {get(name).title}: case ") and out.count("\n") == 1, out
    return out
