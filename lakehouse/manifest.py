"""The gold publication manifest: the set of gold table versions that passed the gate together.

Folder ``<warehouse_root>/gold/_manifest/``; one immutable JSON file per publication ``v<version:010d>.json``
(version = previous + 1, starting at 1). A publication is written atomically and never rewritten:

- local disk: the JSON goes to a temporary file whose name starts with ``.`` (readers skip it), then is hard-linked
  to its final name, which fails if that name exists (two publishers can never overwrite each other), and the
  temporary is removed;
- S3: one PUT of the final object, after checking the name is free (an S3 PUT is atomic: readers see all or none).

Readers list the folder and take the highest version, then open each table with
``deltalake.DeltaTable(location, version=delta_version, storage_options=settings.delta_storage_options() or None)``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Mapping

from lakehouse.errors import LakehouseError
from lakehouse.faults import crash_point
from lakehouse.settings import Settings
from lakehouse.storage import Storage

_NAME = re.compile(r"^v(\d{10})\.json$")


class ManifestError(LakehouseError):
    """A publication manifest is unreadable, or a new one could not be written."""


@dataclass(frozen=True)
class TableRef:
    """One published table: where it is, at which Delta version, with how many rows."""

    location: str
    delta_version: int
    rows: int | None = None

    def as_dict(self) -> dict:
        """The JSON form stored in a manifest."""
        return {"location": self.location, "delta_version": int(self.delta_version), "rows": self.rows}


@dataclass(frozen=True)
class Manifest:
    """One publication: the gold table versions that passed the gate together."""

    version: int
    published_at: str
    run_id: str
    run_date: str
    tables: dict[str, TableRef] = field(default_factory=dict)
    gates: dict = field(default_factory=dict)
    uri: str | None = None

    def table(self, name: str) -> TableRef:
        """The published reference of a table, by ``gold.<name>`` or bare ``<name>`` (KeyError if absent)."""
        if name in self.tables:
            return self.tables[name]
        qualified = name if "." in name else f"gold.{name}"
        if qualified in self.tables:
            return self.tables[qualified]
        raise KeyError(f"publication v{self.version} has no table {name} (it has: {', '.join(sorted(self.tables))})")

    def as_dict(self) -> dict:
        """The manifest file's JSON content."""
        return {
            "version": self.version,
            "published_at": self.published_at,
            "run_id": self.run_id,
            "run_date": self.run_date,
            "tables": {k: v.as_dict() for k, v in sorted(self.tables.items())},
            "gates": self.gates,
        }


def manifest_dir(settings: Settings) -> str:
    """The manifest folder of the warehouse."""
    return f"{str(settings.warehouse_root).rstrip('/')}/gold/_manifest"


def manifest_uri(settings: Settings, version: int) -> str:
    """Where publication ``version`` lives."""
    return f"{manifest_dir(settings)}/v{version:010d}.json"


def _parse(text: str, uri: str) -> Manifest:
    try:
        doc = json.loads(text)
        tables = {
            name: TableRef(str(t["location"]), int(t["delta_version"]), None if t.get("rows") is None else int(t["rows"]))
            for name, t in doc["tables"].items()
        }
        return Manifest(
            int(doc["version"]), str(doc["published_at"]), str(doc.get("run_id", "")), str(doc.get("run_date", "")),
            tables, dict(doc.get("gates") or {}), uri,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"publication manifest {uri} is not valid ({exc.__class__.__name__}: {exc})") from None


def list_versions(settings: Settings) -> list[int]:
    """Every published version, ascending (in-flight temporaries excluded)."""
    out = []
    for info in Storage(settings).list_files(manifest_dir(settings)):
        m = _NAME.match(info.name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def read_manifest(settings: Settings, version: int) -> Manifest:
    """One publication by version."""
    uri = manifest_uri(settings, version)
    storage = Storage(settings)
    if not storage.exists(uri):
        raise ManifestError(f"publication v{version} does not exist ({uri})")
    return _parse(storage.read_bytes(uri).decode("utf-8"), uri)


def latest_manifest(settings: Settings) -> Manifest | None:
    """The highest-version publication, or None when nothing was published yet."""
    versions = list_versions(settings)
    return read_manifest(settings, versions[-1]) if versions else None


def _write_once(settings: Settings, uri: str, data: bytes) -> bool:
    """Write ``data`` to ``uri`` only if it does not exist yet; False when the name was taken."""
    storage = Storage(settings)
    if uri.startswith("s3://"):
        if storage.exists(uri):
            return False
        storage.write_bytes(uri, data)
        return True
    folder, name = uri.rsplit("/", 1)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    crash_point("manifest.temp_written")
    try:
        os.link(tmp, uri)  # atomic, and refuses to replace an existing publication
        crash_point("manifest.linked")
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def write_manifest(
    settings: Settings,
    tables: Mapping[str, TableRef | Mapping],
    run_id: str,
    run_date: dt.date | str,
    gates: Mapping | None = None,
) -> Manifest:
    """Publish a new manifest (previous version + 1) recording ``tables``; never rewrites an existing one."""
    if not tables:
        raise ManifestError("refusing to publish a manifest with no tables")
    refs: dict[str, TableRef] = {}
    for name, ref in tables.items():
        qualified = name if "." in name else f"gold.{name}"
        if not isinstance(ref, TableRef):
            ref = TableRef(str(ref["location"]), int(ref["delta_version"]), None if ref.get("rows") is None else int(ref["rows"]))
        if ref.delta_version is None or int(ref.delta_version) < 0:
            raise ManifestError(f"table {qualified}: a published Delta version must be >= 0, got {ref.delta_version}")
        refs[qualified] = ref
    day = run_date.isoformat() if isinstance(run_date, dt.date) else str(run_date)
    for _attempt in range(20):
        versions = list_versions(settings)
        version = (versions[-1] if versions else 0) + 1
        manifest = Manifest(
            version=version,
            published_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            run_id=run_id,
            run_date=day,
            tables=refs,
            gates=dict(gates or {}),
            uri=manifest_uri(settings, version),
        )
        data = json.dumps(manifest.as_dict(), indent=2, sort_keys=False, default=str).encode("utf-8")
        if _write_once(settings, manifest.uri, data):
            return manifest
    raise ManifestError(f"could not claim a new manifest version in {manifest_dir(settings)} after 20 attempts")
