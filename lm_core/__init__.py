"""lm_core: masked (and flow) diffusion language models on one bidirectional block denoiser.

Time convention, used everywhere in this project (see :mod:`lm_core.corruption`):
``t = 0`` is clean data, ``t = 1`` is fully masked / pure noise.

Layout, by role (data flows one way: commands -> train / text -> objectives / solvers -> models):

- ``nn/`` the Transformer denoiser; ``flow/`` the flow model (codec, denoiser network, checkpoint);
  ``config.py``, ``corruption.py``, ``schedule.py``, ``checkpoint.py``;
- ``data/`` tokenizers, corpora, packing, data modules, and SFT formatting (``data/sft.py``:
  the SFT data module needs it, and ``data`` sits below ``text``);
- ``objectives/`` one module per loss, and the registry ``LOSSES`` {objective kind: loss fn};
- ``solvers/`` the sampler loop and commit policies, DMax's soft decoding, the flow ODE/SDE
  solvers; a solver sees only a callable model and its extra inputs;
- ``text/`` prompts and padding, generate (masked and DMax), scoring, flow generate / score,
  LLaDA import;
- ``train/`` LightningModules, callbacks, the run configuration and its parser, and
  :func:`lm_core.train.run.run`, the one training path (the flow codec's short stage runs
  before it, :mod:`lm_core.train.codec`);
- ``commands/`` argument parsing for ``lm-core`` (:mod:`lm_core.cli`); nothing imports them.
"""

from lm_core.config import ModelConfig
from lm_core.nn.transformer import Transformer

__all__ = ["ModelConfig", "Transformer"]
__version__ = "0.1.0"
