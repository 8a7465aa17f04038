"""Calibration and decoupled training: second stages on a frozen first-stage head (cRT, LWS, MARC,
DisAlign), tau-normalisation, choices made on val, a run's linear head saved for post-hoc methods,
and logits adjusted a chunk of rows at a time. Used by the decoder family's stage 2 and the
post-hoc methods."""
from ltbench.core.chunks import row_chunks
from ltbench.engine.head_artifacts import save_linear_head
from ltbench.engine.selection import choose_on_val
from ltbench.models.calibration import (
    DISALIGN_FORMS,
    STAGE2_TYPES,
    build_second_stage,
    select_on_grid,
    select_tau,
    tau_normalised,
    tau_normalised_logits,
)
from ltbench.models.fingerprint import state_dict_sha256

__all__ = ["STAGE2_TYPES", "DISALIGN_FORMS", "build_second_stage", "select_tau", "select_on_grid", "tau_normalised",
           "tau_normalised_logits", "choose_on_val", "save_linear_head", "state_dict_sha256", "row_chunks"]
