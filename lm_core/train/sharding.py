"""Sharded training: FSDP2 with one unit per Transformer block.

``trainer.strategy: fsdp`` runs Lightning's :class:`ModelParallelStrategy` (PyTorch's FSDP2,
``fully_shard``) with every rank in one data-parallel group. :class:`DiffusionLM` builds its
Transformer on the meta device (no memory) and, in ``configure_model``, :func:`shard` makes each
:class:`~lm_core.nn.transformer.Block` an FSDP unit and the root (embedding, final norm) the last
one, then :func:`materialise` gives each rank memory for its shards only and fills them, one
parameter at a time, with the slice of the weights a single process builds from the same seed.

- Mixed precision: with ``trainer.precision: bf16-mixed`` the units gather their parameters in
  bfloat16 and reduce gradients in float32 (FSDP's policy; Lightning itself then runs at
  32-true, the fp32 master shards live in the optimizer); norms and RoPE still compute in fp32.
- Activation checkpointing per block (``trainer.activation_checkpointing``): only each block's
  input is kept for backward, the block is recomputed.
- Exports (``latest/``, ``best/``, ``final/``): :func:`full_state_dict` gathers the full
  weights collectively (every rank calls it) to rank 0's CPU memory, and rank 0 writes them.
- ``init_from``: rank 0 alone reads the weights; :func:`load_full_state_dict` broadcasts them
  into every rank's shards (the other ranks never hold a full copy).
- EMA under FSDP is refused with one line (its shadow would average shards that no export
  gathers); so are the flow objective and bf16 FSDP on CPU.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    set_model_state_dict,
)
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import distribute_tensor

from lm_core.config import ConfigError
from lm_core.nn.transformer import Block, Transformer


@dataclass(frozen=True)
class ScaleOptions:
    """How :class:`~lm_core.train.module.DiffusionLM` builds and runs its Transformer."""

    fsdp: bool = False
    """Build on the meta device; shard and materialise in ``configure_model`` (FSDP2)."""
    bf16: bool = False
    """FSDP mixed precision: bf16 parameters in compute, fp32 gradient reduction."""
    activation_checkpointing: bool = False
    """Recompute each block in backward (only block inputs are stored)."""
    compile: bool = False
    """``torch.compile`` each block (in place, so names and the state dict are unchanged)."""
    init_from: str | None = None
    """Under fsdp: weights rank 0 reads in ``configure_model`` and broadcasts to the shards."""


FSDP_NAMES = ("fsdp", "fsdp2")
"""``trainer.strategy`` values that select the sharded path."""


def is_fsdp(strategy) -> bool:
    """Whether ``trainer.strategy`` (a name or a Lightning strategy) is the sharded path."""
    if isinstance(strategy, str):
        return strategy.lower() in FSDP_NAMES
    return isinstance(strategy, ModelParallelStrategy)


def check_fsdp(cfg, accelerator_is_cuda: bool) -> None:
    """One-line ConfigError for what the sharded path does not do."""
    if cfg.objective.kind == "flow":
        raise ConfigError("trainer.strategy: fsdp trains Transformer objectives, not flow")
    if cfg.optim.ema_decay > 0:
        raise ConfigError(
            "optim.ema_decay: EMA is not supported with trainer.strategy fsdp (it would average "
            "parameter shards); set optim.ema_decay 0"
        )
    if cfg.trainer.precision in ("bf16-mixed", "bf16") and not accelerator_is_cuda:
        raise ConfigError(
            "trainer.precision: bf16-mixed under trainer.strategy fsdp needs CUDA GPUs; on CPU "
            "use 32-true"
        )
    if cfg.trainer.precision not in ("auto", "32-true", "32", "bf16-mixed", "bf16"):
        raise ConfigError(
            f"trainer.precision: expected 32-true or bf16-mixed under trainer.strategy fsdp, "
            f"got {cfg.trainer.precision!r}"
        )


class FSDPStrategy(ModelParallelStrategy):
    """Lightning's FSDP2 strategy with every rank (all nodes) in one data-parallel group and
    ``last.ckpt`` one full file (gathered on rank 0)."""

    def __init__(self) -> None:
        super().__init__(tensor_parallel_size=1, save_distributed_checkpoint=False)

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()


def fsdp_strategy() -> FSDPStrategy:
    """The strategy ``trainer.strategy: fsdp`` runs."""
    return FSDPStrategy()


def launch_rank() -> int:
    """This process's global rank as the launcher set it (RANK, SLURM_PROCID, or Lightning's
    LOCAL_RANK + NODE_RANK layout gives 0 on each node's first process), before any process
    group exists; 0 for the process that starts the run."""
    for name in ("RANK", "SLURM_PROCID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    local = os.environ.get("LOCAL_RANK", "0")
    return int(local) if local.isdigit() else 0


def fsdp_units(net: Transformer) -> list[nn.Module]:
    """The modules :func:`shard` makes FSDP units, in order: every Block, then the root."""
    return [m for m in net.modules() if isinstance(m, Block)] + [net]


def shard(net: Transformer, mesh, *, bf16: bool) -> None:
    """``fully_shard`` each Block, then the root (in place). ``mesh``: a 1-D device mesh."""
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    kw = {"mesh": mesh, "mp_policy": policy} if bf16 else {"mesh": mesh}
    # a Block returns (x, (k, v)): k and v are views, which FSDP2 warns about; nothing modifies
    # them in place
    warnings.filterwarnings("ignore", message=".*returned a view tensor.*")
    for unit in fsdp_units(net):
        fully_shard(unit, **kw)


@torch.no_grad()
def materialise(net: Transformer, device, seed: int) -> None:
    """Memory for each rank's shards on ``device``, filled with the slice of the weights a
    single-process ``Transformer`` build on the CPU draws after ``torch.manual_seed(seed)`` (one
    full parameter at a time is generated on the CPU, never the whole model); RoPE buffers
    rebuilt."""
    net.to_empty(device=device)
    params = dict(net.named_parameters())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net.skip_constructor_draws()
        for name, value in net.initial_values(device="cpu"):  # the CPU stream, as a direct build
            copy_full_into(params[name], value.to(_local(params[name]).device))
    net.reset_buffers()


def _local(param: torch.Tensor) -> torch.Tensor:
    return param.to_local() if hasattr(param, "to_local") else param


def copy_full_into(param: torch.Tensor, value: torch.Tensor) -> None:
    """Copy a full-size ``value`` into ``param``: all of it, or a sharded DTensor's local slice."""
    if hasattr(param, "device_mesh"):
        local = distribute_tensor(value, param.device_mesh, param.placements, src_data_rank=None)
        param.to_local().copy_(local.to_local())
    else:
        param.copy_(value)


def full_state_dict(net: nn.Module) -> dict:
    """The full (unsharded) state dict on rank 0's CPU, {} on the others. Collective: every rank
    must call it."""
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(net, options=opts)


def load_full_state_dict(net: nn.Module, state: dict) -> None:
    """Load a full state dict that rank 0 holds (``state``; {} on the other ranks) into every
    rank's shards by broadcast. Collective."""
    opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
    set_model_state_dict(net, state, options=opts)


def data_parallel_mesh(module):
    """The 1-D data-parallel mesh of Lightning's ModelParallelStrategy (``configure_model``)."""
    mesh = module.device_mesh
    return mesh["data_parallel"] if "data_parallel" in (mesh.mesh_dim_names or ()) else mesh
