"""Errors a user can act on. The CLI prints their message, never a traceback."""

from __future__ import annotations


class LakehouseError(Exception):
    """Base for every error whose message is meant for a person."""

    exit_code = 2


class ConfigError(LakehouseError):
    """Settings are missing or inconsistent."""


class EngineUnreachable(LakehouseError):
    """The configured Spark Connect server cannot be reached."""


class LandingNotFound(LakehouseError):
    """A landing folder that was asked for does not exist."""


class SchemaError(LakehouseError):
    """A landing file or a mapping does not fit the entity's schema."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class MappingError(LakehouseError):
    """A source-mapping file is invalid."""


class QualityGateFailed(LakehouseError):
    """A ``fail``-severity rule failed; the flow stops."""


class AccountingError(LakehouseError):
    """Rows in did not equal rows out + quarantined + deduplicated."""
