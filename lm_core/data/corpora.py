"""Text corpora as lists of documents (strings); nothing here downloads anything.

``load_corpus(spec, split)`` takes a built-in name or file paths / globs:

- Built-in corpora (real text, read from files inside this package or on every machine):

  - ``shakespeare``: 24 works (Gutenberg texts, public domain, ``corpora/shakespeare.txt.gz``),
    each cut at blank lines into documents of about 4 KB (~700 documents, 2.7 MB).
  - ``kjv``: the King James Bible (public domain, ``corpora/kjv.txt.gz``), one document per
    chapter (1,189 documents, 4.1 MB).
  - ``stdlib``: the Python standard library source of the running interpreter
    (``sysconfig.get_paths()["stdlib"]``), ``*.py`` files in sorted path order, without
    site-packages, test directories and ``test_*.py``; one document per file, files over 64 KB
    cut at blank lines into ~4 KB documents (~12 MB; the exact text depends on the Python version).

  Fixed held-out split: every document has a stable name (``hamlet/0007``, ``01 Genesis 3``,
  ``json/decoder.py``, ``typing.py#2``); ``crc32(name) % 100`` in [0, 5) is ``val``, [5, 10) is
  ``test``, the rest ``train`` (see :func:`split_of`). The splits are disjoint and do not depend
  on the order of loading or on a seed.

- Files: a path or glob (``**`` allowed), or a list of them, in sorted order. ``*.jsonl`` (or
  ``.jsonl.gz``) holds one JSON object per line with the document in field ``text``; write
  ``path.jsonl:field`` to read another field. Any other file is UTF-8 text (``.gz`` allowed), one
  document per file, cut at blank lines into ~4 KB documents when over 64 KB. For files ``split``
  is ignored: all documents are returned (give separate files for validation, or let
  :func:`holdout` split them).

Problems raise :class:`CorpusError` naming the path / field and what was expected.
"""

from __future__ import annotations

import functools
import glob
import gzip
import json
import os
import sysconfig
import zlib
from pathlib import Path

CORPORA_DIR = Path(__file__).with_name("corpora")
BUILTIN = ("shakespeare", "kjv", "stdlib")
SPLITS = ("train", "val", "test")
CHUNK_CHARS = 4000
"""Target size of a document cut from a long text (characters)."""
LARGE_FILE_CHARS = 65536
"""Texts longer than this are cut into documents of about CHUNK_CHARS."""
_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}


class CorpusError(ValueError):
    """A corpus spec, file or field is missing or malformed; the message says what was expected."""


def split_of(name: str) -> str:
    """Fixed split of a document name: 5 % ``val``, 5 % ``test``, 90 % ``train`` (by crc32)."""
    bucket = zlib.crc32(name.encode("utf-8")) % 100
    return "val" if bucket < 5 else "test" if bucket < 10 else "train"


def holdout(docs: list[str], split: str) -> list[str]:
    """The ``split`` part of ``docs`` by the same crc32 rule, applied to each document's text."""
    _check_split(split)
    return [d for d in docs if split_of(d) == split]


def chunk_text(text: str, target: int = CHUNK_CHARS) -> list[str]:
    """Cut ``text`` at blank lines into pieces of at least ``target`` characters (the last shorter).

    A paragraph longer than ``4 * target`` is cut at line ends; other paragraphs are kept whole.
    """
    pieces, cur, size = [], [], 0
    for para in _paragraphs(text, target):
        if not para.strip():
            continue
        cur.append(para.strip("\n"))
        size += len(para) + 2
        if size >= target:
            pieces.append("\n\n".join(cur) + "\n")
            cur, size = [], 0
    if cur:
        pieces.append("\n\n".join(cur) + "\n")
    return pieces


def _paragraphs(text: str, target: int):
    for para in text.split("\n\n"):
        if len(para) <= 4 * target:
            yield para
            continue
        lines, size = [], 0
        for line in para.split("\n"):
            lines.append(line)
            size += len(line) + 1
            if size >= target:
                yield "\n".join(lines)
                lines, size = [], 0
        if lines:
            yield "\n".join(lines)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise CorpusError(f"split: expected one of {SPLITS}, got {split!r}")


def _read_records(path: Path) -> list[tuple[str, str]]:
    """Records ``"\\x1e" + name + "\\n" + text`` of an embedded gzip file -> [(name, text)]."""
    raw = gzip.decompress(path.read_bytes()).decode("utf-8")
    out = []
    for rec in raw.split("\x1e")[1:]:
        name, _, text = rec.partition("\n")
        out.append((name, text))
    return out


@functools.cache
def _builtin_named(name: str) -> tuple[tuple[str, str], ...]:
    """All documents of a built-in corpus as (stable name, text), in a fixed order."""
    if name == "shakespeare":
        docs = []
        for work, text in _read_records(CORPORA_DIR / "shakespeare.txt.gz"):
            docs += [(f"{work}/{i:04d}", c) for i, c in enumerate(chunk_text(text))]
        return tuple(docs)
    if name == "kjv":
        return tuple(_read_records(CORPORA_DIR / "kjv.txt.gz"))
    if name == "stdlib":
        return tuple(_stdlib_docs(Path(sysconfig.get_paths()["stdlib"])))
    raise CorpusError(f"corpus: expected one of {BUILTIN} or a file path, got {name!r}")


def _stdlib_docs(root: Path) -> list[tuple[str, str]]:
    docs = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("test")
        )
        for fn in sorted(filenames):
            if not fn.endswith(".py") or fn.startswith("test_"):
                continue
            path = Path(dirpath) / fn
            rel = path.relative_to(root).as_posix()
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # a few stdlib files are deliberately not UTF-8
            docs += _named_pieces(rel, text)
    return docs


def _named_pieces(name: str, text: str) -> list[tuple[str, str]]:
    if not text.strip():
        return []
    if len(text) <= LARGE_FILE_CHARS:
        return [(name, text)]
    return [(f"{name}#{i}", c) for i, c in enumerate(chunk_text(text))]


def _read_text(path: Path) -> str:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return raw.decode("utf-8")
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise CorpusError(f"{path}: expected a readable UTF-8 text file ({e})") from e


def _jsonl_docs(path: Path, field: str) -> list[str]:
    docs = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}:{n}: expected one JSON object per line ({e})") from e
        if not isinstance(obj, dict) or field not in obj:
            keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise CorpusError(f"{path}:{n}: expected a field {field!r} (found {keys})")
        if not isinstance(obj[field], str):
            raise CorpusError(
                f"{path}:{n}: field {field!r}: expected a string, got {type(obj[field]).__name__}"
            )
        if obj[field].strip():
            docs.append(obj[field])
    return docs


def _parse_item(item: str) -> tuple[str, str | None]:
    """``"a/b.jsonl:body"`` -> ("a/b.jsonl", "body"); other strings -> (item, None)."""
    head, sep, field = item.rpartition(":")
    if sep and ".jsonl" in Path(head).name and field and "/" not in field:
        return head, field
    return item, None


def _expand(pattern: str) -> list[Path]:
    if glob.has_magic(pattern):
        paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not paths:
            raise CorpusError(f"{pattern}: expected the glob to match at least one file, got none")
        return paths
    p = Path(pattern)
    if not p.is_file():
        raise CorpusError(
            f"{pattern}: file not found (expected a file, a glob or one of {BUILTIN})"
        )
    return [p]


def _file_docs(item: str) -> list[str]:
    pattern, field = _parse_item(item)
    docs = []
    for path in _expand(pattern):
        if ".jsonl" in path.suffixes:
            docs += _jsonl_docs(path, field or "text")
        elif field is not None:
            raise CorpusError(f"{item}: a ':field' suffix needs a .jsonl file, got {path}")
        else:
            docs += [t for _, t in _named_pieces(str(path), _read_text(path))]
    return docs


def load_corpus(spec: str | list[str], split: str = "train") -> list[str]:
    """Documents of a built-in corpus split, or of files / globs (``split`` ignored for files).

    Returns a new list of strings (non-empty documents) in a fixed order.
    """
    _check_split(split)
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not items:
        raise CorpusError("corpus: expected a corpus name, path or glob, got an empty list")
    docs: list[str] = []
    for item in items:
        item = os.fspath(item)
        if item in BUILTIN:
            docs += [t for name, t in _builtin_named(item) if split_of(name) == split]
        else:
            docs += _file_docs(item)
    if not docs:
        raise CorpusError(f"{spec}: expected at least one non-empty document, got none")
    return docs


def is_builtin(spec: str | list[str]) -> bool:
    """True when ``spec`` names only built-in corpora (so it has fixed val/test splits)."""
    items = [spec] if isinstance(spec, str) else list(spec)
    return bool(items) and all(os.fspath(i) in BUILTIN for i in items)


def train_val(train_spec, val_spec=None) -> tuple[list[str], list[str]]:
    """(train, val) documents of a run: ``val_spec``'s, a built-in corpus's ``val`` split, or a
    fixed 5 % of the training documents held out by a hash of their text (:func:`split_of`);
    too few documents for that is a ValueError naming ``--data.val``."""
    train = load_corpus(train_spec, "train")
    if val_spec is not None:
        return train, load_corpus(val_spec, "val")
    if is_builtin(train_spec):
        return train, load_corpus(train_spec, "val")
    val = holdout(train, "val")
    train = [d for d in train if split_of(d) != "val"]
    if not val:
        raise ValueError(
            f"--data.val: {train_spec!r} gave {len(train)} document(s), too few to "
            "hold out 5 % for validation; give a validation file with --data.val FILE "
            "(a text file is one document, cut at blank lines into ~4 KB documents when "
            "over 64 KB; a .jsonl file is one document per line)"
        )
    return train, val
