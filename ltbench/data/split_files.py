"""Reading split files (``relative/path label`` per line) with errors that name file and line."""
import hashlib
from pathlib import Path
from typing import List, Tuple

import numpy as np

from ltbench.core.errors import UserError


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_split_file(path: Path, num_classes: int = None,
                    allow_duplicates: bool = False) -> Tuple[List[str], np.ndarray, str]:
    """(relative paths, labels, sha256 of the file). Blank lines are skipped; a UTF-8 byte order
    mark at the start is not part of the first path. An image listed twice is an error naming both
    lines, unless ``allow_duplicates`` (dataset.allow_duplicates=true): then it counts twice."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"split file not found: {path}")
    raw = path.read_bytes()
    paths, labels, first_line, duplicates = [], [], {}, []
    for line_number, line in enumerate(raw.decode("utf-8-sig", errors="replace").splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        # Paths may contain spaces: the label is the last field.
        relative, _, label = stripped.rpartition(" ")
        if not relative or not label.lstrip("-").isdigit():
            raise UserError(
                f"{path}:{line_number}: expected '<relative/path> <integer label>', got '{stripped[:80]}'"
            )
        value = int(label)
        if num_classes is not None and not 0 <= value < num_classes:
            raise UserError(
                f"{path}:{line_number}: label {value} is outside 0..{num_classes - 1} "
                f"({num_classes} classes); check that the split file and class names belong together"
            )
        relative = relative.strip()
        if not allow_duplicates:
            if relative in first_line:
                duplicates.append((line_number, first_line[relative], relative))
            else:
                first_line[relative] = line_number
        paths.append(relative)
        labels.append(value)
    if duplicates:
        raise duplicate_lines_error(path, duplicates)
    if not paths:
        raise UserError(f"{path}: the split file lists no images")
    return paths, np.asarray(labels, dtype=np.int64), hashlib.sha256(raw).hexdigest()


SHOWN_DUPLICATES = 5  # a split file with thousands of repeats still gives a one-line error


def duplicate_lines_error(path: Path, duplicates: List[Tuple[int, int, str]]) -> UserError:
    """One line naming every repeated line (line, first line, image), the first SHOWN_DUPLICATES
    of them and how many more, so they can all be fixed in one go."""
    fix = "remove the duplicate lines, or set dataset.allow_duplicates=true to count them twice"
    line, first, relative = duplicates[0]
    if len(duplicates) == 1:
        return UserError(f"{path}:{line}: {relative} is listed again (first at line {first}); "
                         "remove the duplicate line, or set dataset.allow_duplicates=true to count it twice")
    shown = "; ".join(f"line {line} repeats line {first} ({relative})" for line, first, relative
                      in duplicates[:SHOWN_DUPLICATES])
    more = len(duplicates) - SHOWN_DUPLICATES
    shown += f"; ... and {more} more" if more > 0 else ""
    return UserError(f"{path}:{line}: {len(duplicates)} lines repeat an image listed earlier: {shown}; {fix}")
