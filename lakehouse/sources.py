"""Sources: the built-in generator sources (named after their kind) plus sources added by mapping files."""

from __future__ import annotations

from lakehouse.entities import KINDS
from lakehouse.settings import Settings


def builtin_sources() -> dict[str, str]:
    """Source name -> kind for the systems the generator simulates."""
    return {kind: kind for kind in KINDS}


def all_sources(settings: Settings) -> dict[str, str]:
    """Built-in sources plus every source declared by a mapping file (name -> kind)."""
    from lakehouse.mappings import load_mappings

    out = builtin_sources()
    for name, mapping in load_mappings(settings).items():
        out[name] = mapping.kind
    return out
