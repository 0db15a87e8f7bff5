"""Seeded, reproducible retail source generator: landing files for the online shop, the POS stores, the clickstream
and inventory, with realistic identity disagreement, injected bad records and the ground truth.

``generate(settings, start=..., days=..., customers=..., orders_per_day=..., seed=...)`` is the entry point
(``lakehouse generate`` on the command line).
"""

from generator.run import DEFAULT_FORMATS, GenerationSummary, check_parameters, generate, resolve_formats

__all__ = ["DEFAULT_FORMATS", "GenerationSummary", "check_parameters", "generate", "resolve_formats"]
