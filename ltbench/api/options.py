"""The shared option sections a method declares its options with, besides the core's ``TRAINING``
(docs/configuration.md), and the wording of its one-line errors.

A method class declares ``options = {"key": Option(...), "section": Section({...})}``; its options
add to those of its bases (``Method`` declares the common ones). Shared here: ``AUGMENT``
(training augmentation), ``LOSS`` (a registered loss), ``ENSEMBLE`` (the
ensembles' weights), ``PHASE_A_OPTIONS`` (BALLAD's CLIP fine-tuning phase)."""
from ltbench.core.errors import first_line_of
from ltbench.engine.finetune import PHASE_A_OPTIONS
from ltbench.engine.options import AUGMENT, ENSEMBLE, LOSS

__all__ = ["AUGMENT", "LOSS", "ENSEMBLE", "PHASE_A_OPTIONS", "first_line_of"]
