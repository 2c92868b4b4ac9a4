"""Writes that never lose work: atomic files and folders, output folders checked and locked.

Every write goes to a temporary sibling (file or folder) that is fsynced, made world-readable
(files 0644, folders 0755) and renamed into place, so a crash or a full disk never leaves half a
file or folder. Temporaries carry the writer's pid (``.NAME.tmp-PID-*``); the next writer of the
same name removes those of dead processes. :func:`ensure_writable` checks an output folder before
long work and :func:`output_lock` keeps a second process from writing into it; both raise
:class:`OutputError` (:class:`OutputLockedError`) with one line naming the folder. These names are
also importable from :mod:`lm_core.checkpoint`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

FILE_MODE = 0o644
DIR_MODE = 0o755
LOCK_NAME = ".output.lock"
"""The lock file :func:`output_lock` keeps in an output folder while a process writes it."""


class OutputError(RuntimeError):
    """An output folder cannot be created or written; the message names it and the OS reason."""


class OutputLockedError(OutputError):
    """Another live process is writing the output folder (it holds the folder's lock file)."""


def one_line(e: BaseException | str) -> str:
    """The first non-empty line of an error message (library messages can span many lines)."""
    text = e if isinstance(e, str) else (str(e) or type(e).__name__)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def reason(e: OSError) -> str:
    """The OS reason of an error (its strerror: "Read-only file system", ...)."""
    return e.strerror or one_line(e)


# ---------------------------------------------------------------------------------------------
# atomic writes


def fsync_path(path: str | Path, directory: bool = False) -> None:
    """fsync a file, or a folder (its entries); a filesystem that cannot sync folders is let be."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if not directory:
            raise
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if not directory or e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _temp_prefix(name: str, kind: str) -> str:
    return f".{name}.{kind}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_stale(folder: Path, name: str) -> None:
    """Remove what killed writers of ``folder/name`` left behind (their temporary files and
    folders); a moved-aside ``old`` folder is put back when ``name`` itself is missing."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(tmp|old)-(\d+)-")
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for p in entries:
        m = pattern.match(p.name)
        if not m or _pid_alive(int(m.group(2))):
            continue
        with contextlib.suppress(OSError):
            if m.group(1) == "old" and not os.path.lexists(folder / name):
                os.replace(p, folder / name)
            else:
                _remove(p)


def _make_dir(folder: Path) -> None:
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def atomic_write_file(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Create ``path`` atomically: ``write(tmp)`` fills a temporary file in the same folder
    (``.NAME.tmp-PID-*``), which is fsynced, made 0644 and renamed over ``path``; the folder is
    then fsynced. A killed or failing writer never leaves half a file, and its temporary file is
    removed (a killed one's by the next writer)."""
    path = Path(path)
    _make_dir(path.parent)
    sweep_stale(path.parent, path.name)
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(path.name, "tmp"), dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        fsync_path(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent, directory=True)
    return path


def write_output_file(path: str | Path, write: Callable[[Path], object]) -> Path:
    """:func:`atomic_write_file` for a user-named output: an OS error (full disk, read-only,
    permission) is one :class:`OutputError` line naming the file."""
    try:
        return atomic_write_file(path, write)
    except OSError as e:
        raise OutputError(f"{path}: not written ({reason(e)})") from None


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_file`)."""
    return atomic_write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _seal(folder: Path) -> None:
    """Make a freshly written tree world-readable (folders 0755, files 0644) and fsync it."""
    for root, dirs, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            if os.path.islink(p):  # chmod would follow it out of the folder
                continue
            os.chmod(p, FILE_MODE)
            fsync_path(p)
        for d in dirs:
            os.chmod(os.path.join(root, d), DIR_MODE)
        fsync_path(root, directory=True)
    os.chmod(folder, DIR_MODE)  # mkdtemp creates 0700


def _swap_in(tmp: Path, final: Path) -> Path | None:
    """Rename folder ``tmp`` to ``final``, moving an existing ``final`` aside first; returns the
    moved-aside folder (None if there was none). Another writer may rename its own folder into
    place between the two renames: then its folder is moved aside too (the last writer wins), a
    few times at most. On failure the old folder is put back."""
    for _ in range(8):
        old = None
        if os.path.lexists(final):
            old = final.with_name(_temp_prefix(final.name, "old") + secrets.token_hex(6))
            try:
                os.replace(final, old)
            except FileNotFoundError:  # another writer moved it aside meanwhile
                old = None
        try:
            os.replace(tmp, final)
            return old
        except OSError as e:
            busy = e.errno in (errno.ENOTEMPTY, errno.EEXIST)
            if old is not None:
                if not os.path.lexists(final):
                    os.replace(old, final)
                else:
                    _remove(old)
            if not busy:
                raise
    raise OutputError(f"{final}: other processes keep replacing it at the same time; not written")


def atomic_write_dir(final: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_dir)`` on a temporary sibling folder (``.NAME.tmp-PID-*``), seal it
    (0755 / 0644, fsynced) and rename it to ``final``, replacing an older ``final``. No temporary
    or moved-aside folder survives a failure, a concurrent writer or (after the next write) a
    killed one. The lock file of an :func:`output_lock` on ``final`` moves into the new folder
    (the same file, so the lock stays held)."""
    final = Path(final)
    _make_dir(final.parent)
    sweep_stale(final.parent, final.name)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(final.name, "tmp"), dir=final.parent))
    old, lock = None, final / LOCK_NAME
    try:
        write(tmp)
        _seal(tmp)
        if lock.is_file() and not os.path.lexists(tmp / LOCK_NAME):
            os.replace(lock, tmp / LOCK_NAME)  # an output_lock held on final stays held, in place
        old = _swap_in(tmp, final)
    except BaseException:
        if os.path.lexists(tmp / LOCK_NAME) and final.is_dir() and not lock.exists():
            with contextlib.suppress(OSError):
                os.replace(tmp / LOCK_NAME, lock)
        _remove(tmp)
        raise
    finally:
        # a concurrent writer that opened ``final`` just before the swap may still create its
        # probe or lock file in the moved-aside folder while it is being removed: try again
        for _ in range(5 if old is not None else 0):
            _remove(old)
            if not os.path.lexists(old):
                break
    fsync_path(final.parent, directory=True)
    return final


# ---------------------------------------------------------------------------------------------
# output folders


def ensure_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check that a file can be created, written and removed in
    it; else raise :class:`OutputError` naming the folder and the OS reason. Call it before long
    work whose result goes there."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: expected an output folder, but it is a file")
    try:
        _make_dir(folder)
    except OSError as e:
        raise OutputError(f"{folder}: cannot create the output folder ({reason(e)})") from None
    try:
        fd, name = tempfile.mkstemp(prefix=_temp_prefix("write-check", "tmp"), dir=folder)
        try:
            os.write(fd, b"x")
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)
    except OSError as e:
        raise OutputError(f"{folder}: the output folder is not writable ({reason(e)})") from None
    return folder


def _lock_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip())
        return f" (pid {pid})"
    return ""


@contextlib.contextmanager
def output_lock(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder``'s lock file (``.output.lock``, holding the pid; ``fcntl.flock``) while the
    block runs; the file is removed at the end. A second writer, in this or another process,
    raises :class:`OutputLockedError` at once. The OS drops the lock of a process that dies, so a
    lock file left by a killed process is simply taken over."""
    folder = ensure_writable(folder)
    lock = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as e:
            raise OutputError(f"{lock}: cannot create the lock file ({reason(e)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _lock_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputLockedError(
                    f"{folder}: another process{holder} is writing this output folder; "
                    "wait for it to finish or choose another folder"
                ) from None
            raise OutputError(f"{lock}: cannot lock ({reason(e)})") from None
        try:  # the previous holder may have removed the file between our open and flock
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield folder
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still holding it: a waiting opener then retries
        os.close(fd)
