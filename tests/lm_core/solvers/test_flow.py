"""Flow solvers (lm_core.solvers.flow) with an oracle x-predictor whose answer is known."""

from __future__ import annotations

import pytest
import torch

from lm_core.solvers.flow import EulerODE, ReNoiseSDE, flow_sample


@pytest.mark.parametrize("sampler", [EulerODE(), ReNoiseSDE(0.0), ReNoiseSDE(0.5), ReNoiseSDE(1.0)])
def test_sampler_with_oracle_reaches_target(sampler):
    target = torch.randn(2, 6, 4)
    seen = []

    def oracle(z, t, x_sc):
        seen.append(float(t[0]))
        return target

    given = torch.zeros(2, 6, dtype=torch.bool)
    given[:, :2] = True
    x0, nfe = flow_sample(
        oracle, (2, 6, 4), steps=5, sampler=sampler, given=given, x_given=target,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert nfe == 5 and seen == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    torch.testing.assert_close(x0, target, atol=1e-5, rtol=0)


def test_euler_oracle_stays_on_the_path():
    """With an exact x-predictor each Euler step lands on (1 - t') x + t' eps for the same eps."""
    x, eps = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    z = eps.clone()
    for t, tn in [(1.0, 0.75), (0.75, 0.3), (0.3, 0.0)]:
        z = EulerODE().step(z, x, t, tn)
        torch.testing.assert_close(z, (1 - tn) * x + tn * eps)
    torch.testing.assert_close(
        ReNoiseSDE(0.0).step(eps, x, 1.0, 0.6), EulerODE().step(eps, x, 1.0, 0.6)
    )
