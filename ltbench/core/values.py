"""Type tests of config values: YAML's true / false load as bool, which Python counts as an int,
so `epochs: yes` must not pass as 1."""


def is_real(value) -> bool:
    """An int or float, not a bool (finiteness is the caller's to ask)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_whole(value) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)
