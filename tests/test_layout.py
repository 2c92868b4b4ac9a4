"""Layout rules that neither ruff nor import-linter checks: no library file over 400 lines.

(Import rules live in pyproject.toml: ruff's PLC0415 forbids imports inside functions, and the
import-linter contracts forbid cycles, lm_core -> tsdiff, library -> benchmarks and library ->
command imports.)"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
LIBRARY = sorted(p for pkg in ("lm_core", "tsdiff") for p in (ROOT / pkg).rglob("*.py"))


def test_the_library_is_where_this_test_looks():
    assert len(LIBRARY) > 50, "lm_core/ and tsdiff/ should hold the library's modules"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_library_file_over_400_lines(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines; split it by role"
