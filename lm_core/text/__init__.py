"""Text on top of the solvers: prompt encoding and padding (:mod:`.prompts`), generation with
the masked model and DMax (:mod:`.generate`), likelihood and choice scoring (:mod:`.scoring`),
flow-LM generation and scoring (:mod:`.flow`), and LLaDA-format import (:mod:`.llada`).

Submodules are imported by name (``from lm_core.text.generate import generate``); this package
file imports nothing, so that importing one of them loads only what it needs.
"""
