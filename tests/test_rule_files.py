"""Every rule file under expectations/ (and the test examples) loads and validates; the schema rejects bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from expectations.rules import (
    RULES_DIR,
    RuleFileError,
    Suite,
    all_rule_files,
    load_rule_file,
    load_suite,
)

EXAMPLES_DIR = Path(__file__).parent / "data" / "rules"
# Discovered at collection time, so a rule file added later to expectations/ is picked up with no edit here.
REPO_RULE_FILES = all_rule_files()
EXAMPLE_RULE_FILES = all_rule_files(EXAMPLES_DIR)

pytestmark = pytest.mark.unit


def _check_suite(path: Path, suite: Suite) -> None:
    assert path.name in (f"{suite.table}.yaml", f"{suite.table}.yml")
    names = [r.name for r in suite.rules]
    assert len(names) == len(set(names))
    for rule in suite.rules:
        rule.to_gx()  # builds the GX expectation
        if rule.severity == "quarantine":
            assert rule.scope == "row" and rule.row_source in ("gx_index", "sql"), rule.name


@pytest.mark.parametrize("path", REPO_RULE_FILES, ids=lambda p: p.name)
def test_every_repo_rule_file_is_valid(path):
    suite = load_rule_file(path)
    _check_suite(path, suite)
    assert load_suite(suite.table) == suite


@pytest.mark.parametrize("path", EXAMPLE_RULE_FILES, ids=lambda p: p.name)
def test_every_example_rule_file_is_valid(path):
    _check_suite(path, load_rule_file(path))


def test_discovery_finds_yaml_files_in_expectations():
    yaml_on_disk = sorted(p for p in RULES_DIR.iterdir() if p.suffix in (".yaml", ".yml"))
    assert all_rule_files() == yaml_on_disk
    assert EXAMPLE_RULE_FILES, "the example rule file in tests/data/rules is missing"


def test_discovery_picks_up_files_added_later(tmp_path):
    assert all_rule_files(tmp_path) == []
    (tmp_path / "silver.later.yaml").write_text(
        "table: silver.later\ndescription: d\nrules:\n"
        "  - {name: a_not_null, expectation: expect_column_values_to_not_be_null, kwargs: {column: a},"
        " severity: warn, description: d}\n"
    )
    (tmp_path / "notes.txt").write_text("not a rule file")
    assert [p.name for p in all_rule_files(tmp_path)] == ["silver.later.yaml"]
    assert load_suite("silver.later", tmp_path).rules[0].name == "a_not_null"


GOOD_RULE = (
    "  - name: qty_range\n    expectation: expect_column_values_to_be_between\n"
    "    kwargs: {column: quantity, min_value: 0, max_value: 10}\n    severity: quarantine\n"
    "    description: Quantity is plausible.\n"
)


def _write(tmp_path: Path, body: str, name: str = "silver.bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


BAD_FILES = [
    ("unknown top-level key", "table: silver.bad\ndescription: d\nowner: me\nrules:\n" + GOOD_RULE, "owner"),
    ("unknown rule key", "table: silver.bad\ndescription: d\nrules:\n" + GOOD_RULE + "    level: high\n", "level"),
    ("bad severity", "table: silver.bad\ndescription: d\nrules:\n" + GOOD_RULE.replace("quarantine", "error"), "severity"),
    ("bad scope", "table: silver.bad\ndescription: d\nrules:\n" + GOOD_RULE + "    scope: batch\n", "scope"),
    (
        "unknown expectation",
        "table: silver.bad\ndescription: d\nrules:\n" + GOOD_RULE.replace("expect_column_values_to_be_between", "expect_magic"),
        "unknown Great Expectations expectation",
    ),
    ("misspelt kwarg", "table: silver.bad\ndescription: d\nrules:\n" + GOOD_RULE.replace("max_value", "max_valu"), "max_valu"),
    ("missing description", "table: silver.bad\ndescription: d\nrules:\n" + GOOD_RULE.replace("    description: Quantity is plausible.\n", ""), "description"),
    ("duplicate names", "table: silver.bad\ndescription: d\nrules:\n" + GOOD_RULE + GOOD_RULE, "repeated: qty_range"),
    ("not snake_case", "table: silver.bad\ndescription: d\nrules:\n" + GOOD_RULE.replace("qty_range", "QtyRange"), "snake_case"),
    ("bad table name", "table: silverbad\ndescription: d\nrules:\n" + GOOD_RULE, "table"),
    ("no rules", "table: silver.bad\ndescription: d\nrules: []\n", "rules"),
    (
        "quarantine on an aggregate",
        "table: silver.bad\ndescription: d\nrules:\n  - {name: n, expectation: expect_table_row_count_to_be_between,"
        " kwargs: {min_value: 1}, severity: quarantine, description: d}\n",
        "cannot say which rows failed",
    ),
    (
        "quarantine at table scope",
        "table: silver.bad\ndescription: d\nrules:\n" + GOOD_RULE + "    scope: table\n",
        "needs scope row",
    ),
    (
        "SQL without {batch}",
        "table: silver.bad\ndescription: d\nrules:\n  - {name: n, expectation: unexpected_rows_expectation,"
        " kwargs: {unexpected_rows_query: 'SELECT * FROM t'}, severity: fail, description: d}\n",
        "{batch}",
    ),
    ("not a mapping", "- just\n- a list\n", "expected a mapping"),
    ("not YAML", "table: [unclosed\n", "not valid YAML"),
]


@pytest.mark.parametrize("body,expected", [(b, e) for _, b, e in BAD_FILES], ids=[n for n, _, _ in BAD_FILES])
def test_schema_rejects_bad_files_with_a_readable_message(tmp_path, body, expected):
    path = _write(tmp_path, body)
    with pytest.raises(RuleFileError) as err:
        load_rule_file(path)
    message = str(err.value)
    assert str(path) in message
    assert expected in message


def test_file_name_must_match_table(tmp_path):
    path = _write(tmp_path, "table: silver.other\ndescription: d\nrules:\n" + GOOD_RULE)
    with pytest.raises(RuleFileError, match="name the file silver.other.yaml"):
        load_rule_file(path)


def test_missing_rule_file_is_a_readable_error(tmp_path):
    with pytest.raises(RuleFileError, match="no rule file for silver.nothing"):
        load_suite("silver.nothing", tmp_path)


def test_good_file_loads_with_defaults(tmp_path):
    suite = load_rule_file(_write(tmp_path, "table: silver.bad\ndescription: d\nrules:\n" + GOOD_RULE))
    rule = suite.rules[0]
    assert (rule.scope, rule.severity, rule.row_source) == ("row", "quarantine", "gx_index")
    assert suite.for_scope("table") == []
    gx = rule.to_gx()
    assert gx.meta["rule"] == "qty_range" and gx.meta["severity"] == "quarantine"


def test_table_references_in_sql_resolve(tmp_path):
    suite = load_rule_file(_write(
        tmp_path,
        "table: gold.fact\ndescription: d\nrules:\n  - name: customer_exists\n"
        "    expectation: unexpected_rows_expectation\n"
        "    kwargs: {unexpected_rows_query: 'SELECT b.* FROM {batch} b LEFT ANTI JOIN {table:gold.dim_customer} c"
        " ON b.customer_key = c.customer_key'}\n"
        "    severity: fail\n    scope: table\n    description: Every fact row has its customer.\n",
        name="gold.fact.yaml",
    ))
    rule = suite.rules[0]
    assert rule.table_refs == ["gold.dim_customer"]
    query = rule.to_gx(resolve_table=lambda q: f"delta.`/w/{q.replace('.', '/')}`").unexpected_rows_query
    assert "delta.`/w/gold/dim_customer`" in query and "{batch}" in query
