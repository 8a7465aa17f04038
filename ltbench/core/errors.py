"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""
import difflib
from typing import Iterable


class UserError(Exception):
    """A mistake in the user's input (names, paths, files, options). Printed as one line."""

    exit_code = 2


def close_matches_hint(name: str, choices: Iterable[str], limit: int = 3) -> str:
    """' (did you mean: a, b?)' for the closest names, or a short list of what exists."""
    choices = sorted(set(choices))
    matches = difflib.get_close_matches(name, choices, n=limit, cutoff=0.5)
    if not matches:
        # Substring matches help for long names such as open_clip model tags.
        matches = [c for c in choices if name.lower() in c.lower()][:limit]
    if matches:
        return f" (did you mean: {', '.join(matches)}?)"
    preview = ", ".join(choices[:8]) + (", ..." if len(choices) > 8 else "")
    return f" (choose from: {preview})"


def unknown_name(kind: str, name: str, choices: Iterable[str], listing: str = "") -> UserError:
    """The UserError for a name that is not among `choices` ("unknown loss 'foo' (did you mean: ...)"),
    to raise; `listing` names the ``ltbench list`` command that shows them all."""
    hint = close_matches_hint(name, choices)
    tail = f"; see `ltbench list {listing}`" if listing else ""
    return UserError(f"unknown {kind} '{name}'{hint}{tail}")


def first_line_of(error: Exception) -> str:
    """The first sentence of an error; hub errors run to several lines of advice."""
    return (str(error).splitlines() or [type(error).__name__])[0].split(". ")[0][:160]
