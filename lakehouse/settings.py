"""Settings: one pydantic-settings model, env prefix ``LAKEHOUSE_``; defaults serve the embedded local setup."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehouse.errors import ConfigError


class Settings(BaseSettings):
    """Every knob of the lakehouse. Environment variables are ``LAKEHOUSE_<FIELD>`` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_", env_file=None, extra="ignore")

    mode: Literal["local", "production"] = "local"
    data_root: str = "lakehouse_data"
    landing_root: str | None = None
    warehouse_root: str | None = None
    truth_root: str | None = None

    # Engine: empty means an embedded Sail server on 127.0.0.1 with a free port; ``local[N]`` starts a local Apache
    # Spark Connect server (JVM ``pyspark`` package and Java 17 needed: the conformance run and the benchmark).
    spark_remote: str | None = Field(default=None)
    spark_connect_timeout_s: float = 10.0
    # Table format: ``delta`` (the engine reads and writes Delta) or ``parquet`` (the engine reads and writes plain
    # Parquet and lakehouse commits the files to each table's Delta log with delta-rs; for engines without Delta,
    # local paths only; see lakehouse/parquet_tables.py).
    table_format: Literal["delta", "parquet"] = "delta"

    # S3 (used whenever a root is s3://...). Sail reads these from the environment at server start.
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    s3_allow_http: bool = False

    timezone: str = "UTC"
    run_id: str | None = None

    # A folder of extra source-mapping files (*.yaml) besides the repo's mappings/ (see lakehouse/mappings.py).
    mappings_dir: str | None = None
    # Bronze rejects a landing file with more unexpected (drift / unmapped) columns than this, with the reason in the
    # file ledger: each extra column a loaded file carries widens its bronze table for good (mergeSchema).
    max_extra_columns: int = Field(default=50, ge=0)
    # Silver tables refined at the same time at most (flows.refine): the engine serves their queries side by side
    # (tables that read one another keep their order). 1 refines one table at a time.
    refine_workers: int = Field(default=2, ge=1)

    # API (issue 7). Keys are stored as hashes: a YAML/JSON file of [{name, hash, scopes}] or the same list as JSON in
    # LAKEHOUSE_API_KEYS. No default key outside local mode (local mode generates and prints a dev key).
    api_keys_file: str | None = None
    api_keys: str | None = None
    api_poll_interval_s: float = Field(default=5.0, gt=0)

    @field_validator("spark_remote")
    @classmethod
    def _check_remote(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if re.fullmatch(r"local(\[(\d+|\*)\])?", value):
            return value
        if not value.startswith("sc://"):
            raise ValueError(
                f"spark_remote must be a Spark Connect URL like sc://host:15002 (or local[2] for a local Apache Spark), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _fill_roots(self) -> "Settings":
        base = self.data_root.rstrip("/")
        if self.landing_root is None:
            self.landing_root = f"{base}/landing"
        if self.warehouse_root is None:
            self.warehouse_root = f"{base}/warehouse"
        if self.truth_root is None:
            self.truth_root = f"{base}/truth"
        for name in ("landing_root", "warehouse_root", "truth_root"):
            value = getattr(self, name)
            if not value.startswith("s3://"):
                setattr(self, name, str(Path(value).expanduser().resolve()))
        if self.uses_s3 and self.mode == "production" and not self.s3_access_key_id:
            raise ValueError("an s3:// root in production mode needs LAKEHOUSE_S3_ACCESS_KEY_ID and LAKEHOUSE_S3_SECRET_ACCESS_KEY")
        return self

    @property
    def uses_s3(self) -> bool:
        return any(str(r).startswith("s3://") for r in (self.landing_root, self.warehouse_root))

    def s3_env(self) -> dict[str, str]:
        """The AWS environment Sail, deltalake and boto3 read (empty when no S3 endpoint is configured)."""
        env: dict[str, str] = {}
        if self.s3_access_key_id:
            env["AWS_ACCESS_KEY_ID"] = self.s3_access_key_id
        if self.s3_secret_access_key:
            env["AWS_SECRET_ACCESS_KEY"] = self.s3_secret_access_key.get_secret_value()
        if self.uses_s3 or self.s3_endpoint_url:
            env["AWS_REGION"] = self.s3_region
            env["AWS_DEFAULT_REGION"] = self.s3_region
        if self.s3_endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.s3_endpoint_url
        if self.s3_allow_http or (self.s3_endpoint_url or "").startswith("http://"):
            env["AWS_ALLOW_HTTP"] = "true"
        return env

    def delta_storage_options(self) -> dict[str, str]:
        """``storage_options`` for deltalake (delta-rs) on the configured object store."""
        env = self.s3_env()
        opts = {k: v for k, v in env.items() if k != "AWS_DEFAULT_REGION"}
        if opts:
            opts["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
        return opts


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (``SPARK_REMOTE`` is honoured too), failing with a readable sentence."""
    if "spark_remote" not in overrides and not os.environ.get("LAKEHOUSE_SPARK_REMOTE") and os.environ.get("SPARK_REMOTE"):
        overrides["spark_remote"] = os.environ["SPARK_REMOTE"]
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except Exception as exc:  # pydantic ValidationError -> one readable line per problem
        errors = getattr(exc, "errors", None)
        if callable(errors):
            lines = [f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in errors()]
            raise ConfigError("bad configuration: " + "; ".join(lines)) from None
        raise ConfigError(f"bad configuration: {exc}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings from the environment."""
    return load_settings()
