"""Record features for matching: normalized values, placeholder removal, term frequencies and blocking keys.

Input is a ``silver.customers``-shaped frame; output keeps every input column and adds ``record_key`` and the
``f_*`` feature columns, ``block_keys`` (the blocking keys that are actually used) and ``record_hash`` (changes
whenever anything that can change a match or a golden attribute changes; incremental runs re-resolve exactly the
records whose hash changed).
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import Window
from pyspark.sql import functions as F

from lakehouse.errors import LakehouseError
from lakehouse.identity_config import IdentityConfig

from .nicknames import name_initials, nickname_pairs, nickname_sets

SILVER_CUSTOMER_COLUMNS: tuple[str, ...] = (
    "source_system", "source_kind", "source_customer_id", "first_name", "last_name", "full_name", "email",
    "phone_e164", "date_of_birth", "address_line1", "city", "postcode", "country", "loyalty_card",
    "marketing_opt_in", "created_at", "updated_at",
)
_TYPES = {"date_of_birth": "date", "marketing_opt_in": "boolean", "created_at": "timestamp", "updated_at": "timestamp"}
REQUIRED_COLUMNS: tuple[str, ...] = ("source_system", "source_customer_id")

_ACCENTS_FROM = "àáâãäåāçćčèéêëēėęìíîïīñńòóôõöøōùúûüūýÿžźżšśłđ"
_ACCENTS_TO = "aaaaaaaccceeeeeeeiiiiinnooooooouuuuuyyzzzsslđ"
_ADDRESS_ABBREVIATIONS = (
    ("street", "st"), ("road", "rd"), ("avenue", "ave"), ("lane", "ln"), ("drive", "dr"), ("close", "cl"),
    ("court", "ct"), ("place", "pl"), ("square", "sq"), ("crescent", "cres"), ("terrace", "ter"),
    ("gardens", "gdns"), ("apartment", "apt"), ("flat", "apt"), ("north", "n"), ("south", "s"), ("east", "e"),
    ("west", "w"), ("grove", "gr"), ("park", "pk"), ("house", "ho"), ("mount", "mt"), ("saint", "st"),
)
_TITLES = r"^(mr|mrs|ms|miss|dr|prof|sir|mx)\.?\s+"
_GB_POSTCODE = r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$"
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def clean_text(col: Column) -> Column:
    """Lower-case, strip accents and punctuation, collapse spaces; empty becomes null."""
    c = F.translate(F.lower(F.trim(col)), _ACCENTS_FROM, _ACCENTS_TO)
    return F.nullif(F.trim(F.regexp_replace(F.regexp_replace(c, r"[^a-z0-9 ]", " "), r"\s+", " ")), F.lit(""))


def _py_normalize(value: str, mode: str) -> str:
    """A denylist entry normalized like the column it is compared with."""
    v = value.lower()
    if mode == "name":
        return re.sub(r"[^a-z]", "", v)
    if mode == "code":
        return re.sub(r"[^a-z0-9]", "", v)
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", v)).strip()


def _drop_listed(col: Column, values, mode: str = "text") -> Column:
    """``col`` unless its value is on the list (then null); entries are normalized like the column (``mode``:
    text | name | code). ``col`` should be a plain column reference."""
    listed = sorted({_py_normalize(v, mode) for v in values} - {""})
    return F.when(~F.lower(col).isin(listed), col) if listed else col


def name_token(col: Column) -> Column:
    """Letters only, titles (mr, dr, ...) dropped; empty becomes null (before the denylist)."""
    return F.nullif(F.regexp_replace(F.regexp_replace(clean_text(col), _TITLES, ""), r"[^a-z]", ""), F.lit(""))


def first_token(col: Column) -> Column:
    """The first word of a cleaned name, titles dropped (middle names are not used for matching)."""
    return F.split(F.regexp_replace(clean_text(col), _TITLES, ""), " ").getItem(0)


def email_candidate(col: Column) -> Column:
    """Lower-cased, trimmed email if syntactically valid, else null (denylists applied separately)."""
    return F.nullif(F.regexp_extract(F.lower(F.trim(col)), r"^([^@\s]+@[^@\s]+\.[^@\s]+)$", 1), F.lit(""))


def drop_listed_email(col: Column, cfg: IdentityConfig) -> Column:
    """The email unless it, its mailbox name or its domain is on a denylist. ``col`` is a column reference."""
    p = cfg.placeholders
    local = F.split(col, "@").getItem(0)
    domain = F.split(col, "@").getItem(1)
    bad = (
        col.isin([v.lower() for v in p.email_denylist])
        | local.isin([v.lower() for v in p.email_local_denylist])
        | domain.isin([v.lower() for v in p.email_domain_denylist])
    )
    return F.when(~bad, col)


def sorted_letters(col: Column | str) -> Column:
    """The letters of a string in sorted order: equal for two spellings that differ only by a transposition."""
    return F.array_join(F.array_sort(F.split(col, "")), "")


def email_local_part(email: Column) -> Column:
    """The mailbox name without +tags and dots (john.smith+shop@x -> johnsmith); null when shorter than 4."""
    local = F.regexp_replace(F.split(F.split(email, "@").getItem(0), r"\+").getItem(0), r"[^a-z0-9]", "")
    return F.when(F.length(local) >= 4, local)


def email_local_is_name(local: Column, first: Column, last: Column) -> Column:
    """True when a mailbox name is nothing but the person's names (johnsmith, jsmith, smithj): it then repeats the
    name evidence and says little on its own, as namesakes pick the same mailbox name at other domains."""
    no_last = F.replace(local, last, F.lit(""))
    stripped = F.when(first.isNotNull(), F.replace(no_last, first, F.lit(""))).otherwise(no_last)
    return F.when(local.isNotNull() & last.isNotNull(), F.length(stripped) <= 1)


def phone_digits(col: Column) -> Column:
    """The digits of a phone number."""
    return F.regexp_replace(col, r"[^0-9]", "")


def phone_from_digits(digits: Column, cfg: IdentityConfig) -> Column:
    """E.164 (``+`` and 7 to 15 digits) unless a placeholder pattern, else null. ``digits`` is a column reference."""
    bad = F.lit(False)
    for pattern in cfg.placeholders.phone_denylist_patterns:
        bad = bad | digits.rlike(pattern)
    ok = (F.length(digits) >= 7) & (F.length(digits) <= 15) & ~bad
    return F.when(ok, F.concat(F.lit("+"), digits))


def code_token(col: Column) -> Column:
    """Upper-case alphanumerics of an identifier or postcode (spaces and dashes dropped); empty becomes null."""
    return F.nullif(F.upper(F.regexp_replace(F.trim(col), r"[^A-Za-z0-9]", "")), F.lit(""))


def address_token(col: Column) -> Column:
    """An address line cleaned, with common street words abbreviated (Street -> st)."""
    c = clean_text(col)
    for word, abbr in _ADDRESS_ABBREVIATIONS:
        c = F.regexp_replace(c, rf"\b{word}\b", abbr)
    return c


def normalize_dob(dob: Column, record_ts: Column, cfg: IdentityConfig) -> Column:
    """The date of birth unless it is a placeholder or absurd for the record's date, else null."""
    p = cfg.placeholders
    ref = F.coalesce(F.to_date(record_ts), F.current_date())
    bad = (
        dob.cast("string").isin(list(p.dob_denylist))
        | (dob < F.lit(p.dob_min).cast("date"))
        | (dob > F.add_months(ref, -12 * p.min_age_years))
        | (dob < F.add_months(ref, -12 * p.max_age_years))
    )
    return F.when(dob.isNotNull() & ~bad, dob)


def _split_full_name(full: Column) -> tuple[Column, Column]:
    """(first, last) from a full name: "Last, First" or "First [Middle] Last"."""
    c = F.trim(full)
    has_comma = c.contains(",")
    before = F.trim(F.split(c, ",").getItem(0))
    after = F.trim(F.split(c, ",").getItem(1))
    tokens = F.split(F.regexp_replace(c, r"\s+", " "), " ")
    first = F.when(has_comma, after).otherwise(F.when(F.size(tokens) > 1, tokens.getItem(0)))
    last = F.when(has_comma, before).otherwise(F.element_at(tokens, -1))
    return first, last


def ensure_customer_columns(df: DataFrame) -> DataFrame:
    """Add any missing optional silver.customers column as a typed null; fail on missing key columns."""
    missing_required = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing_required:
        raise LakehouseError(
            f"customer records lack key column(s) {missing_required}; identity resolution needs silver.customers "
            f"with at least {list(REQUIRED_COLUMNS)}"
        )
    missing = {
        name: F.lit(None).cast(_TYPES.get(name, "string")) for name in SILVER_CUSTOMER_COLUMNS if name not in df.columns
    }
    return df.withColumns(missing) if missing else df


def with_layers(df: DataFrame, layers: list[dict[str, Column]]) -> DataFrame:
    """``df`` with each layer's columns added (or replaced) in one projection; a layer's expressions may reference
    only columns of ``df`` and of earlier layers.

    Derived features are built in small expressions that reference earlier columns: one deeply nested expression per
    feature makes Sail's planner slow. One projection per column made Apache Spark's analyzer slow instead: the
    features of 30 records (a 70-projection chain, which later steps reference about ten times) took it 17 s to plan.
    """
    for layer in layers:
        if layer:
            df = df.withColumns(layer)
    return df


def _contact_derivations() -> list[dict[str, Column]]:
    """The layers of features derived from ``f_email`` and ``f_phone``: built by :func:`normalize_customers` and
    built again by :func:`remove_frequent_identifiers` once a too-frequent email or phone is nulled."""
    return [
        {"f_email_local": email_local_part(F.col("f_email")), "f_phone_last": F.substring("f_phone", -7, 7)},
        {"f_email_named": email_local_is_name(F.col("f_email_local"), F.col("f_first"), F.col("f_last"))},
    ]


def normalize_customers(df: DataFrame, *, config: IdentityConfig) -> DataFrame:
    """Add ``record_key`` and the per-record ``f_*`` match features (no frequency-based cleaning yet)."""
    p = config.placeholders
    d = ensure_customer_columns(df)
    split_first, split_last = _split_full_name(F.col("full_name"))
    raw_tokens = {  # from the silver columns alone
        "record_key": F.concat_ws(":", F.col("source_system"), F.col("source_customer_id")),
        "_first_tok": name_token(first_token(F.coalesce(F.col("first_name"), split_first))),
        "_last_tok": name_token(F.coalesce(F.col("last_name"), split_last)),
        "_email_ok": email_candidate(F.col("email")),
        "_phone_digits": phone_digits(F.col("phone_e164")),
        "_loyalty_tok": code_token(F.col("loyalty_card")),
        "f_dob": normalize_dob(F.col("date_of_birth"), F.coalesce(F.col("created_at"), F.col("updated_at")), config),
        "_postcode_tok": code_token(F.col("postcode")),
        "_city_tok": F.regexp_replace(clean_text(F.col("city")), r"^st ", "saint "),
        "_address_tok": address_token(F.col("address_line1")),
    }
    features = {  # placeholders and deny-listed values dropped
        "f_first": _drop_listed(F.col("_first_tok"), p.name_denylist, "name"),
        "f_last": _drop_listed(F.col("_last_tok"), p.name_denylist, "name"),
        "f_email": drop_listed_email(F.col("_email_ok"), config),
        "f_phone": phone_from_digits(F.col("_phone_digits"), config),
        "f_loyalty": _drop_listed(F.col("_loyalty_tok"), p.text_denylist, "code"),
        "f_postcode": _drop_listed(F.col("_postcode_tok"), p.text_denylist, "code"),
        "f_city": _drop_listed(F.col("_city_tok"), p.text_denylist),
        "f_address": _drop_listed(F.col("_address_tok"), p.text_denylist),
    }
    d = with_layers(d, [raw_tokens, features])
    # The nickname columns (_nick, _nick_set, _initials) of each record's first name.
    names = first_name_table(d.sparkSession)
    d = d.join(names, d["f_first"] == names["_nick_key"], "left").drop("_nick_key")
    first_initial = F.substring("f_first", 1, 1)
    derived = {
        "f_first_canonical": F.coalesce(F.col("_nick"), F.col("f_first")),
        "f_first_names": F.split(F.coalesce(F.col("_nick_set"), F.col("f_first")), r"\|"),
        "f_first_letters": sorted_letters("f_first"),
        "f_first_soundex": F.when(F.length("f_first") > 1, F.soundex("f_first")),
        "f_first_initial": first_initial,
        # every letter the name may be abbreviated to (its own, and those of its nicknames: Olivia -> O. or L.)
        "f_first_initials": F.when(F.length("f_first") > 1, F.coalesce(F.col("_initials"), first_initial)),
        "f_first_known": F.when(F.length("f_first") > 1, F.col("_initials").isNotNull()),  # a listed name
        "f_last_letters": sorted_letters("f_last"),
        "f_last_soundex": F.soundex("f_last"),
        "f_last_prefix": F.when(F.length("f_last") >= 3, F.substring("f_last", 1, 3)),
        "f_birth_year": F.year("f_dob").cast("string"),
        "f_postcode_district": F.when(F.col("f_postcode").rlike(_GB_POSTCODE), F.expr("substring(f_postcode, 1, length(f_postcode) - 3)")),
        "f_house_number": F.nullif(F.regexp_extract("f_address", r"(\d+)", 1), F.lit("")),
    }
    d = with_layers(d, [derived, *_contact_derivations()])
    return d.drop(*[name for name in (*raw_tokens, *features) if name.startswith("_")], "_nick", "_nick_set", "_initials")


def first_name_table(spark) -> DataFrame:
    """One row per listed first name: ``_nick_key`` (the name), ``_nick`` (its canonical form), ``_nick_set`` (every
    form, ``|``-separated) and ``_initials`` (the letters it may be abbreviated to).

    Joined on the record's first name instead of looked up in ``create_map`` literals: Sail builds a literal map
    again for every row, which made these lookups 18 times the cost of every other feature together.
    """
    nick, sets, initials = dict(nickname_pairs()), dict(nickname_sets()), dict(name_initials())
    rows = [(k, nick.get(k), sets.get(k), initials.get(k)) for k in sorted({*nick, *sets, *initials})]
    return spark.createDataFrame(rows, "_nick_key string, _nick string, _nick_set string, _initials string")


def _count_by(col: str) -> Column:
    """How many records carry this row's (non-null) value of ``col`` (null when the value is null)."""
    return F.when(F.col(col).isNotNull(), F.count(F.lit(1)).over(Window.partitionBy(col)))


def remove_frequent_identifiers(df: DataFrame, *, config: IdentityConfig) -> DataFrame:
    """Null strong identifiers shared by more records than ``max_value_frequency`` allows (placeholders)."""
    caps = config.placeholders.max_value_frequency
    capped = {col: cap for key, col in (("email", "f_email"), ("phone", "f_phone"), ("loyalty_card", "f_loyalty"))
              if (cap := caps.get(key)) is not None}
    counts = {f"_n_{col}": _count_by(col) for col in capped}
    kept = {col: F.when(F.col(f"_n_{col}") <= cap, F.col(col)) for col, cap in capped.items()}
    # derived values follow their source
    return with_layers(df, [counts, kept, *_contact_derivations()]).drop(*counts)


def add_term_frequencies(df: DataFrame, *, config: IdentityConfig) -> DataFrame:
    """Add ``f_first_u`` / ``f_last_u`` (the bucketed share of records carrying the same name, the tf u) and
    ``f_population`` (the bucketed record count)."""
    tf = config.term_frequency
    names = ("f_first", "f_last")
    counts = {"_total": F.count(F.lit(1)).over(Window.partitionBy()), **{f"_n_{col}": _count_by(col) for col in names}}

    def u(col: str) -> Column:
        # bucket to the power of two (centre of the bucket) so small count changes rarely move a weight
        bucketed = F.pow(F.lit(2.0), F.floor(F.log2(F.col(f"_n_{col}") / F.col("_total"))) + 0.5)
        return F.when(F.col(col).isNotNull(), F.least(F.greatest(bucketed, F.lit(tf.min_u)), F.lit(tf.max_u)))

    weights = {
        **{f"{col}_u": u(col) for col in names},
        # the population the prior match probability scales with, bucketed to half powers of two (like the names)
        "f_population": F.pow(F.lit(2.0), F.floor(F.log2("_total") * 2) / 2),
    }
    return with_layers(df, [counts, weights]).drop(*counts)


def _one_keystroke_keys(col: str) -> Column:
    """The name and every string made by deleting one of its letters: two names one edit or one swap apart
    always share one of these keys (symmetric deletion), so their pairs are found by an equi-join."""
    return F.expr(f"array_union(array({col}), transform(sequence(1, length({col})), i -> concat(substr({col}, 1, i - 1), substr({col}, i + 1))))")


def name_typo_fixes(df: DataFrame, col: str, *, config: IdentityConfig) -> DataFrame:
    """``(_v, _w)``: each spelling ``_v`` of ``col`` that reads as a keying error of a common spelling ``_w``.

    ``_w`` is one edit or one swap of two letters away, and carried by at least ``name_typos.min_ratio`` times as
    many records as ``_v`` (and by at least ``min_count``). A rare real name near a common one is read as its typo
    too; that only lets it compare as "fuzzy" with the names the common one compares with (one edit already does).
    """
    t = config.name_typos
    counts = df.where(F.col(col).isNotNull()).groupBy(F.col(col).alias("_v")).agg(F.count(F.lit(1)).alias("_n"))
    keyed = counts.select("_v", "_n", F.explode(_one_keystroke_keys("_v")).alias("_k"))
    rare = keyed.where(F.length("_v") >= t.min_length)
    common = keyed.where(F.col("_n") >= t.min_count).select(F.col("_v").alias("_w"), F.col("_n").alias("_wn"), "_k")
    near = (F.levenshtein("_v", "_w") <= 1) | ((F.levenshtein("_v", "_w") <= 2) & (sorted_letters("_v") == sorted_letters("_w")))
    return (
        rare.join(common, "_k")
        .where((F.col("_v") != F.col("_w")) & (F.col("_wn") >= F.col("_n") * F.lit(float(t.min_ratio))) & near)
        .select("_v", "_w")
        .distinct()
    )


def add_name_typos(df: DataFrame, *, config: IdentityConfig) -> DataFrame:
    """Add ``f_first_forms`` / ``f_last_forms``: for a name that reads as a typo of common names (see
    :func:`name_typo_fixes`), the name, the common names and (first names) their nickname groups; null otherwise.
    Two records whose forms overlap spell one name, whatever each one's typo."""
    first = name_typo_fixes(df, "f_first", config=config)
    names = first_name_table(df.sparkSession).select("_nick_key", "_nick_set")
    first_forms = (
        first.join(names, first["_w"] == names["_nick_key"], "left")
        .select("_v", F.explode(F.array_union(F.array("_w"), F.coalesce(F.split("_nick_set", r"\|"), F.array().cast("array<string>")))).alias("_f"))
        .groupBy("_v").agg(F.collect_set("_f").alias("_ff"))
    )
    last_forms = name_typo_fixes(df, "f_last", config=config).groupBy("_v").agg(F.collect_set("_w").alias("_lf"))
    out = df.join(first_forms, df["f_first"] == first_forms["_v"], "left").drop("_v")
    out = out.join(last_forms, out["f_last"] == last_forms["_v"], "left").drop("_v")
    return out.withColumns({
        "f_first_forms": F.when(
            F.col("_ff").isNotNull(), F.array_sort(F.array_distinct(F.concat(F.array("f_first"), F.col("f_first_names"), F.col("_ff"))))
        ),
        "f_last_forms": F.when(F.col("_lf").isNotNull(), F.array_sort(F.array_distinct(F.array_union(F.array("f_last"), F.col("_lf"))))),
    }).drop("_ff", "_lf")


_FEATURE_OF_KEY = {
    "email": "f_email", "email_local": "f_email_local", "phone": "f_phone", "loyalty_card": "f_loyalty",
    "first_name": "f_first", "first_canonical": "f_first_canonical", "first_initial": "f_first_initial",
    "first_soundex": "f_first_soundex", "last_name": "f_last", "last_soundex": "f_last_soundex",
    "last_prefix": "f_last_prefix", "dob": "f_dob", "birth_year": "f_birth_year", "postcode": "f_postcode",
    "postcode_district": "f_postcode_district", "city": "f_city", "address": "f_address",
    "house_number": "f_house_number",
}


def add_blocking_keys(df: DataFrame, *, config: IdentityConfig) -> DataFrame:
    """Add ``block_keys``: one key per blocking rule whose features are all present, minus oversized blocks."""
    keys = []
    for rule in config.blocking.rules:
        cols = [F.col(_FEATURE_OF_KEY[k]).cast("string") for k in rule.keys]
        present = F.lit(True)
        for c in cols:
            present = present & c.isNotNull()
        keys.append(F.when(present, F.concat_ws("|", F.lit(rule.name), *cols)))
    with_keys = df.withColumn("_all_keys", F.array_compact(F.array(*keys)))
    exploded = with_keys.select("record_key", F.explode("_all_keys").alias("block_key"))
    active = (
        exploded.withColumn("_size", F.count(F.lit(1)).over(Window.partitionBy("block_key")))
        .where(F.col("_size") <= config.blocking.max_block_size)
        .groupBy("record_key")
        .agg(F.array_sort(F.collect_list("block_key")).alias("block_keys"))
    )
    return (
        with_keys.drop("_all_keys")
        .join(active, "record_key", "left")
        .withColumn("block_keys", F.coalesce(F.col("block_keys"), F.array().cast("array<string>")))
    )


FEATURE_COLUMNS: tuple[str, ...] = (
    "f_first", "f_first_canonical", "f_first_names", "f_first_letters", "f_first_soundex", "f_first_initial",
    "f_first_initials", "f_first_known", "f_first_forms", "f_first_u", "f_last", "f_last_letters", "f_last_soundex", "f_last_prefix",
    "f_last_forms", "f_last_u", "f_email", "f_email_local",
    "f_email_named", "f_phone", "f_phone_last", "f_loyalty", "f_dob",
    "f_birth_year", "f_postcode", "f_postcode_district", "f_city", "f_address", "f_house_number", "f_population",
)


def add_record_hash(df: DataFrame) -> DataFrame:
    """Add ``record_hash``: sha2 over the silver attributes, the features and the active blocking keys."""
    payload = F.to_json(F.struct(*[F.col(c) for c in (*SILVER_CUSTOMER_COLUMNS, *FEATURE_COLUMNS, "block_keys")]))
    return df.withColumn("record_hash", F.sha2(payload, 256))


def prepare_records(df: DataFrame, *, config: IdentityConfig, stage=None) -> DataFrame:
    """silver.customers -> one row per source record with match features, blocking keys and a change hash.

    ``stage(frame, name)``, when given, materializes the per-record features before the steps that aggregate over
    them and join back (name typos, blocking keys): the engine would otherwise compute them once per branch.
    """
    features = (
        normalize_customers(df, config=config)
        .transform(lambda x: remove_frequent_identifiers(x, config=config))
        .transform(lambda x: add_term_frequencies(x, config=config))
    )
    if stage is not None:
        features = stage(features, "features")
    return (
        features.transform(lambda x: add_name_typos(x, config=config))
        .transform(lambda x: add_blocking_keys(x, config=config))
        .transform(add_record_hash)
    )
