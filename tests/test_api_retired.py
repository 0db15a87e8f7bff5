"""Retired golden ids (issues 4 and 7): a customer id retired by an identity merge answers 308 Permanent Redirect to
its current survivor on every customer route, chains are followed, cycles and ambiguous merges stay 404 (naming the
candidates), the key and scope are checked before any redirect, and a publication without gold.identity_changes still
loads. Gold is written with deltalake in tmp_path (api.sample_gold), as in test_api.py."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.repository import CHANGE_COLUMNS, retired_ids
from api.sample_gold import (
    PublishedTable,
    golden_id,
    publish_manifest,
    retired_golden_id,
    sample_identity_changes,
    write_identity_changes,
    write_sample_gold,
)
from api.schemas import (
    CustomerDetailPublic,
    LoyaltyPublic,
    ProblemPublic,
    RedirectPublic,
    SummaryPublic,
    VouchersPublic,
)
from api.security import hash_key
from lakehouse.settings import load_settings

pytestmark = pytest.mark.unit

N = 30
SURVIVOR = 5  # sample_identity_changes: X1 -> X2 (identity-r1), X2 -> G5 (identity-r2)
KEYS = {
    "reader": ("lh_retired-reader-key-0123456789abcdefghijklmnopq", ["read"]),
    "crm": ("lh_retired-crm-key-0123456789abcdefghijklmnopqrstu", ["read", "pii"]),
    "pii_only": ("lh_retired-pii-only-key-0123456789abcdefghijklmn", ["pii"]),
}
SUFFIXES = {"": CustomerDetailPublic, "/loyalty": LoyaltyPublic, "/vouchers": VouchersPublic, "/summary": SummaryPublic}
X = retired_golden_id


@pytest.fixture
def api_settings(settings):
    keys = json.dumps([{"name": n, "hash": hash_key(k), "scopes": s} for n, (k, s) in KEYS.items()])
    return load_settings(data_root=str(settings.data_root), api_keys=keys, api_poll_interval_s=0.1)


@pytest.fixture
def published(api_settings):
    """v1: sample gold without gold.identity_changes; v2: the same gold plus the sample merge history."""
    tables = write_sample_gold(api_settings, customers=N)
    assert publish_manifest(api_settings, tables) == 1
    with_changes = {**tables, "gold.identity_changes": write_identity_changes(api_settings, sample_identity_changes(
        survivor=SURVIVOR))}
    return tables, with_changes


def headers(key: str | None) -> dict[str, str]:
    return {"X-API-Key": KEYS[key][0]} if key else {}


def fetch(c: TestClient, path: str, key: str | None = "reader"):
    r = c.get(path, headers=headers(key))
    assert "x-manifest-version" in r.headers
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json", r.text
        assert ProblemPublic.model_validate(r.json()).status == r.status_code
    return r


@pytest.fixture
def client(api_settings, published):
    app = create_app(api_settings, start_polling=False)
    with TestClient(app, follow_redirects=False) as c:
        assert app.state.repository.refresh() is True
        assert publish_manifest(api_settings, published[1]) == 2
        assert app.state.repository.refresh() is True
        yield c


# ---------------------------------------------------------------------------------------------------------------
# The retired-id map, on its own
# ---------------------------------------------------------------------------------------------------------------
def changes_table(rows: list[tuple]) -> pa.Table:
    """(run_id, day, change_type, old, new) rows as gold.identity_changes."""
    return pa.Table.from_pylist(
        [{"run_id": r, "changed_at": dt.datetime(2026, 1, d, tzinfo=dt.timezone.utc) if d else None,
          "change_type": t, "old_golden_id": o, "new_golden_id": n} for r, d, t, o, n in rows],
        schema=pa.schema(list(CHANGE_COLUMNS.items())))


@pytest.mark.parametrize(
    ("rows", "current", "expected"),
    [
        # A -> B then B -> C: both reach C, each with the run that retired it.
        ([("r1", 1, "merge", "A", "B"), ("r2", 2, "merge", "B", "C")], {"C"},
         {"A": ("r1", ("B",), ("C",)), "B": ("r2", ("C",), ("C",))}),
        # Splits keep the old id on one part: no redirect.
        ([("r1", 1, "split", "A", "B")], {"A", "B"}, {}),
        # Current again: never redirected, and a chain stops there.
        ([("r1", 1, "merge", "A", "B"), ("r2", 2, "merge", "B", "C")], {"B", "C"}, {"A": ("r1", ("B",), ("B",))}),
        # A cycle ends (no survivor) instead of looping.
        ([("r1", 1, "merge", "A", "B"), ("r1", 1, "merge", "B", "A")], {"C"},
         {"A": ("r1", ("B",), ()), "B": ("r1", ("A",), ())}),
        # One run sends A's records to two customers: both named, none picked.
        ([("r1", 1, "merge", "A", "C"), ("r1", 1, "merge", "A", "D")], {"C", "D"}, {"A": ("r1", ("C", "D"), ("C", "D"))}),
        # Two targets that later merged into one survivor: not a guess, it redirects.
        ([("r1", 1, "merge", "A", "B"), ("r1", 1, "merge", "A", "C"), ("r2", 2, "merge", "C", "B")], {"B"},
         {"A": ("r1", ("B", "C"), ("B",)), "C": ("r2", ("B",), ("B",))}),
        # The latest run that retired an id counts (a null time is the oldest).
        ([("r0", None, "merge", "A", "D"), ("r2", 2, "merge", "A", "C"), ("r1", 1, "merge", "A", "B")], {"B", "C", "D"},
         {"A": ("r2", ("C",), ("C",))}),
        # Chain to an id that is nowhere: no survivor; self-merges and null ids are ignored.
        ([("r1", 1, "merge", "A", "Z"), ("r1", 1, "merge", "C", "C"), ("r1", 1, "merge", None, "C"),
          ("r1", 1, "MERGE", "E", None)], {"C"}, {"A": ("r1", ("Z",), ())}),
    ],
    ids=["chain", "split", "current-again", "cycle", "ambiguous", "converging", "latest-run", "dead-end"],
)
def test_retired_ids(rows, current, expected):
    found = retired_ids(changes_table(rows), current.__contains__)
    assert {k: (v.run_id, v.merged_into, v.survivors) for k, v in found.items()} == expected
    assert all(v.golden_id == k for k, v in found.items())


def test_retired_ids_of_an_empty_or_absent_table():
    assert retired_ids(pa.table({}), lambda gid: False) == {}
    assert retired_ids(changes_table([]), lambda gid: False) == {}


def test_long_chain_is_followed_without_recursion():
    rows = [("r", 1, "merge", f"A{i}", f"A{i + 1}") for i in range(5000)]
    found = retired_ids(changes_table(rows), {"A5000"}.__contains__)
    assert len(found) == 5000 and found["A0"].survivors == ("A5000",)


# ---------------------------------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", list(SUFFIXES))
@pytest.mark.parametrize(("retired", "run"), [(X(1), "identity-r1"), (X(2), "identity-r2")])
def test_retired_id_redirects_to_its_survivor(client, retired, run, suffix):
    r = fetch(client, f"/v1/customers/{retired}{suffix}")
    assert r.status_code == 308, r.text
    assert r.headers["location"] == f"/v1/customers/{golden_id(SURVIVOR)}{suffix}"
    assert r.headers["x-manifest-version"] == "2"
    assert r.headers["content-type"] == "application/json"
    body = RedirectPublic.model_validate(r.json())
    assert (body.golden_id, body.merged_into, body.changed_in_run) == (retired, golden_id(SURVIVOR), run)
    # Following it gives exactly what asking for the survivor gives.
    target = fetch(client, r.headers["location"])
    assert target.status_code == 200
    assert target.content == fetch(client, f"/v1/customers/{golden_id(SURVIVOR)}{suffix}").content
    SUFFIXES[suffix].model_validate(target.json())
    assert target.json()["golden_id"] == golden_id(SURVIVOR)


def test_a_client_following_redirects_lands_on_the_survivor(api_settings, published):
    app = create_app(api_settings, start_polling=False)
    with TestClient(app) as c:  # follows redirects, like most HTTP clients
        publish_manifest(api_settings, published[1])
        assert app.state.repository.refresh() is True
        r = c.get(f"/v1/customers/{X(1)}/loyalty", headers=headers("reader"))
        assert r.status_code == 200 and r.json()["golden_id"] == golden_id(SURVIVOR)
        assert [h.status_code for h in r.history] == [308]


def test_query_string_is_kept(client):
    r = fetch(client, f"/v1/customers/{X(1)}/vouchers?&")
    assert r.status_code == 308 and r.headers["location"] == f"/v1/customers/{golden_id(SURVIVOR)}/vouchers?&"


def test_current_unknown_split_and_current_again_ids(client):
    assert fetch(client, f"/v1/customers/{golden_id(SURVIVOR)}").status_code == 200
    # Split: customer 4 kept its id; customer 9 was merged once but is current again: both answered as themselves.
    for i in (4, 9):
        r = fetch(client, f"/v1/customers/{golden_id(i)}")
        assert r.status_code == 200 and r.json()["golden_id"] == golden_id(i)
    for suffix in SUFFIXES:
        r = fetch(client, f"/v1/customers/{X(42)}{suffix}")
        assert r.status_code == 404 and "location" not in r.headers
        assert r.json()["detail"] == f"No golden customer {X(42)} in publication v2."
        assert "candidates" not in r.json()


@pytest.mark.parametrize("suffix", list(SUFFIXES))
def test_ambiguous_merge_is_404_naming_the_candidates(client, suffix):
    r = fetch(client, f"/v1/customers/{X(3)}{suffix}")
    assert r.status_code == 404 and "location" not in r.headers
    problem = r.json()
    assert problem["candidates"] == [golden_id(7), golden_id(8)]
    assert golden_id(7) in problem["detail"] and golden_id(8) in problem["detail"]
    assert "identity-r3" in problem["detail"]


@pytest.mark.parametrize("retired", [X(4), X(5), X(6)])
def test_cycle_or_dead_end_is_404(client, retired):
    r = fetch(client, f"/v1/customers/{retired}")
    assert r.status_code == 404 and "location" not in r.headers
    assert "no customer in publication v2 succeeds it" in r.json()["detail"]


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("pii_only", 403)])
@pytest.mark.parametrize("fast_path", [True, False])
def test_key_and_scope_are_checked_before_any_redirect(api_settings, published, key, status, fast_path):
    app = create_app(api_settings, start_polling=False, fast_path=fast_path)
    with TestClient(app, follow_redirects=False) as c:
        publish_manifest(api_settings, published[1])
        assert app.state.repository.refresh() is True
        for suffix in SUFFIXES:
            r = fetch(c, f"/v1/customers/{X(1)}{suffix}", key=key)
            assert r.status_code == status and "location" not in r.headers
            assert golden_id(SURVIVOR) not in r.text and X(2) not in r.text
        bad = c.get(f"/v1/customers/{X(1)}", headers={"X-API-Key": "lh_not-a-configured-key"})
        assert bad.status_code == 401 and "location" not in bad.headers


def test_publication_without_identity_changes_loads_then_redirects_once_published(api_settings, published):
    tables, with_changes = published
    app = create_app(api_settings, start_polling=False)
    with TestClient(app, follow_redirects=False) as c:
        repo = app.state.repository
        assert repo.refresh() is True and repo.version == 1
        assert "gold.identity_changes" not in tables
        assert repo.snapshot.retired == {}
        r = fetch(c, f"/v1/customers/{X(1)}")
        assert r.status_code == 404 and r.json()["detail"] == f"No golden customer {X(1)} in publication v1."
        assert fetch(c, f"/v1/customers/{golden_id(1)}").status_code == 200
        assert publish_manifest(api_settings, with_changes) == 2
        assert repo.refresh() is True
        r = fetch(c, f"/v1/customers/{X(1)}")
        assert r.status_code == 308 and r.headers["x-manifest-version"] == "2"
        # A later publication without the table (older builder) drops the redirects again and still loads.
        assert publish_manifest(api_settings, tables) == 3
        assert repo.refresh() is True
        assert fetch(c, f"/v1/customers/{X(1)}").status_code == 404


def test_metrics_count_redirects_by_route_template(client):
    fetch(client, f"/v1/customers/{X(1)}")
    fetch(client, f"/v1/customers/{X(2)}/summary")
    fetch(client, f"/v1/customers/{X(2)}/summary")
    text = client.get("/metrics").text
    assert 'lakehouse_api_requests_total{method="GET",route="/v1/customers/{golden_id}",status="308"} 1' in text
    assert 'lakehouse_api_requests_total{method="GET",route="/v1/customers/{golden_id}/summary",status="308"} 2' in text


def test_access_log_names_the_template_not_the_ids(client, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="lakehouse.api.access"):
        fetch(client, f"/v1/customers/{X(1)}/loyalty")
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "lakehouse.api.access")
    assert "GET /v1/customers/{golden_id}/loyalty 308" in text
    assert X(1) not in text and golden_id(SURVIVOR) not in text


def test_openapi_documents_the_redirect(client):
    schema = client.get("/openapi.json").json()
    assert "RedirectPublic" in schema["components"]["schemas"]
    assert "candidates" in schema["components"]["schemas"]["ProblemPublic"]["properties"]
    for suffix in SUFFIXES:
        response = schema["paths"][f"/v1/customers/{{golden_id}}{suffix}"]["get"]["responses"]["308"]
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RedirectPublic"}
        assert {"Location", "X-Manifest-Version"} <= set(response["headers"])
    assert "308" not in schema["paths"]["/v1/customers/lookup"]["get"]["responses"]


def test_redirect_conforms_to_the_openapi_schema(api_settings, published):
    """Schemathesis validates real 308 and candidate-404 responses against the document (status, headers, body)."""
    import schemathesis

    app = create_app(api_settings, start_polling=False)
    publish_manifest(api_settings, published[1])
    assert app.state.repository.refresh() is True
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checked = 0
    for suffix in SUFFIXES:
        operation = schema[f"/v1/customers/{{golden_id}}{suffix}"]["GET"]
        for gid, status in ((X(1), 308), (X(3), 404)):
            case = operation.Case(path_parameters={"golden_id": gid}, headers=headers("reader"))
            response = case.call(allow_redirects=False)  # a requests-style session
            assert response.status_code == status
            case.validate_response(response)
            checked += 1
    assert checked == 8


@pytest.mark.flow
def test_redirects_from_the_change_log_the_identity_flow_writes(spark, settings):
    """gold.identity_changes as flows/identity.py writes it (ids.identity_changes + run_id/changed_at, appended with
    Sail): two runs, X10 merged into X11 then X11 into customer 3, and a split that keeps its id."""
    from deltalake import DeltaTable
    from pyspark.sql import functions as F

    from lakehouse import delta
    from lakehouse.catalog import IDENTITY_CHANGES
    from transforms.gold.identity.ids import SURVIVOR_RULES, identity_changes

    s = load_settings(data_root=str(settings.data_root), api_keys=json.dumps(
        [{"name": "reader", "hash": hash_key(KEYS["reader"][0]), "scopes": ["read"]}]))
    ids = "record_key string, golden_id string"
    runs = [  # (run_id, day, previous, assigned (+ match_rule), surviving ids)
        ("run-1", "2026-01-01", [("a", X(10)), ("b", X(11)), ("c", golden_id(4)), ("d", golden_id(4))],
         [("a", X(11), "exact_email"), ("b", X(11), "seed"), ("c", golden_id(4), "seed"), ("d", golden_id(6), "seed")],
         [X(11), golden_id(4), golden_id(6)]),
        ("run-2", "2026-01-02", [("a", X(11)), ("b", X(11)), ("e", golden_id(3))],
         [("a", golden_id(3), "exact_phone"), ("b", golden_id(3), "exact_phone"), ("e", golden_id(3), "seed")],
         [golden_id(3)]),
    ]
    for run_id, day, previous, assigned, surviving in runs:
        changes = identity_changes(
            spark.createDataFrame(previous, ids), spark.createDataFrame(assigned, f"{ids}, match_rule string"),
            spark.createDataFrame([(g,) for g in surviving], "golden_id string"), survivor_rule=SURVIVOR_RULES,
        ).select(F.lit(run_id).alias("run_id"), F.lit(day).cast("timestamp").alias("changed_at"), "*")
        delta.append(changes, IDENTITY_CHANGES, s)
    location = IDENTITY_CHANGES.location(s)
    log = DeltaTable(location)
    tables = write_sample_gold(s, customers=10)
    tables["gold.identity_changes"] = PublishedTable(location, log.version(), len(log.to_pyarrow_table()))
    publish_manifest(s, tables)
    app = create_app(s, start_polling=False)
    assert app.state.repository.refresh() is True
    retired = app.state.repository.snapshot.retired
    assert {k: (v.run_id, v.survivors) for k, v in retired.items()} == {
        X(10): ("run-1", (golden_id(3),)), X(11): ("run-2", (golden_id(3),))}
    with TestClient(app, follow_redirects=False) as c:
        r = fetch(c, f"/v1/customers/{X(10)}/vouchers")
        assert r.status_code == 308 and r.headers["location"] == f"/v1/customers/{golden_id(3)}/vouchers"
        assert r.json() == {"golden_id": X(10), "merged_into": golden_id(3), "changed_in_run": "run-1"}
        assert fetch(c, f"/v1/customers/{golden_id(4)}").status_code == 200  # the split kept its id
