"""tsdiff.pretrained: the base on disk, the horizons it serves, and fits that start from it."""

import numpy as np
import pytest
import torch

from lm_core.checkpoint import CheckpointError
from tests.tsdiff.conftest import tiny_base
from tests.tsdiff.tiny import sine_frame
from tsdiff.data.frames import Columns, DataError, frame_to_series
from tsdiff.data.windows import collate, make_window, split_channels
from tsdiff.features import Calendar
from tsdiff.model import NumericDenoiser
from tsdiff.pretrained import (
    base_model,
    init_from_base,
    load_base,
    save_base,
    shape_settings,
)


def logits(model, batch):
    """Horizon logits of a batch with every cell masked: [B, H * C, n_bins]."""
    h = model.horizon(batch)
    tokens = torch.full(h.static.shape[:2], model.encoder.mask_id)
    return model.horizon_logits(tokens, h.static, h.kvs, h.positions)


def univariate_batch(H, L=32, calendar=None, cov=()):
    """One window of the sine frame's "y" (no calendar unless given, as the base)."""
    calendar = calendar or Calendar("h", ())
    cols = Columns(targets=["y"], future_covariates=list(cov))
    s = frame_to_series(sine_frame(), cols, "h", calendar=calendar)[0]
    return collate([make_window(s, 300, L, H, "h", calendar=calendar)])


def test_a_saved_base_loads_with_the_same_weights_and_digest(tmp_path):
    base = tiny_base()
    save_base(tmp_path / "b", base)
    back = load_base(tmp_path / "b")
    assert back.sha256 == base.sha256
    assert back.meta["name"] == "tiny-test-base" and back.max_horizon == 16
    b = univariate_batch(8)
    assert torch.equal(logits(back.model, b), logits(base.model, b))


def test_missing_or_corrupt_base_files_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no tsdiff base there"):
        load_base(tmp_path / "nowhere")
    save_base(tmp_path / "b", tiny_base())
    (tmp_path / "b" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="corrupt base weights") as e:
        load_base(tmp_path / "b")
    assert "\n" not in str(e.value)
    (tmp_path / "b" / "config.json").write_text('{"format": "other"}')
    with pytest.raises(CheckpointError, match="not a tsdiff base"):
        load_base(tmp_path / "b")


def test_one_base_serves_every_horizon_up_to_its_largest():
    """The weights do not depend on H: the copy for H = 5 forecasts 5 steps, and the first
    cells of a longer horizon's logits only differ by what the later masked cells add."""
    base = tiny_base()
    for H in (1, 5, 16):
        m = base_model(base, H)
        assert logits(m, univariate_batch(H)).shape == (1, H, 32)
    with pytest.raises(DataError, match="horizons of 1 to 16 steps"):
        base_model(base, 17)


def test_a_fit_model_with_more_inputs_starts_as_the_base():
    """init_from_base copies the base into a model with calendar and covariate inputs and a
    channel embedding; the new inputs start at zero, so its logits equal the base's whatever the
    covariates and calendar hold, and they are named as new."""
    base = tiny_base()
    cal = Calendar("h", ("hour", "dow"))
    cfg = base.config.__class__(
        **{**base.config.to_dict(), "n_time_features": cal.n_features,
           "time_features": list(cal.names), "n_future_covariates": 1,
           "static_cardinalities": [2]},
    )  # fmt: skip
    model = NumericDenoiser(cfg)
    new = init_from_base(model, base)
    assert {"patch_proj.0.weight", "step_proj.weight", "cat_emb.0.weight"} <= set(new)
    b = univariate_batch(8, calendar=cal, cov=["x"])
    b["static_cat"] = torch.ones(1, 1, dtype=torch.long)
    plain = univariate_batch(8)
    torch.testing.assert_close(logits(model.eval(), b), logits(base.model, plain))
    # and the new inputs matter once they are trained
    with torch.no_grad():
        model.step_proj.weight.normal_()
    assert not torch.allclose(logits(model, b), logits(base.model, plain))


def test_shape_settings_make_a_fit_channel_independent_with_the_bases_shape():
    s = shape_settings(tiny_base())
    assert s["channels"] == "independent" and s["context_length"] == 32 and s["patch_size"] == 8


def test_split_channels_windows_reach_the_univariate_base():
    """A multichannel window is forecast channel by channel by the univariate base."""
    s = frame_to_series(sine_frame(), Columns(targets=["y", "x"]), "h", calendar=Calendar("h", ()))
    w = split_channels([make_window(s[0], 300, 32, 8, "h", calendar=Calendar("h", ()))])
    out = logits(base_model(tiny_base(), 8), collate(w))
    assert out.shape == (2, 8, 32) and np.isfinite(out.detach().numpy()).all()
