"""``python -m tsdiff.fev``: the same as ``tsdiff board`` (tsdiff as a model of ``fev``).

    python -m tsdiff.fev --tasks tasks.yaml --model base --output results.csv

The library part is :mod:`tsdiff.boards`; the flags are ``tsdiff board --help``.
"""

from __future__ import annotations

import sys

from tsdiff import cli


def main(argv: list[str] | None = None) -> int:
    """Run ``tsdiff board`` with ``argv`` (default: the process's arguments)."""
    return cli.main(["board", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
