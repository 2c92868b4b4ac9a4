"""Shared test settings: the machine is shared and has 2 cores, so torch gets one thread."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
