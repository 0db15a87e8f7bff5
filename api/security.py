"""API keys: stored as SHA-256 hashes, loaded from a YAML/JSON file or an env list, with scopes ``read`` and ``pii``.

Keys are 256-bit random tokens (``lh_`` + 43 url-safe characters), so one SHA-256 is enough to make the stored hash
useless to whoever reads it; a slow password hash (scrypt) would only add ~50 ms to every request. There is no
default key outside local mode; in local mode with no key configured, one dev key is generated per process and printed.

Generate a key and its entry: ``python -m api.security --name crm --scopes read,pii``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from lakehouse.errors import ConfigError
from lakehouse.settings import Settings

SCOPES = ("read", "pii")
MAX_KEY_LENGTH = 256
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ApiKey:
    """A configured key: who it belongs to and what it may do (never the key itself)."""

    name: str
    scopes: frozenset[str]

    @property
    def pii(self) -> bool:
        return "pii" in self.scopes


def new_key() -> str:
    """A fresh random API key."""
    return "lh_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The at-rest form of a key: ``sha256:<hex digest>``."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """Hash -> :class:`ApiKey`; :meth:`authenticate` hashes the presented key and looks it up."""

    def __init__(self, entries: dict[str, ApiKey]) -> None:
        self._by_digest = dict(entries)

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, presented: str | None) -> ApiKey | None:
        """The key's owner and scopes, or None when the key is missing or unknown."""
        if not presented or len(presented) > MAX_KEY_LENGTH:
            return None
        return self._by_digest.get(hashlib.sha256(presented.encode("utf-8", "surrogateescape")).hexdigest())


def _parse_entries(doc: object, origin: str) -> dict[str, ApiKey]:
    if isinstance(doc, dict) and "keys" in doc:
        doc = doc["keys"]
    if not isinstance(doc, list):
        raise ConfigError(f"{origin}: expected a list of {{name, hash, scopes}} entries")
    out: dict[str, ApiKey] = {}
    names: set[str] = set()
    for i, entry in enumerate(doc):
        where = f"{origin}: entry {i + 1}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with name, hash and scopes")
        unknown = set(entry) - {"name", "hash", "scopes", "description"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} (allowed: name, hash, scopes, description)")
        name, digest, scopes = entry.get("name"), entry.get("hash"), entry.get("scopes", ["read"])
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ConfigError(f"{where}: name must be 1-64 letters, digits, '_', '.' or '-'")
        if name in names:
            raise ConfigError(f"{where}: duplicate key name {name!r}")
        if not isinstance(digest, str):
            raise ConfigError(f"{where} ({name}): hash is missing; generate one with `python -m api.security --name {name}`")
        digest = digest.strip().lower().removeprefix("sha256:")
        if not _HEX64.match(digest):
            raise ConfigError(f"{where} ({name}): hash must be 'sha256:' followed by 64 hex digits, never the key itself")
        if isinstance(scopes, str):
            scopes = [s.strip() for s in scopes.split(",") if s.strip()]
        if not isinstance(scopes, list) or not scopes or not set(scopes) <= set(SCOPES):
            raise ConfigError(f"{where} ({name}): scopes must be a non-empty subset of {', '.join(SCOPES)}, got {scopes!r}")
        if digest in out:
            raise ConfigError(f"{where} ({name}): the same key hash is configured twice")
        names.add(name)
        out[digest] = ApiKey(name, frozenset(scopes))
    return out


def load_key_store(settings: Settings) -> tuple[KeyStore, str | None]:
    """The configured keys, plus a generated dev key (local mode, nothing configured) or None.

    Raises :class:`ConfigError` with a sentence when the configuration is unusable, or when production mode has no key.
    """
    entries: dict[str, ApiKey] = {}
    if settings.api_keys_file:
        path = Path(settings.api_keys_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"LAKEHOUSE_API_KEYS_FILE {path} does not exist")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                doc = json.loads(text)
            else:
                import yaml

                doc = yaml.safe_load(text)
        except Exception as exc:  # noqa: BLE001 - a syntax error becomes one sentence
            raise ConfigError(f"LAKEHOUSE_API_KEYS_FILE {path} cannot be parsed: {exc.__class__.__name__}") from None
        entries.update(_parse_entries(doc, str(path)))
    if settings.api_keys:
        try:
            doc = json.loads(settings.api_keys)
        except ValueError:
            raise ConfigError("LAKEHOUSE_API_KEYS must be a JSON list like "
                              '[{"name": "crm", "hash": "sha256:...", "scopes": ["read"]}]') from None
        for digest, key in _parse_entries(doc, "LAKEHOUSE_API_KEYS").items():
            if digest in entries or key.name in {k.name for k in entries.values()}:
                raise ConfigError(f"LAKEHOUSE_API_KEYS: key {key.name!r} is also in LAKEHOUSE_API_KEYS_FILE")
            entries[digest] = key
    dev_key = None
    if not entries:
        if settings.mode != "local":
            raise ConfigError("no API keys configured: set LAKEHOUSE_API_KEYS_FILE or LAKEHOUSE_API_KEYS "
                              "(generate a key with `python -m api.security --name <client>`); "
                              "only local mode runs with a generated dev key")
        dev_key = new_key()
        entries[hash_key(dev_key).removeprefix("sha256:")] = ApiKey("local-dev", frozenset(SCOPES))
    return KeyStore(entries), dev_key


def main(argv: list[str] | None = None) -> int:
    """Print a new key (give it to the client) and its hashed entry (put it in the keys file)."""
    parser = argparse.ArgumentParser(prog="python -m api.security", description="Generate an API key and its hash.")
    parser.add_argument("--name", required=True, help="who the key is for, e.g. crm")
    parser.add_argument("--scopes", default="read", help="comma-separated: read, pii (default: read)")
    args = parser.parse_args(argv)
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    if not scopes or not set(scopes) <= set(SCOPES):
        print(f"error: scopes must be a subset of {', '.join(SCOPES)}", file=sys.stderr)
        return 2
    key = new_key()
    print(f"key (give to {args.name}, shown once): {key}")
    print("entry for LAKEHOUSE_API_KEYS_FILE:")
    print(f"- name: {args.name}\n  hash: {hash_key(key)}\n  scopes: [{', '.join(scopes)}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
