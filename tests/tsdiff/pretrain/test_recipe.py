"""The pretraining recipe: its corpus (real long frames + synthetic), batches that are a
function of (seed, index) with one horizon each, and a run that resumes exactly."""

import numpy as np
import pandas as pd
import pytest
import torch

from tests.tsdiff.test_faults import stopping_at
from tsdiff.data.frames import DataError
from tsdiff.pretrain.__main__ import main as pretrain_main
from tsdiff.pretrain.corpus import Corpus, CorpusConfig, PretrainBatches, read_real, real_files
from tsdiff.pretrain.recipe import BaseModelConfig, PretrainConfig, PretrainTraining, pretrain
from tsdiff.pretrained import load_base


@pytest.fixture
def real_dir(tmp_path):
    """Two long frames: two items with one target, one item with two (NaN gaps)."""
    t = pd.date_range("2020-01-01", periods=150, freq="D")
    a = pd.DataFrame({"item_id": np.repeat(["p", "q"], 75), "timestamp": list(t[:75]) * 2,
                      "y": np.arange(150.0)})  # fmt: skip
    b = pd.DataFrame({"item_id": "r", "timestamp": t, "u": np.sin(np.arange(150.0)),
                      "v": np.where(np.arange(150) % 10 == 0, np.nan, 1.0)})  # fmt: skip
    d = tmp_path / "real"
    d.mkdir()
    a.to_parquet(d / "a.parquet")
    b.to_csv(d / "b.csv", index=False)
    return d


def test_real_files_become_univariate_series(real_dir):
    assert [f.name for f in real_files([str(real_dir)])] == ["a.parquet", "b.csv"]
    assert [len(x) for x in read_real(real_dir / "a.parquet")] == [75, 75]
    u, v = read_real(real_dir / "b.csv")
    assert len(u) == 150 and np.isnan(v).sum() == 15


def test_bad_corpus_inputs_are_one_line_errors(real_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks.pretrain_split"):
        real_files([str(tmp_path / "nowhere")])
    (tmp_path / "bad.csv").write_text("item_id,when,y\na,1,2\n")
    with pytest.raises(DataError, match="no 'timestamp' column"):
        read_real(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="corpus.real_share"):
        CorpusConfig(real_share=1.5)


def test_batches_are_reproducible_and_have_one_horizon_each(real_dir):
    cfg = CorpusConfig(real=[str(real_dir)], synthetic_series=20, horizons=[4, 8])
    corpus = Corpus.build(cfg, seed=0)
    assert set(corpus.real) == {"a", "b"} and len(corpus.synthetic) == 20
    data = PretrainBatches(corpus, cfg, context_length=32, batch_size=6, n_batches=10, seed=0)
    again = PretrainBatches(Corpus.build(cfg, seed=0), cfg, 32, 6, 10, seed=0)
    for i in range(10):
        b = data[i]
        H = b["fut"].shape[1]
        assert H in (4, 8) and b["ctx"].shape == (6, 32, 1) and b["tf_fut"].shape == (6, H, 0)
        assert b["fut_obs"].any(1).all()  # every window has an observed horizon cell
        torch.testing.assert_close(b["ctx"], again[i]["ctx"])
    assert {data[i]["fut"].shape[1] for i in range(10)} == {4, 8}


def tiny_recipe(real_dir, out, steps):
    return PretrainConfig(
        seed=0, out=str(out),
        model=BaseModelConfig(context_length=32, patch_size=8, n_bins=32, d_model=32,
                              n_layers=1, n_heads=2),
        training=PretrainTraining(batch_size=8, max_steps=steps, threads=1, checkpoint_every=2),
        corpus=CorpusConfig(real=[str(real_dir)], synthetic_series=10, horizons=[4, 8]),
    )  # fmt: skip


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(
    real_dir, tmp_path, monkeypatch
):
    whole = pretrain(tiny_recipe(real_dir, tmp_path / "whole", 6), log=lambda *_: None)
    stopping_at(monkeypatch, 5)  # killed before step 5: the checkpoint of step 4 survives
    with pytest.raises(RuntimeError, match="killed"):
        pretrain(tiny_recipe(real_dir, tmp_path / "cut", 6), log=lambda *_: None)
    monkeypatch.undo()
    assert not (tmp_path / "cut" / "base").exists()  # nothing exported half-way
    resumed = pretrain(tiny_recipe(real_dir, tmp_path / "cut", 6), resume="auto",
                       log=lambda *_: None)  # fmt: skip
    assert whole.meta["steps"] == resumed.meta["steps"] == 6
    assert whole.sha256 == resumed.sha256
    base = load_base(tmp_path / "whole" / "base")
    assert base.sha256 == whole.sha256 and base.max_horizon == 8
    assert base.meta["windows_seen"] == 48 and base.meta["corpus"]["synthetic"]["series"] == 10


def test_the_command_reports_bad_input_in_one_line(tmp_path, capsys):
    assert pretrain_main(["--corpus.real", f"[{tmp_path / 'none'}]", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tsdiff.pretrain: error:") and err.count("\n") == 1
    assert pretrain_main(["--training.max_steps", "zero"]) == 2
