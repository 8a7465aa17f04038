"""Methods built on other runs' logits: a logits source (a finished run's saved logits, or a
registered method computed in this run), another method's config for this run, and weighted
ensembles with weights chosen on val. Used by clip_ensemble, the post-hoc methods and TACKLE."""
from ltbench.config import related_method_config
from ltbench.engine.ensembles import ensemble_for
from ltbench.engine.sources import LogitsSource, is_saved_run, logits_source, source_backbone_label

__all__ = ["LogitsSource", "logits_source", "is_saved_run", "source_backbone_label", "related_method_config",
           "ensemble_for"]
