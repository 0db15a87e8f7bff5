"""Retail lakehouse core: settings, table catalogue, storage, the Spark session, run records and the CLI."""

__version__ = "0.1.0"
