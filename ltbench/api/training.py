"""Training beyond the core loop: a hook that logs val accuracy every epoch, batches of a
memory-mapped array's rows (cached tokens), the global batch under torchrun, and generators seeded
by (seed, purpose). Used by the linear probe, the decoder family and prompt tuning."""
from ltbench.core.distributed import gather_batch
from ltbench.core.seeding import generator
from ltbench.engine.batches import ArrayRowBatches
from ltbench.engine.hooks import ValAccuracyLog

__all__ = ["ValAccuracyLog", "ArrayRowBatches", "gather_batch", "generator"]
