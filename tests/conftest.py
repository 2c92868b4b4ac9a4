"""Shared test settings: the machine is shared and has 2 cores, so torch gets one thread."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_report_header(config) -> str:
    """Name the ATen CPU kernels in use: learning tests run under both AVX and scalar ones."""
    env = os.environ.get("ATEN_CPU_CAPABILITY", "unset")
    return (
        f"torch CPU kernels: {torch.backends.cpu.get_cpu_capability()} (ATEN_CPU_CAPABILITY={env})"
    )
