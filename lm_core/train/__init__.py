"""Training: the one path :func:`lm_core.train.run.run` (config from
:func:`lm_core.train.config.parse`) that ``lm-core fit``, the demo and the benchmarks call.

- :mod:`.module`: :class:`DiffusionLM`, the thin LightningModule (the loss comes from the
  objective registry, :data:`lm_core.objectives.LOSSES`); :mod:`.flow`: :class:`FlowLM`;
- :mod:`.callbacks`: checkpoint export, the log line, the exactly resumable loader;
- :mod:`.config`: :class:`TrainerConfig` and the YAML / argv parser; :mod:`.setup`: shared
  set-up steps; :mod:`.run`: :func:`build_trainer`, :func:`fit_resumable`, :func:`run`;
- :mod:`.codec`: the flow codec's stage before its Lightning training.

Submodules are imported by name; this package file imports nothing.
"""
