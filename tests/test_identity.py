"""Identity resolution (issue 4): normalization, comparisons, rules, placeholders, clustering guard, survivorship."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import functions as F

from lakehouse.errors import ConfigError
from lakehouse.identity_config import load_identity_config, parse_identity_config
from transforms.gold.identity.compare import (
    BEST_MATCH_RULE, apply_rules, attach_features, best_match_links, candidate_pairs, comparison_levels, score_pairs,
)
from transforms.gold.identity.features import name_typo_fixes, prepare_records
from transforms.gold.identity.ids import identity_changes, keep_existing_ids, SURVIVOR_RULES
from transforms.gold.identity.survivorship import build_golden

pytestmark = pytest.mark.unit

SCHEMA = (
    "source_system string, source_customer_id string, first_name string, last_name string, full_name string, "
    "email string, phone_e164 string, date_of_birth date, address_line1 string, city string, postcode string, "
    "country string, loyalty_card string, marketing_opt_in boolean, created_at timestamp, updated_at timestamp"
)
T0 = dt.datetime(2025, 1, 1, 12, 0)


def rec(src, cid, first=None, last=None, *, full=None, email=None, phone=None, dob=None, addr=None, city=None,
        postcode=None, country="GB", card=None, opt=None, created=T0, updated=None):
    return (src, cid, first, last, full, email, phone, dob, addr, city, postcode, country, card, opt, created, updated or created)


@pytest.fixture(scope="module")
def cfg():
    return load_identity_config()


def _records(spark, rows, cfg):
    """The prepared records of ``rows``, computed once and read back, as the identity flow stages them before pairing
    and scoring (which reference them several times: unstaged, Apache Spark analyzed the feature chain dozens of
    times per score)."""
    records = prepare_records(spark.createDataFrame(rows, SCHEMA), config=cfg)
    return spark.createDataFrame(records.collect(), records.schema)


def _by_key(df, *cols):
    return {r["record_key"]: tuple(r[c] for c in cols) for r in df.select("record_key", *cols).collect()}


# -- config ---------------------------------------------------------------------------------------------------------
def _assert_rejected(cfg, edit, match):
    """The config with ``edit`` applied to its JSON form is refused with an error matching ``match``."""
    data = cfg.model_dump(mode="json")
    edit(data)
    with pytest.raises(ConfigError, match=match):
        parse_identity_config(data)


def test_config_rejects_unknown_keys_and_levels(cfg):
    _assert_rejected(cfg, lambda d: d["scoring"]["comparisons"]["first_name"].update(almost={"m": 0.1, "u": 0.1}), "unknown level")
    _assert_rejected(cfg, lambda d: d["blocking"]["rules"].append({"name": "x", "keys": ["shoe_size"]}), "unknown feature")
    _assert_rejected(
        cfg, lambda d: d.update(survivorship=[r for r in d["survivorship"] if "email" not in r["attributes"]]),
        "no rule for attribute",
    )
    _assert_rejected(cfg, lambda d: d["name_typos"].update(min_ratio=1), "name_typos.min_ratio")
    _assert_rejected(cfg, lambda d: d.update(surprise=1), "surprise")


# -- normalization and placeholders -----------------------------------------------------------------------------------
def test_normalization(spark, cfg):
    rows = [
        rec("pos", "1", full="SMITH, Jon", email=" JOHN.Smith+shop@Gmail.com ", phone="+44 7700 900123",
            addr="12 High Street", city="St Albans", postcode="sw1a 1aa", card="  l-123 "),
        rec("online", "2", "Mr. José", "O'Neil-Brown", email="bad-email", dob=dt.date(1980, 2, 3), addr="Flat 3, 12 Park Road"),
        rec("online", "3", full="Mary Ann Jones"),
    ]
    got = _by_key(
        _records(spark, rows, cfg), "f_first", "f_first_canonical", "f_last", "f_email", "f_email_local", "f_phone",
        "f_postcode", "f_postcode_district", "f_city", "f_address", "f_loyalty", "f_house_number",
    )
    assert got["pos:1"] == ("jon", "john", "smith", "john.smith+shop@gmail.com", "johnsmith", "+447700900123",
                            "SW1A1AA", "SW1A", "saint albans", "12 high st", "L123", "12")
    assert got["online:2"][:4] == ("jose", "jose", "oneilbrown", None)
    assert got["online:2"][9] == "apt 3 12 pk rd"
    assert got["online:3"][0] == "mary" and got["online:3"][2] == "jones"


def test_placeholders_are_never_evidence(spark, cfg):
    rows = [rec("online", f"t{i}", f"First{i}", f"Last{i}", email="someone@shared.com") for i in range(25)]
    rows += [
        rec("online", "a", "Ann", "Lee", email="test@test.com", phone="00000000000", dob=dt.date(1900, 1, 1)),
        rec("online", "b", "Unknown", "N/A", email="noemail@gmail.com", phone="+44 1234 567890", dob=dt.date(2031, 1, 1)),
        rec("online", "c", "Bo", "Ng", dob=dt.date(1850, 1, 1), postcode="unknown", addr="n/a"),
    ]
    recs = _records(spark, rows, cfg)
    got = _by_key(recs, "f_email", "f_phone", "f_dob", "f_first", "f_last", "f_postcode", "f_address")
    assert got["online:t0"][0] is None, "an email on 25 records (> cap 20) is a placeholder"
    assert got["online:a"][:3] == (None, None, None)
    assert got["online:b"] == (None, None, None, None, None, None, None)
    assert got["online:c"][2] is None and got["online:c"][5] is None and got["online:c"][6] is None
    assert candidate_pairs(recs).where(F.col("left_key").startswith("online:t")).count() == 0


def test_all_null_customers_do_not_crash_or_match(spark, cfg):
    rows = [rec("online", str(i), created=None) for i in range(3)]
    recs = _records(spark, rows, cfg)
    assert recs.count() == 3
    assert candidate_pairs(recs).count() == 0


def test_blocking_drops_oversized_blocks(spark, cfg):
    small = cfg.with_overrides(blocking={"max_block_size": 3})
    rows = [rec("online", str(i), "Sam", "Jones", postcode="AB1 2CD") for i in range(4)]
    rows += [rec("pos", "x", "Kim", "Wu", postcode="ZZ1 1ZZ"), rec("pos", "y", "Kim", "Wu", postcode="ZZ1 1ZZ")]
    pairs = {(r[0], r[1]) for r in candidate_pairs(_records(spark, rows, small)).collect()}
    assert pairs == {("pos:x", "pos:y")}


# -- comparisons and rules ------------------------------------------------------------------------------------------------
LEEDS = {"addr": "1 Mill Road", "city": "Leeds", "postcode": "LS1 4AP"}
YORK = {"addr": "9 Park Lane", "city": "York", "postcode": "YO1 7HH"}  # another address, another town: a move
LEVEL_CASES = [
    # (left record kwargs, right record kwargs, comparison, expected level)
    ({"first": "John"}, {"first": "john"}, "first_name", "exact"),
    ({"first": "Bob"}, {"first": "Robert"}, "first_name", "nickname"),
    ({"first": "Jonathon"}, {"first": "Jonathan"}, "first_name", "fuzzy"),
    ({"first": "Catherine"}, {"first": "Kathryn"}, "first_name", "nickname"),
    ({"first": "J"}, {"first": "Julia"}, "first_name", "initial"),
    ({"first": "Emma"}, {"first": "Emam"}, "first_name", "fuzzy"),            # transposition
    ({"first": "Nat"}, {"first": "Natlie"}, "first_name", "fuzzy"),           # prefix
    ({"first": "Sammy"}, {"first": "Samantha"}, "first_name", "nickname"),    # a nickname of several names
    ({"first": "Olivia"}, {"first": "Oliver"}, "first_name", "different"),    # two edits that change the sound
    ({"first": "Anna"}, {"first": "Zoe"}, "first_name", "different"),
    ({"first": None}, {"first": "Zoe"}, "first_name", "null"),
    ({"first": "Smith", "last": "John"}, {"first": "John", "last": "Smith"}, "first_name", "exact"),
    ({"last": "Smith"}, {"last": "Smyth"}, "last_name", "fuzzy"),
    ({"last": "Smith-Jones"}, {"last": "Jones"}, "last_name", "fuzzy"),
    ({"last": "Ashcroft"}, {"last": "Ashcraft"}, "last_name", "fuzzy"),
    ({"last": "Brown"}, {"last": "Green"}, "last_name", "different"),
    ({"dob": dt.date(1980, 5, 1)}, {"dob": dt.date(1980, 5, 1)}, "date_of_birth", "exact"),
    ({"dob": dt.date(1980, 5, 1)}, {"dob": dt.date(1980, 1, 5)}, "date_of_birth", "typo"),
    ({"dob": dt.date(1980, 5, 1)}, {"dob": dt.date(1980, 5, 7)}, "date_of_birth", "typo"),
    ({"dob": dt.date(1980, 5, 1)}, {"dob": dt.date(1980, 11, 20)}, "date_of_birth", "same_year"),
    ({"dob": dt.date(1980, 5, 1)}, {"dob": dt.date(1991, 11, 20)}, "date_of_birth", "different"),
    ({"email": "a.b@x.com"}, {"email": "A.B@x.com"}, "email", "exact"),
    ({"email": "jane.doe@x.com"}, {"email": "janedoe@y.org"}, "email", "same_local_part"),
    ({"email": "jane@x.com"}, {"email": "jnae@x.com"}, "email", "fuzzy"),
    ({"phone": "+447700900123"}, {"phone": "+447700900123"}, "phone", "exact"),
    ({"phone": "+447700900123"}, {"phone": "+353700900123"}, "phone", "last_digits"),
    ({"postcode": "SW1A 1AA"}, {"postcode": "sw1a1aa"}, "postcode", "exact"),
    ({"postcode": "SW1A 1AA"}, {"postcode": "SW1A 2BB"}, "postcode", "district"),
    ({"postcode": "SW1A 1AA"}, {"postcode": "M1 1AE"}, "postcode", "different"),
    ({"postcode": "75001", "country": "FR"}, {"postcode": "75001", "country": "FR"}, "postcode", "district"),
    ({"addr": "12 High Street"}, {"addr": "12 high st"}, "address", "exact"),
    ({"addr": "12 High Street"}, {"addr": "12 Hihg St"}, "address", "fuzzy"),
    ({"addr": "12 High Street"}, {"addr": "12 Mill Lane"}, "address", "same_number"),
    ({"city": "London"}, {"city": "Lodnon"}, "city", "fuzzy"),
    ({"city": "London"}, {"city": "Leeds"}, "city", "different"),
    # initials of a nickname, typos of a nickname's full form, a typo on each side
    ({"first": "L."}, {"first": "Olivia"}, "first_name", "initial"),         # Liv. -> L.
    ({"first": "B"}, {"first": "Rebecca"}, "first_name", "initial"),         # Becky
    ({"first": "T"}, {"first": "Rebecca"}, "first_name", "different"),
    ({"first": "Jmaes"}, {"first": "Jim"}, "first_name", "fuzzy"),            # a typo of James, whom Jim stands for
    ({"first": "Ollivia"}, {"first": "Livvy"}, "first_name", "fuzzy"),
    ({"first": "Jmes"}, {"first": "Tom"}, "first_name", "different"),
    ({"first": "Paddy"}, {"first": "Padraig"}, "first_name", "nickname"),
    ({"first": "Sarqh"}, {"first": "Sarrah"}, "first_name", "similar"),       # a typo on each record
    ({"first": "Harry"}, {"first": "Henry"}, "first_name", "different"),
    # a mailbox name made of the names only is shared by namesakes; one with more in it is evidence
    ({"first": "Jane", "last": "Doe", "email": "jane.doe@x.com"}, {"first": "Jane", "last": "Doe", "email": "janedoe@y.org"},
     "email", "name_local_part"),
    ({"first": "Jane", "last": "Doe", "email": "jdoe@x.com"}, {"first": "Jane", "last": "Doe", "email": "jdoe@y.org"},
     "email", "name_local_part"),
    ({"first": "Jane", "last": "Doe", "email": "jane.doe85@x.com"}, {"first": "Jane", "last": "Doe", "email": "janedoe85@y.org"},
     "email", "same_local_part"),
    ({"email": "smith12@x.com"}, {"email": "smith98@x.com"}, "email", "different"),  # two mailboxes, not a typo
    ({"email": "smith12@x.com"}, {"email": "smtih12@x.com"}, "email", "fuzzy"),      # a transposition
    ({"addr": "12 High Street"}, {"addr": "14 High Street"}, "address", "different"),  # another house
    # once the postcodes differ, a different street and town are not counted again
    (LEEDS, YORK, "address", "null"),
    (LEEDS, YORK, "city", "null"),
    (LEEDS, {**LEEDS, "postcode": "LS2 4AP"}, "address", "exact"),
    (LEEDS, {**LEEDS, "addr": "9 Park Lane"}, "address", "different"),
]


def test_comparison_levels(spark, cfg):
    # every case in one frame: case i is the pair (online:l<i>, pos:r<i>)
    rows, pair_rows = [], []
    for i, (left, right, _, _) in enumerate(LEVEL_CASES):
        rows += [rec("online", f"l{i}", **left), rec("pos", f"r{i}", **right)]
        pair_rows.append((f"online:l{i}", f"pos:r{i}"))
    recs = _records(spark, rows, cfg)
    pairs = spark.createDataFrame(pair_rows, "left_key string, right_key string")
    levels = comparison_levels()
    got = {
        r["left_key"]: r for r in attach_features(pairs, recs).select("left_key", *[e.alias(k) for k, e in levels.items()]).collect()
    }
    failures = [
        (left, right, comparison, expected, got[f"online:l{i}"][comparison])
        for i, (left, right, comparison, expected) in enumerate(LEVEL_CASES)
        if got[f"online:l{i}"][comparison] != expected
    ]
    assert not failures


def _score(spark, cfg, rows):
    recs = _records(spark, rows, cfg)
    scored = apply_rules(score_pairs(attach_features(candidate_pairs(recs), recs), config=cfg), config=cfg)
    return {(r["left_key"], r["right_key"]): r for r in scored.collect()}


def test_deterministic_rules_and_family_veto(spark, cfg):
    rows = [
        rec("online", "1", "Ann", "Lee", email="lee.family@mail.com", dob=dt.date(1970, 1, 1) + dt.timedelta(days=40)),
        rec("pos", "1", "Annie", "Lee", email="lee.family@mail.com", card="C1"),
        rec("pos", "2", "Tom", "Lee", email="lee.family@mail.com", dob=dt.date(2001, 6, 6)),
        rec("pos", "3", "Ann", "Park", card="C1"),
        rec("pos", "4", "Zed", "Quinn", card="C1"),
        # a household: surname, address, postcode and landline shared, first names clearly different
        rec("online", "h1", "Susan", "Alexander", phone="+441313188777", addr="135 Orchard Avenue", city="Glasgow", postcode="G6 1ST"),
        rec("pos", "h2", "William", "Alexander", phone="+441313188777", addr="135 Orchard Ave", city="Glasgow", postcode="G6 1ST"),
    ]
    got = _score(spark, cfg, rows)
    assert got[("online:h1", "pos:h2")]["match_rule"] is None, "a household is two people"
    assert got[("online:1", "pos:1")]["match_rule"] == "exact_email"
    assert got[("online:1", "pos:1")]["match_score"] == 1.0
    assert got[("pos:1", "pos:3")]["match_rule"] == "exact_loyalty_card", "a changed surname alone does not veto"
    assert got[("pos:1", "pos:4")]["match_rule"] is None, "different first and last name veto a shared card"
    # Ann (1970) and Tom (2001) share the family email: first name and dob disagree -> vetoed, and no probabilistic link
    assert got[("online:1", "pos:2")]["match_rule"] is None


def test_probabilistic_scores_and_term_frequency(spark, cfg):
    cfg = cfg.with_overrides(term_frequency={"min_u": 0.00001, "max_u": 0.9})  # a tiny population: no clamping
    rows = [
        rec("online", "1", "Jonathan", "Quibell", dob=dt.date(1985, 3, 9), postcode="LS1 4AP"),
        rec("pos", "1", "Jonathon", "Quibell", dob=dt.date(1985, 3, 9), postcode="LS1 4AP"),
        rec("online", "2", "Zed", "Quibell", dob=dt.date(1962, 7, 2), postcode="LS1 4AP"),
    ]
    # many Smiths make "smith" common: an exact match on it weighs less than on "quibell"
    rows += [rec("online", f"s{i}", f"N{i}", "Smith") for i in range(30)]
    rows += [rec("online", "j1", "Jo", "Smith", dob=dt.date(1990, 1, 1)), rec("pos", "j1", "Jo", "Smith", dob=dt.date(1990, 1, 1))]
    got = _score(spark, cfg, rows)
    same = got[("online:1", "pos:1")]
    assert same["match_rule"] == "fellegi_sunter" and same["match_probability"] > 0.99
    assert same["lvl_first_name"] == "fuzzy"
    family = got[("online:1", "online:2")]
    assert family["match_rule"] is None and family["match_probability"] < 0.5
    common = got[("online:j1", "pos:j1")]
    assert common["w_last_name"] < same["w_last_name"], "term frequency: common surname weighs less"


def test_precision_guards_namesakes_and_households(spark, cfg):
    rows = [
        # namesakes: same common name, mailbox names made of the name at other domains, other towns
        rec("online", "n1", "James", "Smith", email="jamessmith@gmail.com", postcode="LS1 4AP", addr="3 Mill Road", city="Leeds"),
        rec("pos", "n2", "James", "Smith", email="james.smith@hotmail.co.uk", postcode="M1 1AE", addr="8 Park Lane", city="Manchester"),
        rec("online", "n3", "James", "Smith", email="jsmith@yahoo.co.uk", phone="+447700900001"),
        rec("pos", "n4", "James", "Smith", email="jsmith@outlook.com", phone="+447700900002"),
        # a household: one address, landline and surname; the first names are two edits apart but both real names
        rec("online", "h1", "Harry", "Cole", phone="+441134960000", addr="5 Elm Grove", city="Leeds", postcode="LS6 2AB"),
        rec("pos", "h2", "Henry", "Cole", phone="+441134960000", addr="5 Elm Grove", city="Leeds", postcode="LS6 2AB"),
        rec("online", "h3", "Olivia", "Cole", addr="5 Elm Grove", city="Leeds", postcode="LS6 2AB", dob=dt.date(1990, 4, 4)),
        rec("pos", "h4", "Oliver", "Cole", addr="5 Elm Grove", city="Leeds", postcode="LS6 2AB", dob=dt.date(1990, 4, 4)),
    ]
    rows += [rec("online", f"f{i}", f"N{i}", "Smith") for i in range(10)] + [rec("online", f"j{i}", "James", f"L{i}") for i in range(10)]
    got = _score(spark, cfg, rows)
    linked = {k for k, r in got.items() if r["match_rule"] is not None}
    assert ("online:n1", "pos:n2") not in linked, "namesakes with name-built mailboxes at other domains"
    assert ("online:n3", "pos:n4") not in linked, "namesakes with different phones"
    assert got[("online:n1", "pos:n2")]["lvl_email"] == "name_local_part"
    assert ("online:h1", "pos:h2") not in linked and ("online:h3", "pos:h4") not in linked, "a household is two people"


def test_typo_on_each_record_and_nickname_initial_still_link(spark, cfg):
    rows = [
        rec("online", "1", "Sarqh", "Lomax", email="s.lomax@x.com", phone="+447700900111", postcode="LS1 4AP", addr="3 Mill Road"),
        rec("pos", "1", "Sarrah", "Lomax", email="s.lomax@x.com", phone="+447700900111", postcode="LS1 4AP", addr="3 Mill Rd"),
        rec("online", "2", "Olivia", "Quayle", dob=dt.date(1984, 2, 3), postcode="YO1 7HH", addr="9 Park Lane"),
        rec("pos", "2", full="Quayle, L.", dob=dt.date(1984, 2, 3), postcode="YO1 7HH", addr="9 Park Lane"),
    ]
    got = _score(spark, cfg, rows)
    assert got[("online:1", "pos:1")]["lvl_first_name"] == "similar"
    assert got[("online:1", "pos:1")]["match_rule"] == "exact_email", "not vetoed as a different first name"
    assert got[("online:2", "pos:2")]["lvl_first_name"] == "initial"
    assert got[("online:2", "pos:2")]["match_rule"] == "fellegi_sunter"


def test_name_typos_are_learned_from_the_population(spark, cfg):
    # one spelling per row, as many rows as the count: David is common, its typos rare; Mark and Mary are both common
    counts = {"david": 40, "davdi": 1, "dzvid": 2, "mark": 40, "mary": 30, "lena": 20, "lea": 2, "ed": 1, "eda": 40, "zoe": 5, "zeo": 1}
    names = spark.createDataFrame([(n,) for n, k in counts.items() for _ in range(k)], "f_first string")
    got = {(r["_v"], r["_w"]) for r in name_typo_fixes(names, "f_first", config=cfg).collect()}
    assert got == {("davdi", "david"), ("dzvid", "david")}, (
        "mark/mary: both common; lea: only 10x rarer than lena; ed: too short; zoe: too few records to be a reference"
    )
    stricter = cfg.with_overrides(name_typos={"min_ratio": 50})
    assert name_typo_fixes(names, "f_first", config=stricter).count() == 0


def test_typos_of_one_name_on_each_record_compare_as_fuzzy(spark, cfg):
    rows = [
        # both first names mistyped differently (two edits apart): without the population they are "different" and
        # the shared email would be vetoed as a household's
        rec("online", "1", "Davdi", "Pike", email="d.pike@x.com", phone="+447700900222"),
        rec("pos", "1", "Dzvid", "Pike", email="d.pike@x.com", phone="+447700900222"),
        # a typo of a nickname's full form against the nickname, beyond one edit of it
        rec("online", "2", "Katherie", "Rowe", email="k.rowe@x.com", dob=dt.date(1979, 5, 6)),
        rec("pos", "2", "Katie", "Rowe", email="k.rowe@x.com", dob=dt.date(1979, 5, 6)),
        # surnames: a swap of two letters (no population needed), and a typo on each record of a common surname
        rec("online", "3", "Orla", "Kelly", dob=dt.date(1990, 1, 2), postcode="D02 X285"),
        rec("pos", "3", "Orla", "Kelyl", dob=dt.date(1990, 1, 2), postcode="D02 X285"),
        rec("online", "4", "Ian", "Daies", dob=dt.date(1960, 8, 9), postcode="CF10 1AA"),
        rec("pos", "4", "Ian", "Davise", dob=dt.date(1960, 8, 9), postcode="CF10 1AA"),
    ]
    rows += [rec("online", f"d{i}", "David", f"Q{i}") for i in range(20)]
    rows += [rec("online", f"k{i}", "Katherine", f"Q{i}") for i in range(20)]
    rows += [rec("online", f"v{i}", f"N{i}", "Davies") for i in range(20)]
    got = _score(spark, cfg, rows)
    for i, comparison in ((1, "lvl_first_name"), (2, "lvl_first_name"), (3, "lvl_last_name"), (4, "lvl_last_name")):
        assert got[(f"online:{i}", f"pos:{i}")][comparison] == "fuzzy", i
    assert got[("online:1", "pos:1")]["match_rule"] == "exact_email"
    assert got[("online:2", "pos:2")]["match_rule"] == "exact_email"
    # the same pair without the population that makes David common: two different names, the email is vetoed
    alone = _score(spark, cfg, rows[:2])
    assert alone[("online:1", "pos:1")]["lvl_first_name"] == "different"
    assert alone[("online:1", "pos:1")]["match_rule"] is None


CANDIDATES = (
    "left_key string, right_key string, match_weight double, match_probability double, match_score double, "
    "match_rule string, is_strong boolean, best_score double"
)


def _candidate(left, right, p, rule=None):
    best = None if left.split(":")[0] == right.split(":")[0] else (1.0 if rule and rule.startswith("exact_") else p)
    return (left, right, 0.0, p, p, rule, False, best)


def test_best_match_per_system(spark, cfg):
    rows = [
        _candidate("online:a", "pos:b", 0.5),                             # alone: a best match
        _candidate("online:c", "pos:d", 0.5), _candidate("online:c", "pos:e", 0.45),  # c has two: neither
        _candidate("online:f", "pos:g", 0.5), _candidate("online:h", "pos:g", 0.1, "exact_email"),  # g is h's
        _candidate("online:i", "pos:j", 0.5), _candidate("online:i", "pos:k", 0.29),  # k is 0.21 lower: j wins
        _candidate("online:l", "online:m", 0.5),                          # one system: not a best match
        _candidate("online:n", "pos:o", 0.25),                            # below min_probability
        _candidate("online:q", "pos:r", 0.9, "fellegi_sunter"),           # already a link
        _candidate("pos:s", "online:t", 0.6), _candidate("online:t", "pos:u", 0.6),  # a tie: neither
    ]
    candidates = spark.createDataFrame(rows, CANDIDATES)
    got = {(r["left_key"], r["right_key"]): r for r in best_match_links(candidates, config=cfg).collect()}
    assert set(got) == {("online:a", "pos:b"), ("online:i", "pos:j")}
    link = got[("online:a", "pos:b")]
    assert link["match_rule"] == BEST_MATCH_RULE and link["match_score"] == 0.5 and link["is_strong"] is False
    # margin 0.2 -> 0.3: k (0.29) now stops j; disabled: nothing
    wider = cfg.with_overrides(best_match={"margin": 0.25})
    assert {(r["left_key"], r["right_key"]) for r in best_match_links(candidates, config=wider).collect()} == {("online:a", "pos:b")}
    off = cfg.with_overrides(best_match={"enabled": False})
    assert best_match_links(candidates, config=off).count() == 0


def test_best_match_config_is_checked(cfg):
    _assert_rejected(cfg, lambda d: d["best_match"].update(margin=0.4), "margin must be below")
    _assert_rejected(cfg, lambda d: d["best_match"].update(min_probability=0.95), "above scoring.match_threshold")


def test_prior_falls_as_the_population_grows(spark, cfg):
    pair = [rec("online", "a", "Zia", "Quinlan", dob=dt.date(1971, 3, 3)), rec("pos", "a", "Zia", "Quinlan", dob=dt.date(1971, 3, 3))]
    cfg = cfg.with_overrides(term_frequency={"min_u": 0.01, "max_u": 0.01})  # name weights independent of the population
    fillers = lambda n: [rec("online", f"x{i}", f"F{i}", f"L{i}") for i in range(n)]  # noqa: E731
    small_cfg = cfg.with_overrides(scoring={"prior_match_probability": 0.5, "prior_matches_per_record": 0.68})
    small = _score(spark, small_cfg, pair + fillers(30))[("online:a", "pos:a")]
    large = _score(spark, small_cfg, pair + fillers(500))[("online:a", "pos:a")]
    # 32 records -> 2^5, 502 records -> 2^8.5: the prior odds fall by ~3.5 bits, the evidence is the same
    evidence = lambda r: r["match_weight"] - r["prior_weight"]  # noqa: E731
    assert abs(evidence(small) - evidence(large)) < 1e-9
    assert small["prior_weight"] - large["prior_weight"] > 3.0
    fixed = _score(spark, cfg.with_overrides(scoring={"prior_matches_per_record": None}), pair)[("online:a", "pos:a")]
    assert fixed["prior_weight"] == pytest.approx(math.log2(cfg.scoring.prior_match_probability / (1 - cfg.scoring.prior_match_probability)))


# -- clustering ---------------------------------------------------------------------------------------------------------
def _links(spark, rows):
    return spark.createDataFrame(
        [(a, b, 0.0, s, s, "r", strong) for a, b, s, strong in rows],
        "left_key string, right_key string, match_weight double, match_probability double, match_score double, "
        "match_rule string, is_strong boolean",
    )


def _cc(spark, settings, nodes, links):
    from flows.identity import Stager, connected_components

    stage = Stager(spark, settings, "test")
    node_df = spark.createDataFrame([(n,) for n in nodes], "node string")
    out = {r["node"]: r["label"] for r in connected_components(node_df, links, stage=stage, max_iterations=20).collect()}
    stage.cleanup()
    return out


def test_connected_components_long_chain(spark, settings):
    nodes = [f"n{i:02d}" for i in range(12)]
    chain = [(nodes[i + 1], nodes[i], 1.0, True) for i in range(11)] + [("x1", "x2", 1.0, True)]
    labels = _cc(spark, settings, nodes + ["x1", "x2", "lonely"], _links(spark, chain))
    assert {labels[n] for n in nodes} == {"n00"}
    assert labels["x1"] == labels["x2"] == "x1"
    assert labels["lonely"] == "lonely"


def _guarded(spark, settings, nodes, link_rows, cfg):
    from flows.identity import Stager, _cluster

    stage = Stager(spark, settings, "guard")
    scope = spark.createDataFrame([(n,) for n in nodes], "record_key string")
    _, clusters = _cluster(scope, _links(spark, link_rows), cfg, stage)
    out = {r["record_key"]: (r["cluster_key"], r["guard"]) for r in clusters.collect()}
    stage.cleanup()
    return out


def test_weak_bridge_does_not_merge_two_people(spark, settings, cfg):
    # a1-a2 and b1-b2 are strong pairs; x is weakly like both; a2-b1 is one weak link between two clusters
    rows = [("a1", "a2", 1.0, True), ("b1", "b2", 1.0, True), ("a1", "x", 0.97, False), ("b1", "x", 0.96, False),
            ("a2", "b1", 0.99, False)]
    got = _guarded(spark, settings, ["a1", "a2", "b1", "b2", "x"], rows, cfg)
    assert got["a1"][0] == got["a2"][0] == got["x"][0], "x follows its best link only"
    assert got["b1"][0] == got["b2"][0] != got["a1"][0], "one weak record pair cannot bridge two clusters"


def test_weak_links_with_support_merge(spark, settings, cfg):
    rows = [("a1", "a2", 1.0, True), ("b1", "b2", 1.0, True), ("a1", "b1", 0.97, False), ("a2", "b2", 0.96, False)]
    got = _guarded(spark, settings, ["a1", "a2", "b1", "b2"], rows, cfg)
    assert len({v[0] for v in got.values()}) == 1


def test_over_merge_guard_caps_cluster_size(spark, settings, cfg):
    small = cfg.with_overrides(clustering={"max_cluster_size": 3})
    # strong pairs p, q; weak singletons hanging on p -> merged size 5 > 3 falls back to strong parts
    rows = [("p1", "p2", 1.0, True), ("p1", "s1", 0.97, False), ("p2", "s2", 0.97, False), ("p1", "s3", 0.97, False)]
    # a strong chain of 4 > 3 falls apart into records
    rows += [("c1", "c2", 1.0, True), ("c2", "c3", 1.0, True), ("c3", "c4", 1.0, True)]
    nodes = ["p1", "p2", "s1", "s2", "s3", "c1", "c2", "c3", "c4"]
    got = _guarded(spark, settings, nodes, rows, small)
    assert got["p1"] == got["p2"] == ("p1", "split_to_strong")
    assert got["s1"] == ("s1", "split_to_strong")
    assert {got[c] for c in ("c1", "c2", "c3", "c4")} == {(c, "split_to_records") for c in ("c1", "c2", "c3", "c4")}


# -- ids ---------------------------------------------------------------------------------------------------------------
def test_id_rules_merge_keeps_oldest_and_split_keeps_majority(spark):
    ts = lambda d: dt.datetime(2025, 1, d)  # noqa: E731
    members = spark.createDataFrame(
        [("r1", "A", ts(1)), ("r2", "A", ts(2)), ("r3", "A", ts(3)),       # merge of g_old and g_new
         ("s1", "S1", ts(5)), ("s2", "S1", ts(6)), ("s3", "S2", ts(4))],  # split of g_s: 2 vs 1 record
        "record_key string, cluster_key string, first_ts timestamp",
    )
    previous = spark.createDataFrame(
        [("r1", "g_new"), ("r2", "g_old"), ("r3", "g_old"), ("s1", "g_s"), ("s2", "g_s"), ("s3", "g_s")],
        "record_key string, golden_id string",
    )
    prev_golden = spark.createDataFrame(
        [("g_new", ts(1)), ("g_old", dt.datetime(2024, 1, 1)), ("g_s", ts(4))], "golden_id string, first_seen timestamp"
    )
    kept = {r["cluster_key"]: r["golden_id"] for r in keep_existing_ids(members, previous, prev_golden).collect()}
    assert kept == {"A": "g_old", "S1": "g_s"}, "merge keeps the oldest first_seen; split keeps the majority part"
    assigned = spark.createDataFrame(
        [("r1", "g_old", "exact_email"), ("r2", "g_old", "x"), ("r3", "g_old", "x"), ("s1", "g_s", "x"),
         ("s2", "g_s", "x"), ("s3", "gc_new", "singleton")],
        "record_key string, golden_id string, match_rule string",
    )
    surviving = spark.createDataFrame([("g_old",), ("g_s",), ("gc_new",)], "golden_id string")
    changes = {(r["change_type"], r["old_golden_id"], r["new_golden_id"], r["records_moved"], r["match_rules"])
               for r in identity_changes(previous, assigned, surviving, survivor_rule=SURVIVOR_RULES).collect()}
    assert changes == {("merge", "g_new", "g_old", 1, "exact_email"), ("split", "g_s", "gc_new", 1, "singleton")}


def test_split_tie_goes_to_the_oldest_record(spark):
    members = spark.createDataFrame(
        [("a", "C1", dt.datetime(2025, 3, 1)), ("b", "C2", dt.datetime(2025, 2, 1))],
        "record_key string, cluster_key string, first_ts timestamp",
    )
    previous = spark.createDataFrame([("a", "g"), ("b", "g")], "record_key string, golden_id string")
    prev_golden = spark.createDataFrame([("g", dt.datetime(2025, 2, 1))], "golden_id string, first_seen timestamp")
    kept = {r["cluster_key"]: r["golden_id"] for r in keep_existing_ids(members, previous, prev_golden).collect()}
    assert kept == {"C2": "g"}


# -- survivorship ----------------------------------------------------------------------------------------------------------
def _golden(spark, cfg, rows):
    df = spark.createDataFrame(rows, SCHEMA).withColumn("golden_id", F.lit("g")).withColumn(
        "record_key", F.concat_ws(":", "source_system", "source_customer_id")
    )
    return build_golden(df, config=cfg).collect()[0]


def test_survivorship_strategies(spark, cfg):
    old, new = dt.datetime(2024, 1, 1), dt.datetime(2025, 6, 1)
    rows = [
        rec("online", "1", "Jon", "Smith", email="old@x.com", phone="+441", dob=dt.date(1980, 1, 2), addr="1 Old Rd",
            city="Leeds", postcode="LS1 1AA", created=old),
        rec("online", "2", "Jonathan", None, email="new@x.com", phone=None, dob=dt.date(1980, 2, 1), addr="9 New St",
            city=None, postcode="M1 1AE", created=new),
        rec("pos", "3", "J", "Smyth", email=None, dob=dt.date(1980, 1, 2), card="C9", created=old - dt.timedelta(days=1)),
    ]
    g = _golden(spark, cfg, rows)
    assert g["first_name"] == "Jonathan"                     # most_complete
    assert g["last_name"] == "Smith"                         # most_recent_non_null (record 2 has none)
    assert g["email"] == "new@x.com" and g["phone_e164"] == "+441"
    assert g["date_of_birth"] == dt.date(1980, 1, 2)        # source_priority: pos first
    assert (g["address_line1"], g["city"], g["postcode"]) == ("9 New St", None, "M1 1AE")  # one record's address
    assert g["loyalty_card"] == "C9"
    assert g["source_record_count"] == 3 and g["source_systems"] == ["online", "pos"]
    assert g["first_seen"] == old - dt.timedelta(days=1) and g["last_seen"] == new
    assert g["full_name"] == "Jonathan Smith"


CONSENT_CASES = [
    # (list of (opt_in, updated_at)), expected
    ([(True, 1), (False, 2)], False),
    ([(False, 1), (True, 2)], True),                 # a newer opt-in is a real re-consent
    ([(False, 2), (True, 2)], False),                # same time: opt-out wins
    ([(False, None), (True, 5)], False),             # opt-out without a time counts as newest
    ([(True, None), (None, 3)], True),
    ([(None, 1)], None),
]


def test_consent_never_resurrected_by_older_opt_in(spark, cfg):
    rows = []
    for case, (events, _) in enumerate(CONSENT_CASES):
        for i, (opt, day) in enumerate(events):
            ts = dt.datetime(2025, 1, day) if day else None
            rows.append(rec("online", f"{case}-{i}", "A", "B", opt=opt, created=ts, updated=ts))
    df = spark.createDataFrame(rows, SCHEMA).withColumn("golden_id", F.split("source_customer_id", "-").getItem(0)).withColumn(
        "record_key", F.concat_ws(":", "source_system", "source_customer_id")
    )
    got = {int(r["golden_id"]): r["marketing_opt_in"] for r in build_golden(df, config=cfg).collect()}
    assert got == {case: expected for case, (_, expected) in enumerate(CONSENT_CASES)}
