"""Reading a finished stage's checkpoint that a user points a run at (phase_a.checkpoint, ...)."""
from pathlib import Path

import torch

from ltbench.core.errors import UserError, first_line_of


def read_stage_checkpoint(path, option: str, file_name: str, writer: str):
    """The checkpoint at `path`, loaded on the CPU without unpickling code; a missing or
    unreadable file is a one-line error that names the config option it came from."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise UserError(f"{option} not found: {path}; give the {file_name} that a {writer} run wrote "
                        "(its record lists it under artifacts)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"{option} {path}: not a readable PyTorch checkpoint ({first_line_of(error)})") from None
