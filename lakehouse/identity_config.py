"""Identity-resolution configuration: thresholds, m/u weights, blocking and survivorship rules, declared as data.

The defaults live in ``config/identity.yaml``. A different file can be given with the environment variable
``LAKEHOUSE_IDENTITY_CONFIG`` or the ``path`` argument of :func:`load_identity_config`. Unknown keys, unknown
comparison levels, unknown blocking features and unknown strategies are errors with a sentence that says what to fix.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lakehouse.errors import ConfigError

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "config" / "identity.yaml"

# The record features a blocking rule may combine (computed by transforms.gold.identity.features).
BLOCKING_FEATURES: tuple[str, ...] = (
    "email", "email_local", "phone", "loyalty_card", "first_name", "first_canonical", "first_initial",
    "first_soundex", "last_name", "last_soundex", "last_prefix", "dob", "birth_year", "postcode",
    "postcode_district", "city", "address", "house_number",
)

# The ordered levels every comparison knows (the first that holds wins). Config gives m/u for each.
COMPARISON_LEVELS: dict[str, tuple[str, ...]] = {
    "first_name": ("exact", "nickname", "fuzzy", "soundex", "initial", "similar", "different"),
    "last_name": ("exact", "fuzzy", "soundex", "different"),
    "date_of_birth": ("exact", "typo", "same_year", "different"),
    "email": ("exact", "same_local_part", "name_local_part", "fuzzy", "different"),
    "phone": ("exact", "last_digits", "different"),
    "postcode": ("exact", "district", "different"),
    "address": ("exact", "fuzzy", "same_number", "different"),
    "city": ("exact", "fuzzy", "different"),
}
DETERMINISTIC_RULES: tuple[str, ...] = ("loyalty_card", "email", "phone")
GOLDEN_ATTRIBUTES: tuple[str, ...] = (
    "first_name", "last_name", "email", "phone_e164", "date_of_birth", "address_line1", "city", "postcode",
    "country", "loyalty_card",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Placeholders(_Strict):
    """Values that are never evidence."""

    max_value_frequency: dict[Literal["email", "phone", "loyalty_card"], int]
    email_denylist: tuple[str, ...] = ()
    email_local_denylist: tuple[str, ...] = ()
    email_domain_denylist: tuple[str, ...] = ()
    phone_denylist_patterns: tuple[str, ...] = ()
    name_denylist: tuple[str, ...] = ()
    text_denylist: tuple[str, ...] = ()
    dob_denylist: tuple[str, ...] = ()
    dob_min: str = "1900-01-02"
    max_age_years: int = 110
    min_age_years: int = 0


class TermFrequency(_Strict):
    """Bounds of the frequency-derived u of an exact match on a name."""

    min_u: float = Field(gt=0, lt=1)
    max_u: float = Field(gt=0, lt=1)


class NameTypos(_Strict):
    """When a rare spelling of a name is read as a keying error of a common one."""

    # the common spelling is carried by at least this many times as many records as the rare one ...
    min_ratio: float = Field(default=16.0, gt=1)
    # ... and by at least this many records (a small population corrects nothing)
    min_count: int = Field(default=8, ge=1)
    # names shorter than this are never corrected (jo and ed are names, not typos)
    min_length: int = Field(default=3, ge=2)


class BlockingRule(_Strict):
    """Pairs of records whose ``keys`` features are all equal (and non-null) are compared."""

    name: str
    keys: tuple[str, ...]

    @model_validator(mode="after")
    def _known(self) -> "BlockingRule":
        unknown = [k for k in self.keys if k not in BLOCKING_FEATURES]
        if unknown:
            raise ValueError(f"blocking rule {self.name}: unknown feature(s) {unknown}; known: {list(BLOCKING_FEATURES)}")
        return self


class Blocking(_Strict):
    """Blocking rules and the block-size cap."""

    max_block_size: int = Field(gt=1)
    rules: tuple[BlockingRule, ...]


class Deterministic(_Strict):
    """Exact rules on strong identifiers, with the family veto."""

    rules: tuple[Literal["loyalty_card", "email", "phone"], ...]
    veto_min_disagreements: int = Field(ge=1, le=3)
    veto_on_different_first_name: bool = True


class Level(_Strict):
    """One comparison level: m and u probabilities (weight = log2(m/u))."""

    m: float = Field(gt=0, le=1)
    u: float = Field(gt=0, le=1)
    tf_adjust: bool = False


class Scoring(_Strict):
    """Fellegi-Sunter parameters."""

    prior_match_probability: float = Field(gt=0, lt=1)
    # when set, the prior is this many matches per record over the (bucketed) record count, capped by the one above
    prior_matches_per_record: float | None = Field(default=None, gt=0)
    match_threshold: float = Field(gt=0, lt=1)
    strong_threshold: float = Field(gt=0, lt=1)
    comparisons: dict[str, dict[str, Level]]

    @model_validator(mode="after")
    def _levels(self) -> "Scoring":
        for name, levels in self.comparisons.items():
            if name not in COMPARISON_LEVELS:
                raise ValueError(f"unknown comparison {name!r}; known: {list(COMPARISON_LEVELS)}")
            unknown = [lv for lv in levels if lv not in COMPARISON_LEVELS[name]]
            if unknown:
                raise ValueError(f"comparison {name}: unknown level(s) {unknown}; known: {list(COMPARISON_LEVELS[name])}")
            for lv, spec in levels.items():
                if spec.tf_adjust and lv != "exact":
                    raise ValueError(f"comparison {name}: tf_adjust only applies to the exact level, not {lv!r}")
        if self.strong_threshold < self.match_threshold:
            raise ValueError("strong_threshold must be at least match_threshold")
        return self


class BestMatch(_Strict):
    """Links below ``match_threshold`` between two records that are each other's clear best match in the other's
    system (most people have one online account and one loyalty card, not several)."""

    enabled: bool = True
    # the pair's probability (1 for a deterministic link) is at least this ...
    min_probability: float = Field(default=0.3, gt=0, lt=1)
    # ... and every other candidate of either record in the other one's system scores at least this much lower
    margin: float = Field(default=0.2, ge=0, lt=1)

    @model_validator(mode="after")
    def _floor(self) -> "BestMatch":
        if self.margin >= self.min_probability:
            raise ValueError("best_match.margin must be below best_match.min_probability")
        return self


class Clustering(_Strict):
    """Guard against over-merging."""

    max_cluster_size: int = Field(gt=1)
    bridge_min_support: int = Field(ge=1)
    max_iterations: int = Field(gt=1)


class SurvivorshipRule(_Strict):
    """Which source record gives a group of golden attributes (a group is taken from one record)."""

    attributes: tuple[str, ...]
    strategy: Literal["most_recent_non_null", "most_complete", "source_priority"]
    sources: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> "SurvivorshipRule":
        unknown = [a for a in self.attributes if a not in GOLDEN_ATTRIBUTES]
        if unknown:
            raise ValueError(f"survivorship: unknown attribute(s) {unknown}; known: {list(GOLDEN_ATTRIBUTES)}")
        if self.strategy == "source_priority" and not self.sources:
            raise ValueError(f"survivorship for {list(self.attributes)}: strategy source_priority needs sources: [...]")
        return self


class Consent(_Strict):
    """The consent rule: an older opt-in never resurrects an opt-out."""

    attribute: Literal["marketing_opt_in"] = "marketing_opt_in"
    rule: Literal["opt_out_wins_unless_newer_opt_in"] = "opt_out_wins_unless_newer_opt_in"


class IdentityConfig(_Strict):
    """The whole identity-resolution configuration."""

    placeholders: Placeholders
    term_frequency: TermFrequency
    name_typos: NameTypos = NameTypos()
    blocking: Blocking
    deterministic: Deterministic
    scoring: Scoring
    best_match: BestMatch = BestMatch()
    clustering: Clustering
    survivorship: tuple[SurvivorshipRule, ...]
    consent: Consent = Consent()

    @model_validator(mode="after")
    def _complete(self) -> "IdentityConfig":
        covered = [a for rule in self.survivorship for a in rule.attributes]
        dupes = sorted({a for a in covered if covered.count(a) > 1})
        missing = [a for a in GOLDEN_ATTRIBUTES if a not in covered]
        if dupes:
            raise ValueError(f"survivorship: attribute(s) {dupes} appear in more than one rule")
        if self.best_match.enabled and self.best_match.min_probability > self.scoring.match_threshold:
            raise ValueError("best_match.min_probability above scoring.match_threshold links nothing the threshold does not")
        if missing:
            raise ValueError(f"survivorship: no rule for attribute(s) {missing}")
        return self

    def with_overrides(self, **sections: dict) -> "IdentityConfig":
        """A copy with some top-level sections partly replaced (for tests and benchmarks)."""
        data = self.model_dump()
        for key, value in sections.items():
            if isinstance(data.get(key), dict) and isinstance(value, dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return IdentityConfig.model_validate(data)


def parse_identity_config(data: dict, source: str = "identity config") -> IdentityConfig:
    """Validate a config mapping, raising ConfigError with one line per problem."""
    try:
        return IdentityConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{source} is invalid: " + "; ".join(lines)) from None


def load_identity_config(path: str | Path | None = None) -> IdentityConfig:
    """Load the identity config from ``path``, ``$LAKEHOUSE_IDENTITY_CONFIG`` or ``config/identity.yaml``."""
    chosen = Path(path or os.environ.get("LAKEHOUSE_IDENTITY_CONFIG") or DEFAULT_PATH)
    return _load_cached(str(chosen.resolve()))


@lru_cache(maxsize=8)
def _load_cached(path: str) -> IdentityConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"identity config {p} not found; set LAKEHOUSE_IDENTITY_CONFIG to a YAML file like config/identity.yaml")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"identity config {p} is not valid YAML: {exc}") from None
    return parse_identity_config(data, str(p))
