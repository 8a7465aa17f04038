"""Checks of where `ltbench plot` / `ltbench report` write and of their numeric options, made
before any work so that a bad flag fails in one line instead of after the figures are drawn."""
from pathlib import Path

from ltbench.core.atomic import probe_writable
from ltbench.core.errors import UserError


def check_positive(flag: str, value: int) -> None:
    if value < 1:
        raise UserError(f"{flag} {value}: give a whole number >= 1")


def writable_folder(path, flag: str = "--out") -> Path:
    """The folder, created if needed; a UserError naming the flag when it cannot be written."""
    path = Path(path).expanduser()
    try:
        probe_writable(path)
    except OSError as error:
        raise UserError(f"{flag} {path}: cannot write there ({error.strerror or error}); "
                        "pass a folder you can write to") from None
    return path
