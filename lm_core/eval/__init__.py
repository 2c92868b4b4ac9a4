"""Standard evaluation of lm_core checkpoints with the lm-evaluation-harness.

- :mod:`lm_core.eval.requests`: :class:`~lm_core.eval.requests.CheckpointScorer`, what a
  checkpoint answers to the harness's three request kinds (loglikelihood through the
  Monte-Carlo ELBO of :mod:`lm_core.text.scoring`, rolling loglikelihood, generation until a
  stop string through :func:`lm_core.text.generate.generate`). Plain Python: no lm-eval import.
- :mod:`lm_core.eval.harness`: the registered lm-eval model type ``lm_core`` on that scorer,
  the check that a task is one the adapter can serve, and :func:`~lm_core.eval.harness.run_eval`
  (what ``lm-core eval`` calls). Needs the ``eval`` extra (``lm-eval``).
"""
