"""Lightning checkpoint files (``last.ckpt``) that a crash or a full disk never loses.

Lightning's own ``TorchCheckpointIO`` writes through a temporary file in ``$TMPDIR`` and moves it
into place; across filesystems that move is a copy, so a full disk or a kill -9 during it leaves
a truncated ``last.ckpt`` that no resume can read. :class:`AtomicCheckpointIO` instead:

- writes ``.NAME.tmp-PID-*`` in the target folder, flushes and fsyncs it, makes it 0644, renames
  it over ``NAME`` and fsyncs the folder (a failed write removes its temporary file and raises
  :class:`~lm_core.outputs.OutputError`; a killed writer's is removed by the next write);
- keeps the checkpoint it replaces, when that one is whole, as ``NAME-prev.ckpt``
  (:func:`lm_core.checkpoint.previous_path`): the last two checkpoints are on disk at any time;
- loads with ``torch.load`` as Lightning does (``weights_only`` as the caller asks); a
  checkpoint that cannot be read (missing, truncated, not a checkpoint, or holding objects that a
  ``weights_only`` load refuses) is reported in one line on stderr and the previous one is loaded
  instead; when that fails too, :class:`~lm_core.checkpoint.CheckpointError` (one line naming
  the file) is raised.
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lm_core.checkpoint import CheckpointError, previous_path
from lm_core.outputs import OutputError, atomic_write_file, one_line, reason


def is_whole(path: str | Path) -> bool:
    """True if ``path`` is a complete zip archive (``torch.save``'s format; its directory is at
    the end, so a truncated file fails this check)."""
    try:
        with zipfile.ZipFile(path):
            return True
    except (OSError, zipfile.BadZipFile):
        return False


def _first_sentence(text: str) -> str:
    return one_line(text).split(". ")[0].rstrip(".")


def _refusal(e: pickle.UnpicklingError) -> str:
    """What a ``weights_only`` load refused, without torch's advice to load unsafely."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    keep = [ln for ln in lines if "weights_only" not in ln and "Weights only" not in ln]
    return _first_sentence(keep[0]) if keep else "objects that are not plain data"


def _as_stored(storage, location):
    return storage  # Lightning's default map_location: every tensor is loaded on the CPU


def read_checkpoint(
    path: str | Path, map_location: Any = _as_stored, weights_only: bool | None = True
):
    """``torch.load`` of a local Lightning checkpoint file; :class:`CheckpointError` with one line
    naming the file for anything unreadable (and no advice to turn ``weights_only`` off)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file missing")
    try:
        # torch warns about foreign pickle protocols; a refusal is said in one line below
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{p}: refused: it holds objects other than tensors, numbers, strings and plain "
            f"containers ({_refusal(e)})"
        ) from None
    except EOFError:
        raise CheckpointError(f"{p}: unreadable checkpoint (empty or truncated file)") from None
    except (RuntimeError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{p}: unreadable checkpoint ({_first_sentence(str(e))})") from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO``: atomic, fsynced writes in the target folder, the previous
    checkpoint kept, and a resume that falls back to it (see the module docstring)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint: storage_options unsupported")
        path = Path(path)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
            if is_whole(path):  # a truncated one (an older writer's) is not worth keeping
                os.replace(path, previous_path(path))

        try:
            atomic_write_file(path, write)
        except OSError as e:
            raise OutputError(
                f"{path}: checkpoint not written ({reason(e)}); the previous one is kept"
            ) from None

    def load_checkpoint(
        self, path, map_location: Any = _as_stored, weights_only: bool | None = None
    ):
        try:
            return read_checkpoint(path, map_location, weights_only)
        except CheckpointError as e:
            prev = previous_path(path)
            if not prev.is_file():
                raise
            if rank_zero_only.rank == 0:
                print(
                    f"resume: {e}; falling back to the previous checkpoint {prev}", file=sys.stderr
                )
            return read_checkpoint(prev, map_location, weights_only)

    def remove_checkpoint(self, path) -> None:
        super().remove_checkpoint(path)
        previous_path(path).unlink(missing_ok=True)
