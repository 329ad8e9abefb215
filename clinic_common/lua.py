"""Lua scripts live in `.lua` files beside the store that runs them, read once when it is imported.

`source("schedule_svc", "places_helpers", "places_reserve")` is the text of
`schedule_svc/places_helpers.lua` then `schedule_svc/places_reserve.lua`, joined into one script
(shared functions first) for `redis_io.batched_script`, which registers it with redis-py as before.
The files are package data (pyproject.toml), so an installed wheel or the image carries them.
"""

from __future__ import annotations

from importlib import resources


def source(package: str, *names: str) -> str:
    """The script made of `<package>/<name>.lua` for each name, in order."""
    files = resources.files(package)
    return "".join(files.joinpath(f"{name}.lua").read_text(encoding="utf-8") for name in names)
