"""Training beyond the core loop: a hook that logs val accuracy every epoch, batches of a
memory-mapped array's rows (cached tokens), the global batch under torchrun, generators seeded
by (seed, purpose), and a value computed once per split. Used by the linear probe, the decoder
family, prompt tuning, BALLAD, TACKLE and the ensembles."""
from ltbench.core.distributed import gather_batch
from ltbench.core.seeding import generator
from ltbench.engine.batches import ArrayRowBatches
from ltbench.engine.hooks import ValAccuracyLog
from ltbench.engine.memo import PerSplit

__all__ = ["ValAccuracyLog", "ArrayRowBatches", "gather_batch", "generator", "PerSplit"]
