"""Tokenizers with reserved special tokens EOS, PAD and MASK.

Every tokenizer exposes ``eos_id``, ``pad_id``, ``mask_id`` and ``vocab_size`` (all ids, specials
included), ``encode(text) -> list[int]`` (no EOS appended), ``decode(ids, skip_special=True)`` and
``save(dir)``. :func:`load_tokenizer` reads a directory written by ``save``; it reads JSON only
(never unpickles anything).

Id layouts:

- :class:`ByteTokenizer`: ids 0..255 are the UTF-8 bytes, 256 = EOS, 257 = PAD, 258 = MASK;
  ``vocab_size`` = 259.
- :class:`PretrainedTokenizer` (``kind: "hf"``): any HuggingFace ``tokenizers`` JSON file, such
  as LLaDA's, named instead of training BPE (:func:`resolve_tokenizer` with a ``.json`` path).
  Its MASK, EOS and PAD are found by name (``special_tokens`` overrides; PAD falls back to EOS);
  ``vocab_size`` counts the added tokens. Special-token text in an input *is* parsed as the
  special token here (chat templates need it).
- :class:`BPETokenizer` (HuggingFace ``tokenizers``, byte-level BPE): the specials come first,
  0 = EOS, 1 = PAD, 2 = MASK, then the 256 byte symbols, then the learned merges; ``vocab_size``
  is the size requested at training (fewer if the corpus runs out of merges). Special-token text
  such as ``"<|eos|>"`` inside an input string is encoded as ordinary text, never as the special id.

Directory layout written by ``save``::

    DIR/tokenizer_meta.json   {"kind": "byte" | "bpe" | "hf", "eos_id", "pad_id", "mask_id",
                               "vocab_size"}
    DIR/tokenizer.json        (bpe, hf) the HuggingFace tokenizer

:func:`tokenizer_hash` fingerprints a tokenizer (its meta and its ``tokenizer.json``): the
manifest of a shard folder records it (:mod:`lm_core.data.shards`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
MASK_TOKEN = "<|mask|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN, MASK_TOKEN)
META_FILE = "tokenizer_meta.json"
KINDS = ("byte", "bpe", "hf")
MASK_NAMES = ("<|mdm_mask|>", MASK_TOKEN, "<mask>", "[MASK]", "<|mask|>")
EOS_NAMES = (EOS_TOKEN, "<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "[SEP]")
PAD_NAMES = (PAD_TOKEN, "<pad>", "[PAD]", "<|padding|>")


class TokenizerError(ValueError):
    """A tokenizer directory or argument is invalid; the message names the file or field."""


class _Base:
    kind: str = ""
    eos_id: int
    pad_id: int
    mask_id: int
    vocab_size: int

    @property
    def special_ids(self) -> dict[str, int]:
        """Special token string -> id."""
        return {EOS_TOKEN: self.eos_id, PAD_TOKEN: self.pad_id, MASK_TOKEN: self.mask_id}

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode several texts (no EOS appended)."""
        return [self.encode(t) for t in texts]

    def _meta(self) -> dict:
        return {
            "kind": self.kind,
            "eos_id": self.eos_id,
            "pad_id": self.pad_id,
            "mask_id": self.mask_id,
            "vocab_size": self.vocab_size,
        }

    def save(self, dir: str | Path) -> Path:
        """Write the tokenizer into directory ``dir`` (created if missing); returns ``dir``."""
        d = Path(dir)
        d.mkdir(parents=True, exist_ok=True)
        self._save_files(d)
        (d / META_FILE).write_text(json.dumps(self._meta(), indent=2))
        return d

    def _save_files(self, d: Path) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class ByteTokenizer(_Base):
    """UTF-8 bytes: ids 0..255 are bytes, 256 EOS, 257 PAD, 258 MASK (vocab_size 259)."""

    kind = "byte"

    def __init__(self) -> None:
        self.eos_id, self.pad_id, self.mask_id = 256, 257, 258
        self.vocab_size = 259

    def encode(self, text: str) -> list[int]:
        """UTF-8 bytes of ``text`` as ids (no EOS appended)."""
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Bytes back to text (invalid UTF-8 becomes U+FFFD); specials dropped or shown by name."""
        names = {v: k for k, v in self.special_ids.items()}
        out: list[str] = []
        buf = bytearray()
        for i in _as_ints(ids):
            if 0 <= i < 256:
                buf.append(i)
                continue
            if i not in names:
                raise TokenizerError(f"ids: expected values in [0, {self.vocab_size}), got {i}")
            if not skip_special:
                out.append(buf.decode("utf-8", errors="replace"))
                out.append(names[i])
                buf = bytearray()
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


class BPETokenizer(_Base):
    """Byte-level BPE (HuggingFace ``tokenizers``); specials 0 = EOS, 1 = PAD, 2 = MASK."""

    kind = "bpe"

    def __init__(self, hf_tokenizer) -> None:
        self._tok = hf_tokenizer
        self._tok.encode_special_tokens = True  # "<|eos|>" in text is text, not the EOS id
        ids = [hf_tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if any(i is None for i in ids):
            raise TokenizerError(f"tokenizer.json: expected special tokens {SPECIAL_TOKENS}")
        self.eos_id, self.pad_id, self.mask_id = ids
        self.vocab_size = hf_tokenizer.get_vocab_size(with_added_tokens=True)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> BPETokenizer:
        """Learn byte-level BPE merges from ``texts`` up to ``vocab_size`` ids (specials included)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        min_size = 256 + len(SPECIAL_TOKENS)
        if not isinstance(vocab_size, int) or vocab_size < min_size:
            raise TokenizerError(
                f"vocab_size: expected an integer >= {min_size} (256 bytes + 3 specials), "
                f"got {vocab_size!r}"
            )
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(iter(texts), trainer=trainer)
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no EOS appended)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode several texts in one call (parallel inside ``tokenizers``)."""
        encs = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encs]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Ids back to text; specials dropped (``skip_special``) or shown as ``<|eos|>`` etc."""
        ids = _as_ints(ids)
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise TokenizerError(f"ids: expected values in [0, {self.vocab_size}), got {bad[0]}")
        return self._tok.decode(ids, skip_special_tokens=skip_special)

    def _save_files(self, d: Path) -> None:
        self._tok.save(str(d / "tokenizer.json"))

    @classmethod
    def from_dir(cls, d: Path) -> BPETokenizer:
        from tokenizers import Tokenizer  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        f = d / "tokenizer.json"
        if not f.is_file():
            raise TokenizerError(f"{f}: expected a HuggingFace tokenizer.json, file is missing")
        return cls(Tokenizer.from_file(str(f)))


class PretrainedTokenizer(_Base):
    """A pretrained HuggingFace ``tokenizers`` JSON file with given EOS / PAD / MASK ids.

    ``source`` names the file it came from (for error messages)."""

    kind = "hf"

    def __init__(self, hf_tokenizer, *, eos_id: int, pad_id: int, mask_id: int, source="") -> None:
        self._tok = hf_tokenizer
        self.eos_id, self.pad_id, self.mask_id = eos_id, pad_id, mask_id
        self.vocab_size = hf_tokenizer.get_vocab_size(with_added_tokens=True)
        self.source = str(source)
        for name in ("eos_id", "pad_id", "mask_id"):
            v = getattr(self, name)
            if not (isinstance(v, int) and 0 <= v < self.vocab_size):
                raise TokenizerError(
                    f"{source}: {name}: expected an id in [0, {self.vocab_size}), got {v!r}"
                )

    @classmethod
    def from_file(cls, path: str | Path, special_tokens: dict | None = None) -> PretrainedTokenizer:
        """Read ``path`` (a ``tokenizer.json``); specials by name: ``special_tokens`` maps
        ``mask`` / ``eos`` / ``pad`` to token strings, else the first known name present."""
        from tokenizers import Tokenizer  # noqa: PLC0415 - optional or heavy third-party, loaded when used

        f = Path(path)
        if not f.is_file():
            raise TokenizerError(f"{f}: expected a HuggingFace tokenizer JSON file, none there")
        try:
            tok = Tokenizer.from_file(str(f))
        except Exception as e:  # noqa: BLE001 - the tokenizers library raises plain Exception
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise TokenizerError(f"{f}: not a HuggingFace tokenizer JSON file ({msg})") from None
        given = dict(special_tokens or {})
        bad = set(given) - {"mask", "eos", "pad"}
        if bad:
            raise TokenizerError(f"special_tokens: expected keys mask, eos, pad; got {sorted(bad)}")
        vocab = tok.get_vocab(with_added_tokens=True)
        ids = {}
        for role, names in (("mask", MASK_NAMES), ("eos", EOS_NAMES), ("pad", PAD_NAMES)):
            wanted = (given[role],) if role in given else names
            found = [vocab[n] for n in wanted if n in vocab]
            if found:
                ids[role] = found[0]
            elif role == "pad":
                ids[role] = ids["eos"]
            else:
                raise TokenizerError(
                    f"{f}: no {role.upper()} token (looked for {', '.join(wanted)}); name it "
                    f"with special_tokens {{{role}: TOKEN}} (lm-core prepare --{role}-token)"
                )
        return cls(tok, eos_id=ids["eos"], pad_id=ids["pad"], mask_id=ids["mask"], source=f)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS/EOS added by the file's post-processor)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode several texts in one call (parallel inside ``tokenizers``)."""
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Ids back to text (specials dropped when ``skip_special``)."""
        return self._tok.decode(_as_ints(ids), skip_special_tokens=skip_special)

    def _save_files(self, d: Path) -> None:
        self._tok.save(str(d / "tokenizer.json"))


def tokenizer_hash(tok) -> str:
    """sha256 (hex) of a tokenizer's meta (kind, special ids, vocab size) and its vocabulary
    and merges: equal for a tokenizer and its saved-and-loaded copy."""
    h = hashlib.sha256(json.dumps(tok._meta(), sort_keys=True).encode())
    inner = getattr(tok, "_tok", None)
    if inner is not None:
        model = json.loads(inner.to_str())
        for key in ("model", "added_tokens", "normalizer", "pre_tokenizer"):
            h.update(json.dumps(model.get(key), sort_keys=True).encode())
    return h.hexdigest()


def resolve_tokenizer(
    spec: str, texts: Iterable[str] | None = None, vocab_size: int | None = None,
    special_tokens: dict | None = None,
):  # fmt: skip
    """``byte``, ``bpe`` (trained on ``texts``), a tokenizer folder written by ``save``, or a
    HuggingFace ``tokenizer.json`` file (:class:`PretrainedTokenizer`)."""
    if spec in ("byte", "bpe"):
        return build_tokenizer(spec, texts, vocab_size)
    p = Path(spec)
    if p.is_dir():
        return load_tokenizer(p)
    if p.suffix == ".json" or p.is_file():
        return PretrainedTokenizer.from_file(p, special_tokens)
    raise TokenizerError(
        f"tokenizer: expected byte, bpe, a tokenizer folder or a tokenizer.json file, got {spec!r}"
    )


def _as_ints(ids) -> list[int]:
    if hasattr(ids, "tolist"):  # torch / numpy
        ids = ids.tolist()
    return [int(i) for i in ids]


def _read_hf(f: Path):
    from tokenizers import Tokenizer  # noqa: PLC0415 - optional or heavy third-party, loaded when used

    if not f.is_file():
        raise TokenizerError(f"{f}: expected a HuggingFace tokenizer.json, file is missing")
    return Tokenizer.from_file(str(f))


def load_tokenizer(dir: str | Path) -> ByteTokenizer | BPETokenizer:
    """Read a tokenizer saved with ``save(dir)`` (JSON files only, no pickle)."""
    d = Path(dir)
    meta_file = d / META_FILE
    if not meta_file.is_file():
        raise TokenizerError(f"{meta_file}: expected a tokenizer directory with {META_FILE}")
    try:
        meta = json.loads(meta_file.read_text())
        kind = meta["kind"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise TokenizerError(f"{meta_file}: expected JSON with a 'kind' field ({e})") from e
    if kind == "byte":
        tok: ByteTokenizer | BPETokenizer = ByteTokenizer()
    elif kind == "bpe":
        tok = BPETokenizer.from_dir(d)
    elif kind == "hf":
        ids = {k: meta.get(f"{k}_id") for k in ("eos", "pad", "mask")}
        tok = PretrainedTokenizer(
            _read_hf(d / "tokenizer.json"), **{f"{k}_id": v for k, v in ids.items()},
            source=d / "tokenizer.json",
        )  # fmt: skip
    else:
        raise TokenizerError(f"{meta_file}: kind: expected one of {KINDS}, got {kind!r}")
    for field in ("eos_id", "pad_id", "mask_id", "vocab_size"):
        if field in meta and meta[field] != getattr(tok, field):
            raise TokenizerError(
                f"{meta_file}: {field} is {meta[field]} but the tokenizer has {getattr(tok, field)}"
            )
    return tok


def build_tokenizer(
    kind: str, texts: Iterable[str] | None = None, vocab_size: int | None = None
) -> ByteTokenizer | BPETokenizer:
    """Make a tokenizer: ``"byte"``, or ``"bpe"`` trained on ``texts`` with ``vocab_size`` ids."""
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        if texts is None:
            raise TokenizerError(
                "texts: expected training texts for tokenizer kind 'bpe', got None"
            )
        if vocab_size is None:
            raise TokenizerError(
                "vocab_size: expected an integer for tokenizer kind 'bpe', got None"
            )
        return BPETokenizer.train(texts, vocab_size)
    raise TokenizerError(f"kind: expected one of {KINDS}, got {kind!r}")
