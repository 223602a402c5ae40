"""Run-directory flags shared by the commands that hand the rest of argv to tyro (BC, ResiP, EXPO, V-GPS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def split_run_flags(argv: list[str], spec: dict[str, Callable[[str], Any]]) -> tuple[list[str], dict[str, Any]]:
    """Take the flags named in ``spec`` (``--flag V`` or ``--flag=V``, converted by ``spec[flag]``) out of ``argv``.

    Returns the remaining arguments and ``{"flag_name": value}`` (dashes to underscores, leading ``--`` dropped).
    """
    rest, flags = [], {}
    it = iter(argv)
    for arg in it:
        key, eq, value = arg.partition("=")
        if key in spec:
            value = value if eq else next(it, None)
            if value is None:
                raise ValueError(f"{key} needs a value")
            flags[key[2:].replace("-", "_")] = spec[key](value)
        else:
            rest.append(arg)
    return rest, flags
