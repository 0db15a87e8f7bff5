"""Reader side of the publication manifest (gold_contract.md), used until ``lakehouse.manifest`` lands.

Folder ``<warehouse_root>/gold/_manifest/``, one immutable ``v<version:010d>.json`` per publication; readers take the
highest version. Files whose name starts with ``.`` are in-flight temporaries and are ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings
from lakehouse.storage import Storage

_NAME = re.compile(r"^v(\d{10})\.json$")


@dataclass(frozen=True)
class TableRef:
    """One published table: where it is, at which Delta version, with how many rows."""

    location: str
    delta_version: int
    rows: int | None = None


@dataclass(frozen=True)
class Manifest:
    """One publication: the set of gold table versions that passed the gate together."""

    version: int
    published_at: str
    run_id: str
    run_date: str
    tables: dict[str, TableRef] = field(default_factory=dict)
    gates: dict = field(default_factory=dict)

    def table(self, name: str) -> TableRef:
        """The published reference of ``gold.<name>`` (KeyError when the publication lacks it)."""
        return self.tables[name]


def manifest_dir(settings: Settings) -> str:
    """The manifest folder of the warehouse."""
    return f"{str(settings.warehouse_root).rstrip('/')}/gold/_manifest"


def _parse(text: str, uri: str) -> Manifest:
    try:
        doc = json.loads(text)
        tables = {
            name: TableRef(str(t["location"]), int(t["delta_version"]), None if t.get("rows") is None else int(t["rows"]))
            for name, t in doc["tables"].items()
        }
        return Manifest(int(doc["version"]), str(doc["published_at"]), str(doc.get("run_id", "")),
                        str(doc.get("run_date", "")), tables, dict(doc.get("gates") or {}))
    except (ValueError, KeyError, TypeError) as exc:
        raise LakehouseError(f"publication manifest {uri} is not valid ({exc.__class__.__name__}: {exc})") from None


def latest_manifest(settings: Settings) -> Manifest | None:
    """The highest-version publication manifest, or None when nothing was published yet."""
    storage = Storage(settings)
    folder = manifest_dir(settings)
    best: tuple[int, str] | None = None
    for info in storage.list_files(folder):
        m = _NAME.match(info.name)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), info.uri)
    if best is None:
        return None
    return _parse(storage.read_bytes(best[1]).decode("utf-8"), best[1])
