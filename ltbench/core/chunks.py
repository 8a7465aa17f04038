"""Row chunks for passes over large [N, C] arrays (logits, probabilities).

iNaturalist's test logits are 24,426 x 8142: 0.8 GB in float32, 1.6 GB as one float64 or int64
temporary of the same shape. A row-wise pass (softmax, top-k, an adjustment in float64) over
chunks of rows holds one chunk's temporaries instead, so its memory does not grow with N x C
beyond the array itself.
"""
from typing import List

CHUNK_ELEMENTS = 2_000_000  # numbers a chunk holds: 16 MB of float64


def row_chunks(num_rows: int, num_columns: int, elements: int = None) -> List[slice]:
    """Slices covering rows 0..num_rows-1 in order, each of about `elements` numbers (at least one row)."""
    rows = max(1, (elements or CHUNK_ELEMENTS) // max(1, num_columns))
    return [slice(start, min(num_rows, start + rows)) for start in range(0, num_rows, rows)]
