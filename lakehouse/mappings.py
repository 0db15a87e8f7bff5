"""Source mappings: declarative YAML files that map an external system's export onto the canonical entities.

A mapping adds a *source* (e.g. ``olist``) of an existing *kind* (e.g. ``online``). Landing holds the export files
unchanged under ``landing/<mapping name>/<entity>/ingest_date=D/`` (``lakehouse land`` copies them there); bronze
applies the mapping when it reads them: export columns are renamed to canonical names, constants are added and
unmapped export columns are kept. Formats and value maps are carried for silver, which parses the values.

Mapping files live in the repository's ``mappings/`` folder and, optionally, in ``LAKEHOUSE_MAPPINGS_DIR``.
The file format is validated strictly (unknown keys, entities or canonical columns are errors naming the file and
the key)::

    name: olist                 # the source name: snake_case, not a built-in source (online, pos, ...)
    kind: online                # online | pos | clickstream | inventory
    description: ...
    entities:
      order_lines:              # a canonical entity of that kind
        files: [olist_order_items_dataset.csv]   # glob patterns of export file names
        columns:                # canonical column: export column, or a template over export columns
          order_id: order_id
          line_number: order_item_id
          payment_id: "{order_id}-{payment_sequential}"   # template; {_line_number} = record number in the file
        constants: {quantity: "1"}        # canonical column: constant value
        formats: {order_ts: "%Y-%m-%d %H:%M:%S"}     # strptime formats, for silver
        values: {status: {canceled: cancelled}}       # export value -> canonical value, for silver
        csv: {delimiter: ",", encoding: utf-8}        # reader options: delimiter, quote_char, escape_char, encoding
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lakehouse.entities import ENTITIES, KINDS, EntitySchema, entity as lookup_entity
from lakehouse.errors import LakehouseError, MappingError
from lakehouse.settings import Settings

REPO_MAPPINGS_DIR = Path(__file__).resolve().parents[1] / "mappings"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_COPY_CHUNK = 8 << 20


@dataclass(frozen=True)
class EntityMapping:
    """How one canonical entity is read from an export."""

    entity: str  # canonical entity of the mapping's kind, e.g. "customers"
    files: tuple[str, ...]  # glob patterns of export file names, e.g. ("olist_customers_dataset.csv",)
    columns: dict[str, str]  # canonical column -> export column (or a "{a}-{b}" template)
    constants: dict[str, str]  # canonical column -> constant value
    formats: dict[str, str]  # canonical column -> strptime-style format, for silver parsing
    csv: dict[str, str]  # reader options: delimiter, quote_char, escape_char, encoding
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # canonical column -> {export value: canonical}

    def matches(self, file_name: str) -> bool:
        """True when an export file name matches one of this entity's patterns."""
        return any(fnmatch.fnmatchcase(file_name, p) for p in self.files)


@dataclass(frozen=True)
class SourceMapping:
    """A mapped source: its name, kind and per-entity mappings."""

    name: str
    kind: str
    description: str
    entities: tuple[EntityMapping, ...]
    path: str = ""  # the YAML file it came from

    def entity(self, name: str) -> EntityMapping:
        """The mapping of one entity (KeyError when the mapping does not cover it)."""
        for e in self.entities:
            if e.entity == name:
                return e
        raise KeyError(name)

    @property
    def entity_names(self) -> tuple[str, ...]:
        return tuple(e.entity for e in self.entities)


# -- file schema (pydantic, unknown keys rejected) --------------------------------------------------------------
class _CsvOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote_char: str = Field(default='"', min_length=1, max_length=1)
    escape_char: str | None = Field(default=None, min_length=1, max_length=1)
    encoding: str | None = None


class _EntityModel(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    description: str = ""
    files: list[str] = Field(min_length=1)
    columns: dict[str, str] = Field(default_factory=dict)
    constants: dict[str, str] = Field(default_factory=dict)
    formats: dict[str, str] = Field(default_factory=dict)
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    csv: _CsvOptions = Field(default_factory=_CsvOptions)


class _MappingModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["online", "pos", "clickstream", "inventory"]
    description: str = ""
    entities: dict[str, _EntityModel] = Field(min_length=1)


def _fail(path: Path | str, key: str, message: str) -> MappingError:
    return MappingError(f"mapping file {path}: {key}: {message}")


def _template_refs(path: Path, key: str, spec: str) -> list[str]:
    import string

    if "{" not in spec and "}" not in spec:
        return [spec]
    try:
        refs = [name for _, name, _, _ in string.Formatter().parse(spec) if name is not None]
    except ValueError as exc:
        raise _fail(path, key, f"bad template {spec!r} ({exc})") from None
    if any(not r for r in refs):
        raise _fail(path, key, f"bad template {spec!r}: every {{}} needs an export column name")
    return refs


def _check_columns(path: Path, prefix: str, spec: EntitySchema, names: dict[str, Any]) -> None:
    known = set(spec.columns)
    for col in names:
        if col not in known:
            raise _fail(
                path, f"{prefix}.{col}",
                f"unknown canonical column `{col}` of {spec.qualified} (known: {', '.join(spec.columns)})",
            )


def _build(path: Path, model: _MappingModel) -> SourceMapping:
    if not _NAME.match(model.name):
        raise _fail(path, "name", f"{model.name!r} must be snake_case (letters, digits, _; starting with a letter)")
    if model.name in KINDS:
        raise _fail(path, "name", f"{model.name!r} is a built-in source; choose another name")
    entities = []
    for ename, em in model.entities.items():
        key = f"entities.{ename}"
        try:
            spec = lookup_entity(model.kind, ename)
        except KeyError:
            known = ", ".join(e.entity for e in ENTITIES if e.kind == model.kind)
            raise _fail(path, key, f"unknown entity {ename!r} of kind {model.kind} (known: {known})") from None
        for section in ("columns", "constants", "formats", "values"):
            _check_columns(path, f"{key}.{section}", spec, getattr(em, section))
        for col in em.columns:
            if col in em.constants:
                raise _fail(path, f"{key}.constants.{col}", "is also mapped in columns; give one or the other")
            _template_refs(path, f"{key}.columns.{col}", em.columns[col])
        if em.csv.encoding:
            import codecs

            try:
                codecs.lookup(em.csv.encoding)
            except LookupError:
                raise _fail(path, f"{key}.csv.encoding", f"unknown encoding {em.csv.encoding!r}") from None
        csv_opts = {k: v for k, v in em.csv.model_dump().items() if v is not None}
        entities.append(
            EntityMapping(
                entity=ename,
                files=tuple(em.files),
                columns=dict(em.columns),
                constants=dict(em.constants),
                formats=dict(em.formats),
                csv=csv_opts,
                values={k: dict(v) for k, v in em.values.items()},
            )
        )
    return SourceMapping(model.name, model.kind, model.description.strip(), tuple(entities), str(path))


def load_mapping(path: str | Path) -> SourceMapping:
    """Read and validate one mapping file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"mapping file {path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping file {path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise MappingError(f"mapping file {path}: expected a mapping with name, kind and entities")
    try:
        model = _MappingModel.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{key}: {msg}")
        raise MappingError(f"mapping file {path}: " + "; ".join(problems)) from None
    return _build(path, model)


def mapping_dirs(settings: Settings) -> list[Path]:
    """Folders searched for mapping files: the repo's ``mappings/`` and ``settings.mappings_dir`` when set."""
    dirs = [REPO_MAPPINGS_DIR]
    extra = getattr(settings, "mappings_dir", None)
    if extra:
        dirs.append(Path(extra).expanduser().resolve())
    return dirs


def load_mappings(settings: Settings) -> dict[str, SourceMapping]:
    """Every mapping file (``*.yaml``/``*.yml``) of the mapping folders, by source name."""
    out: dict[str, SourceMapping] = {}
    for folder in mapping_dirs(settings):
        if not folder.is_dir():
            if folder != REPO_MAPPINGS_DIR:
                raise MappingError(f"mappings folder {folder} (LAKEHOUSE_MAPPINGS_DIR) does not exist")
            continue
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            mapping = load_mapping(path)
            if mapping.name in out:
                raise MappingError(
                    f"mapping file {path}: name: source {mapping.name!r} is already defined by {out[mapping.name].path}"
                )
            out[mapping.name] = mapping
    return out


def resolve_mapping(settings: Settings, name_or_file: str) -> SourceMapping:
    """A mapping by source name, or from a YAML file path."""
    candidate = Path(name_or_file).expanduser()
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise MappingError(f"mapping file {candidate} does not exist")
        return load_mapping(candidate)
    mappings = load_mappings(settings)
    if name_or_file not in mappings:
        known = ", ".join(sorted(mappings)) or "none"
        raise MappingError(f"unknown mapping {name_or_file!r} (known: {known}); give a name or a .yaml file")
    return mappings[name_or_file]


# -- landing an export ------------------------------------------------------------------------------------------
@dataclass
class LandResult:
    """What ``land_export`` did: files copied, files already landed unchanged, export files no entity matched."""

    mapping: str
    day: str
    copied: list[tuple[str, str, str]] = field(default_factory=list)  # (entity, source file, landing file)
    unchanged: list[tuple[str, str, str]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


def _same_content(storage, a: str, b: str) -> bool:
    ha, hb = hashlib.sha256(), hashlib.sha256()
    for uri, h in ((a, ha), (b, hb)):
        with storage.open_input(uri) as f:
            while chunk := f.read(_COPY_CHUNK):
                h.update(chunk)
    return ha.digest() == hb.digest()


def land_export(settings: Settings, mapping: SourceMapping, input_dir: str, day) -> LandResult:
    """Copy the export files of ``input_dir`` that the mapping matches, unchanged, into each entity's landing folder.

    A file matched by several entities is copied into each. A file already landed with the same content is left
    alone (so landing twice does not make bronze load it again).
    """
    from lakehouse.storage import Storage, parse_date

    day = parse_date(day)
    storage = Storage(settings)
    source_dir = input_dir if input_dir.startswith("s3://") else str(Path(input_dir).expanduser().resolve())
    if not storage.is_dir(source_dir):
        raise LakehouseError(f"export folder {source_dir} does not exist (give --input the folder holding the export files)")
    files = storage.list_files(source_dir)
    result = LandResult(mapping.name, day.isoformat())
    for info in files:
        targets = [e for e in mapping.entities if e.matches(info.name)]
        if not targets:
            result.unmatched.append(info.uri)
            continue
        for em in targets:
            dest = f"{storage.landing_dir(mapping.name, em.entity, day)}/{info.name}"
            if storage.exists(dest) and _same_content(storage, info.uri, dest):
                result.unchanged.append((em.entity, info.uri, dest))
                continue
            with storage.open_input(info.uri) as src, storage.open_output(dest) as out:
                while chunk := src.read(_COPY_CHUNK):
                    out.write(chunk)
            result.copied.append((em.entity, info.uri, dest))
    if not result.copied and not result.unchanged:
        patterns = "; ".join(f"{e.entity}: {', '.join(e.files)}" for e in mapping.entities)
        raise MappingError(
            f"no file in {source_dir} matches mapping {mapping.name!r} ({mapping.path}); expected names: {patterns}"
        )
    return result
