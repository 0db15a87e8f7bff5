"""The customer-insights API over a small published gold in tmp_path (tables written with deltalake, manifest with
lakehouse.manifest): every endpoint, auth and scopes, masking, pagination, errors, limits, the access log, metrics,
reading exactly the published versions, and the switch to a new publication under concurrent requests."""

from __future__ import annotations

import ast
import json
import logging
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.sample_gold import (
    SEGMENTS,
    golden_id,
    loyalty_score,
    publish_manifest,
    retired_golden_id,
    sample_customer,
    sample_identity_changes,
    sample_postcode,
    write_identity_changes,
    write_sample_gold,
)
from api.schemas import (
    CustomerDetailPublic,
    CustomerPagePublic,
    LoyaltyPublic,
    ProblemPublic,
    ReadyPublic,
    SearchResultPublic,
    SummaryPublic,
    VouchersPublic,
)
from api.security import hash_key
from lakehouse.errors import ConfigError
from lakehouse.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
N = 120
KEYS = {
    "reader": ("lh_test-reader-key-0123456789abcdefghijklmnopqrstu", ["read"]),
    "crm": ("lh_test-crm-key-0123456789abcdefghijklmnopqrstuvwxyz", ["read", "pii"]),
    "pii_only": ("lh_test-pii-only-key-0123456789abcdefghijklmnopqrs", ["pii"]),
}

pytestmark = pytest.mark.unit


def tier_of(score: float) -> str:
    return "platinum" if score >= 75 else "gold" if score >= 50 else "silver" if score >= 25 else "bronze"


def keys_json() -> str:
    return json.dumps([{"name": n, "hash": hash_key(k), "scopes": s} for n, (k, s) in KEYS.items()])


@pytest.fixture
def api_settings(settings):
    return load_settings(data_root=str(settings.data_root), api_keys=keys_json(), api_poll_interval_s=0.1)


@pytest.fixture
def gold(api_settings):
    tables = write_sample_gold(api_settings, customers=N)
    assert publish_manifest(api_settings, tables) == 1
    return tables


def wait_ready(client: TestClient, version: int, timeout_s: float = 60.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        r = client.get("/ready")
        if r.status_code == 200 and r.json()["manifest_version"] >= version:
            return
        time.sleep(0.05)
    raise AssertionError(f"API did not serve manifest v{version} within {timeout_s}s: {client.get('/ready').text}")


@pytest.fixture
def client(api_settings, gold):
    with TestClient(create_app(api_settings)) as c:
        wait_ready(c, 1)
        yield c


def get(client: TestClient, path: str, key: str | None = "reader", **params):
    headers = {"X-API-Key": KEYS[key][0]} if key in KEYS else ({"X-API-Key": key} if key else {})
    r = client.get(path, params=params or None, headers=headers)
    assert "x-manifest-version" in r.headers, f"{path}: no X-Manifest-Version"
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json", r.text
        problem = ProblemPublic.model_validate(r.json())
        assert problem.status == r.status_code
    return r


# ---------------------------------------------------------------------------------------------------------------
# Architecture: no Spark anywhere in the API
# ---------------------------------------------------------------------------------------------------------------
def _imports(path: Path) -> list[str]:
    """Absolute module names a file imports (at any depth, including imports inside functions)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_nothing_under_api_imports_spark():
    files = sorted((REPO / "api").rglob("*.py"))
    assert len(files) >= 10
    offenders = [f"{p.relative_to(REPO)}: {n}" for p in files for n in _imports(p)
                 if n.split(".")[0] in ("pyspark", "pysail", "py4j") or n in ("lakehouse.spark", "lakehouse.delta")]
    assert not offenders, offenders


def test_service_modules_depend_only_on_the_lakehouse_core():
    """Architecture: the service (api/*.py) imports lakehouse core modules only, never flows/transforms/expectations."""
    allowed = {"lakehouse", "lakehouse.settings", "lakehouse.manifest", "lakehouse.catalog", "lakehouse.storage",
               "lakehouse.errors", "lakehouse.normalize"}
    offenders = [f"{p.name}: {n}" for p in sorted((REPO / "api").glob("*.py")) for n in _imports(p)
                 if n.split(".")[0] in ("flows", "transforms", "expectations", "generator")
                 or (n.split(".")[0] == "lakehouse" and n not in allowed)]
    assert not offenders, offenders


def test_serving_never_loads_spark(tmp_path):
    script = textwrap.dedent(f"""
        import json, sys, time
        from fastapi.testclient import TestClient
        from lakehouse.settings import load_settings
        from api.sample_gold import write_sample_gold, publish_manifest
        from api.app import create_app
        s = load_settings(data_root={str(tmp_path / 'lh')!r}, api_keys={keys_json()!r})
        publish_manifest(s, write_sample_gold(s, customers=20))
        with TestClient(create_app(s)) as c:
            for _ in range(300):
                if c.get("/ready").status_code == 200:
                    break
                time.sleep(0.05)
            r = c.get("/v1/customers/G000000001/summary", headers={{"X-API-Key": {KEYS['reader'][0]!r}}})
            assert r.status_code == 200, r.text
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "pysail", "py4j"))))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# ---------------------------------------------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------------------------------------------
def test_health_ready_and_openapi(client):
    assert get(client, "/health", key=None).json() == {"status": "ok"}
    ready = ReadyPublic.model_validate(get(client, "/ready", key=None).json())
    assert ready.manifest_version == 1 and ready.customers == N
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for p in ("/v1/customers", "/v1/customers/lookup", "/v1/customers/search", "/v1/customers/{golden_id}",
              "/v1/customers/{golden_id}/loyalty", "/v1/customers/{golden_id}/vouchers",
              "/v1/customers/{golden_id}/summary", "/health", "/ready", "/metrics"):
        assert p in paths, p
    assert paths["/v1/customers/{golden_id}"]["get"]["security"] == [{"ApiKey": []}]
    assert "security" not in paths["/health"]["get"]
    assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert schema["components"]["schemas"]["CustomerDetailPublic"]["examples"]


def test_customer_detail_masked_for_read_scope(client):
    i = 7
    body = CustomerDetailPublic.model_validate(get(client, f"/v1/customers/{golden_id(i)}").json())
    expected = sample_customer(i)
    assert body.golden_id == golden_id(i) and body.full_name == expected["full_name"]
    assert body.pii_masked is True
    assert body.email == "c***@example.com"
    assert body.phone_e164 == "+44*******007"
    assert body.address_line1 == "***"
    assert body.postcode == expected["postcode"].split(" ")[0] + " ***"
    assert body.date_of_birth is None
    assert body.city == expected["city"]
    assert body.source_systems == ["online", "pos"]
    assert [(s.source_system, s.source_customer_id) for s in body.sources] == [("online", "C0000007"), ("pos", "M0000007")]


def test_customer_detail_unmasked_with_pii_scope(client):
    i = 7
    body = CustomerDetailPublic.model_validate(get(client, f"/v1/customers/{golden_id(i)}", key="crm").json())
    expected = sample_customer(i)
    assert body.pii_masked is False
    for field in ("email", "phone_e164", "address_line1", "postcode"):
        assert getattr(body, field) == expected[field], field
    assert body.date_of_birth is not None


def test_customer_with_one_source(client):
    body = get(client, f"/v1/customers/{golden_id(4)}").json()  # i % 5 >= 3: online only
    assert [s["source_system"] for s in body["sources"]] == ["online"] and body["source_systems"] == ["online"]


def test_lookup_by_source_id(client):
    for source, sid in (("pos", "M0000042"), ("online", "C0000042")):
        body = CustomerDetailPublic.model_validate(
            get(client, "/v1/customers/lookup", source=source, source_id=sid).json())
        assert body.golden_id == golden_id(42)
    r = get(client, "/v1/customers/lookup", source="pos", source_id="M0000044")  # 44 % 5 == 4: no pos record
    assert r.status_code == 404 and "G0" not in r.json()["detail"]
    assert get(client, "/v1/customers/lookup", source="POS!", source_id="x").status_code == 422
    assert get(client, "/v1/customers/lookup", source="pos").status_code == 422


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"email": "  CUSTOMER7@Example.COM "}, [7]),
        ({"email": "customer 7@example.com"}, [7]),  # silver removes inner spaces too
        ({"phone": "07700 000007"}, [7]),
        ({"phone": "+44 (0)7700-000-007"}, [7]),
        ({"phone": "447700000007"}, [7]),
        ({"name": "jack smith", "postcode": sample_postcode(7).lower().replace(" ", "")}, [7]),
        ({"name": "SMITH, Jack", "postcode": sample_postcode(7)}, [7]),
        ({"name": "zoe", "postcode": sample_postcode(10)}, [10]),  # "Zoë": accents folded on both sides
        ({"name": "smith", "postcode": sample_postcode(0), "limit": "3"}, [0, 1, 2]),
        ({"email": "customer7@example.com", "postcode": sample_postcode(7)}, [7]),
        ({"email": "customer7@example.com", "postcode": "ZZ9 9ZZ"}, []),
        ({"email": "customer7@example.com", "phone": "07700 000008"}, []),
        ({"email": "nobody@example.com"}, []),
        ({"name": "jack", "postcode": "ZZ9 9ZZ"}, []),
    ],
)
def test_search_normalizes_like_the_pipeline(client, params, expected):
    body = SearchResultPublic.model_validate(get(client, "/v1/customers/search", **params).json())
    assert [c.golden_id for c in body.items] == [golden_id(i) for i in expected]
    assert body.count == len(expected)
    assert all(c.pii_masked for c in body.items)


@pytest.mark.parametrize(
    "params",
    [{}, {"postcode": "SW1A 0AA"}, {"name": "jack"}, {"limit": "5"}, {"email": "x"}, {"email": "a@b.c", "limit": "0"},
     {"email": "a@b.c", "limit": "51"}, {"name": "x" * 101, "postcode": "SW1A 0AA"}, {"phone": "1" * 33},
     {"emial": "jane@example.com"}, {"email": "jane@example.com", "page": "2"}],
)
def test_search_rejects_bad_parameters(client, params):
    r = get(client, "/v1/customers/search", **params)
    assert r.status_code == 422
    assert r.json()["errors"]
    # The problem never echoes the values sent.
    for value in params.values():
        if len(value) > 3:
            assert value not in r.text


def test_loyalty(client):
    i = 9
    body = LoyaltyPublic.model_validate(get(client, f"/v1/customers/{golden_id(i)}/loyalty").json())
    score = loyalty_score(i)
    assert body.loyalty_score == score and body.loyalty_tier == tier_of(score)
    assert [c.name for c in body.components] == ["rfm", "tenure", "channel", "value"]
    assert body.components[0].score == round(score * 0.9, 2) and body.components[0].weight == 0.4
    assert abs(sum(c.weight for c in body.components) - 1.0) < 1e-9
    assert str(body.as_of_date) == "2026-01-03"


def test_vouchers(client):
    body = VouchersPublic.model_validate(get(client, f"/v1/customers/{golden_id(11)}/vouchers").json())
    assert [v.rank for v in body.vouchers] == [1, 2, 3]
    assert body.vouchers[0].voucher_pct == 15.0 and body.vouchers[0].sku.startswith("SKU-")
    assert {v.reason for v in body.vouchers} <= {"buy_again", "frequently_bought_together", "category_affinity",
                                                "popular_in_segment"}
    assert str(body.vouchers[0].valid_from) == "2026-01-04" and str(body.vouchers[0].valid_to) == "2026-02-03"


def test_summary_is_read_from_gold(client, gold):
    from deltalake import DeltaTable

    i = 6
    body = SummaryPublic.model_validate(get(client, f"/v1/customers/{golden_id(i)}/summary").json())
    purchases = i % 12
    assert body.customer_segment == SEGMENTS[i % len(SEGMENTS)]
    assert body.activity.total_orders == purchases and body.activity.recency_days == i % 120
    assert [(c.channel, c.orders) for c in body.orders_by_channel] == [
        ("online", purchases - purchases // 3), ("store", purchases // 3)]
    assert body.loyalty_score == loyalty_score(i) and body.loyalty_tier == tier_of(loyalty_score(i))
    assert [s.sku for s in body.subscription_candidates] == [f"SKU-{(i * 17) % 5000:05d}"]  # i % 3 == 0
    # Favourite categories: independently aggregated from the published fact table.
    sales = DeltaTable(gold["gold.fact_sales"].location).to_pyarrow_table().to_pylist()
    per_cat: dict[str, list[float]] = defaultdict(list)
    for row in sales:
        if row["golden_id"] == golden_id(i) and row["line_type"] == "sale":
            per_cat[row["category_l1"]].append(row["net_amount"])
    expected = sorted(((-round(sum(v), 2), c, len(v)) for c, v in per_cat.items()))[:3]
    assert [(c.category, c.lines, c.net_revenue) for c in body.favourite_categories] == [
        (c, n, -neg) for neg, c, n in expected]
    no_subs = SummaryPublic.model_validate(get(client, f"/v1/customers/{golden_id(7)}/summary").json())
    assert no_subs.subscription_candidates == []


def test_unknown_customer_is_404_on_every_customer_route(client):
    for suffix in ("", "/loyalty", "/vouchers", "/summary"):
        r = get(client, f"/v1/customers/G999999999{suffix}")
        assert r.status_code == 404
        assert r.json()["detail"] == "No golden customer G999999999 in publication v1."
        assert r.json()["instance"] == f"/v1/customers/G999999999{suffix}"


def test_invalid_golden_id_is_422(client):
    assert get(client, "/v1/customers/bad id!").status_code == 422
    assert get(client, "/v1/customers/" + "x" * 65).status_code == 422


def test_unknown_route_and_method(client):
    assert get(client, "/v2/nothing").status_code == 404
    r = client.post("/v1/customers/G000000001", headers={"X-API-Key": KEYS["reader"][0]})
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"


# ---------------------------------------------------------------------------------------------------------------
# Listing and pagination
# ---------------------------------------------------------------------------------------------------------------
def walk(client, limit, **filters):
    ids, cursor, pages = [], None, 0
    while True:
        params = {"limit": str(limit), **filters, **({"cursor": cursor} if cursor else {})}
        body = CustomerPagePublic.model_validate(get(client, "/v1/customers", **params).json())
        assert len(body.items) <= limit
        ids += [c.golden_id for c in body.items]
        pages += 1
        cursor = body.next_cursor
        if cursor is None:
            return ids, pages


def test_pagination_visits_every_customer_once_in_order(client):
    ids, pages = walk(client, 7)
    assert ids == [golden_id(i) for i in range(N)]
    assert pages == -(-N // 7)


@pytest.mark.parametrize(("tier", "segment"), [("gold", None), (None, "Champion"), ("silver", "Potential Loyalist"),
                                              ("platinum", "Visitor")])
def test_filtered_pagination(client, tier, segment):
    filters = {k: v for k, v in (("tier", tier), ("segment", segment)) if v}
    ids, _ = walk(client, 4, **filters)
    expected = [golden_id(i) for i in range(N)
                if (tier is None or tier_of(loyalty_score(i)) == tier)
                and (segment is None or SEGMENTS[i % len(SEGMENTS)] == segment)]
    assert expected and ids == expected
    page = get(client, "/v1/customers", limit="3", **filters).json()
    for item in page["items"]:
        assert tier is None or item["loyalty_tier"] == tier
        assert segment is None or item["customer_segment"] == segment


def test_cursor_is_opaque_and_checked(client):
    first = get(client, "/v1/customers", limit="2", tier="gold").json()
    cursor = first["next_cursor"]
    assert cursor and "G0" not in cursor
    r = get(client, "/v1/customers", limit="2", tier="silver", cursor=cursor)
    assert r.status_code == 422 and "other filters" in r.json()["detail"]
    for bad in ("garbage!", "eyJ4IjoxfQ", "W10"):
        assert get(client, "/v1/customers", cursor=bad).status_code == 422
    assert get(client, "/v1/customers", tier="diamond").status_code == 422
    assert get(client, "/v1/customers", limit="201").status_code == 422


# ---------------------------------------------------------------------------------------------------------------
# Security
# ---------------------------------------------------------------------------------------------------------------
def test_keys_and_scopes(client):
    path = f"/v1/customers/{golden_id(3)}"
    missing = get(client, path, key=None)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("ApiKey")
    assert get(client, path, key="lh_not-a-configured-key").status_code == 401
    assert get(client, path, key="x" * 300).status_code == 401
    assert get(client, path, key="pii_only").status_code == 403
    assert get(client, path, key="reader").status_code == 200
    for route in ("/v1/customers", "/v1/customers/search?email=a@b.c", "/v1/customers/lookup?source=pos&source_id=M1",
                  f"{path}/loyalty", f"{path}/vouchers", f"{path}/summary"):
        assert client.get(route).status_code == 401, route
    # Operations endpoints need no key.
    assert get(client, "/health", key=None).status_code == 200
    assert get(client, "/metrics", key=None).status_code == 200


def test_production_mode_needs_configured_keys(settings):
    with pytest.raises(ConfigError, match="no API keys configured"):
        create_app(load_settings(data_root=str(settings.data_root), mode="production"))


def test_local_mode_generates_a_dev_key(settings, gold, capfd):
    app = create_app(load_settings(data_root=str(settings.data_root), api_poll_interval_s=0.1))
    dev_key = app.state.dev_key
    assert dev_key and dev_key.startswith("lh_")
    with TestClient(app) as c:
        wait_ready(c, 1)
        body = c.get(f"/v1/customers/{golden_id(1)}", headers={"X-API-Key": dev_key}).json()
        assert body["pii_masked"] is False
    assert dev_key in capfd.readouterr().err  # printed once at start


def test_keys_file_from_the_generator(settings, gold, tmp_path):
    out = subprocess.run([sys.executable, "-m", "api.security", "--name", "crm", "--scopes", "read"],
                         capture_output=True, text=True, cwd=REPO, check=True).stdout
    key = out.splitlines()[0].rsplit(" ", 1)[1]
    entry = out.split("entry for LAKEHOUSE_API_KEYS_FILE:\n", 1)[1]
    assert key not in entry  # only the hash is stored
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(entry)
    s = load_settings(data_root=str(settings.data_root), mode="production", api_keys_file=str(keys_file),
                      api_poll_interval_s=0.1)
    app = create_app(s)
    assert app.state.dev_key is None
    with TestClient(app) as c:
        wait_ready(c, 1)
        assert c.get(f"/v1/customers/{golden_id(1)}", headers={"X-API-Key": key}).status_code == 200
        assert c.get(f"/v1/customers/{golden_id(1)}", headers={"X-API-Key": key + "x"}).status_code == 401


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('[{"name": "a", "hash": "lh_plaintextkey", "scopes": ["read"]}]', "hash must be"),
        ('[{"name": "a", "hash": "sha256:' + "0" * 64 + '", "scopes": ["admin"]}]', "scopes must be"),
        ('[{"name": "a", "hash": "sha256:' + "0" * 64 + '", "scope": ["read"]}]', "unknown field"),
        ('{"name": "a"}', "expected a list"),
        ("not json", "must be a JSON list"),
    ],
)
def test_bad_key_configuration_fails_with_a_sentence(settings, keys, message):
    with pytest.raises(ConfigError, match=message):
        create_app(load_settings(data_root=str(settings.data_root), api_keys=keys))


# ---------------------------------------------------------------------------------------------------------------
# Errors, limits, logs, metrics
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fast_path", [True, False])
def test_unexpected_error_is_a_problem_without_internals(api_settings, gold, monkeypatch, caplog, fast_path):
    import api.routes

    def boom(ctx, gid):
        raise RuntimeError("secret detail customer7@example.com")

    monkeypatch.setattr(api.routes, "answer_customer", boom)
    with TestClient(create_app(api_settings, fast_path=fast_path)) as c:
        wait_ready(c, 1)
        with caplog.at_level(logging.INFO):
            r = get(c, f"/v1/customers/{golden_id(7)}")
    assert r.status_code == 500
    assert "secret" not in r.text and "RuntimeError" not in r.text and "Traceback" not in r.text
    assert "customer7@example.com" not in caplog.text and "secret" not in caplog.text
    assert "RuntimeError" in caplog.text  # the type and the stack are logged for operators


def test_request_limits(client):
    assert get(client, "/v1/customers/search", email="a" * 3000 + "@example.com").status_code == 414
    many = {f"p{i}": "1" for i in range(20)}
    assert get(client, "/v1/customers", **many).status_code == 400
    r = client.request("GET", f"/v1/customers/{golden_id(1)}", content=b"x" * 5000,
                       headers={"X-API-Key": KEYS["reader"][0]})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"


def test_access_log_has_templates_but_no_keys_or_pii(client, caplog):
    with caplog.at_level(logging.INFO, logger="lakehouse.api.access"):
        get(client, "/v1/customers/search", key="crm", email="customer7@example.com")
        get(client, "/v1/customers/search", key="reader", phone="07700 000007")
        get(client, f"/v1/customers/{golden_id(7)}", key="crm")
        get(client, "/v1/customers/lookup", source="pos", source_id="M0000007")
        get(client, f"/v1/customers/{golden_id(7)}", key="lh_wrong-key-value-123")
    lines = [r.getMessage() for r in caplog.records if r.name == "lakehouse.api.access"]
    assert len(lines) == 5
    text = "\n".join(lines)
    for secret in [k for k, _ in KEYS.values()] + ["lh_wrong-key-value-123", "customer7", "07700", "M0000007",
                                                  golden_id(7), "?", "email="]:
        assert secret not in text, secret
    assert "GET /v1/customers/search 200" in text and "key=crm" in text and "key=reader" in text
    assert "GET /v1/customers/{golden_id} 401" in text and "manifest=1" in text


def test_metrics_exposition(client):
    get(client, f"/v1/customers/{golden_id(1)}")
    get(client, "/v1/customers/G999999999")
    text = get(client, "/metrics", key=None).text
    assert 'lakehouse_api_requests_total{method="GET",route="/v1/customers/{golden_id}",status="200"} 1' in text
    assert 'lakehouse_api_requests_total{method="GET",route="/v1/customers/{golden_id}",status="404"} 1' in text
    assert 'lakehouse_api_request_duration_seconds_bucket{method="GET",route="/v1/customers/{golden_id}",le="+Inf"} 2' in text
    assert "lakehouse_api_manifest_version 1" in text
    assert f"lakehouse_api_gold_customers {N}" in text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")


def test_fast_path_answers_exactly_like_fastapi(api_settings, gold):
    requests = [
        (f"/v1/customers/{golden_id(7)}", "reader"), (f"/v1/customers/{golden_id(7)}", "crm"),
        (f"/v1/customers/{golden_id(7)}", None), (f"/v1/customers/{golden_id(7)}", "lh_bad"),
        (f"/v1/customers/{golden_id(7)}", "pii_only"), ("/v1/customers/G999999999", "reader"),
        (f"/v1/customers/{golden_id(7)}/loyalty", "reader"), (f"/v1/customers/{golden_id(6)}/summary", "reader"),
        (f"/v1/customers/{golden_id(7)}/vouchers", "reader"), ("/v1/customers/G999999999/vouchers", "reader"),
        ("/v1/customers/lookup?source=pos&source_id=M0000007", "crm"),
        ("/v1/customers/lookup?source=pos&source_id=M0000009", "reader"),
        ("/v1/customers/lookup?source=POS&source_id=M0000007", "reader"),
        ("/v1/customers/lookup?source=pos&source_id=M0000007&source=online", "reader"),
        ("/v1/customers/search?email=Customer7%40example.com", "reader"),
        ("/v1/customers/search?phone=07700%20000007&limit=5", "crm"),
        ("/v1/customers/search?name=smith&postcode=sw1a0aa&limit=3", "reader"),
        ("/v1/customers/search?name=smith", "reader"), ("/v1/customers/search?limit=07&email=a@b.c", "reader"),
        ("/v1/customers/search?email=ab", "reader"), ("/v1/customers/search?email=a@b.c&x=1", "reader"),
        (f"/v1/customers/{golden_id(7)}/", "reader"), (f"/v1/customers/{golden_id(7)}?x=1", "reader"),
        ("/v1/customers/bad%20id", "reader"),
        # Retired ids (v2 publishes gold.identity_changes): 308 to the survivor, ambiguous/dead-end 404, scope first.
        *[(f"/v1/customers/{retired_golden_id(i)}{suffix}", key) for i in (1, 2, 3, 6)
          for suffix in ("", "/loyalty", "/vouchers", "/summary") for key in ("reader", "pii_only")],
        (f"/v1/customers/{retired_golden_id(1)}", None), (f"/v1/customers/{retired_golden_id(1)}", "lh_bad"),
        (f"/v1/customers/{retired_golden_id(1)}/vouchers?&", "reader"), (f"/v1/customers/{golden_id(9)}", "reader"),
    ]
    tables = {**gold, "gold.identity_changes": write_identity_changes(api_settings, sample_identity_changes())}
    assert publish_manifest(api_settings, tables) == 2
    answers = {}
    for fast in (True, False):
        with TestClient(create_app(api_settings, fast_path=fast), follow_redirects=False) as c:
            wait_ready(c, 2)
            out = []
            for path, key in requests:
                headers = {"X-API-Key": KEYS[key][0] if key in KEYS else key} if key else {}
                r = c.get(path, headers=headers)
                out.append((path, key, r.status_code, r.headers.get("content-type"), r.headers.get("x-manifest-version"),
                            r.headers.get("www-authenticate"), r.headers.get("location"), r.content))
            answers[fast] = out
    for a, b in zip(answers[True], answers[False]):
        assert a == b
    statuses = {(path, key): status for path, key, status, *_ in answers[True]}
    assert statuses[(f"/v1/customers/{retired_golden_id(2)}/summary", "reader")] == 308
    assert statuses[(f"/v1/customers/{retired_golden_id(2)}/summary", "pii_only")] == 403
    assert statuses[(f"/v1/customers/{retired_golden_id(3)}", "reader")] == 404


# ---------------------------------------------------------------------------------------------------------------
# Publications: exactly the published versions, reloads, failures, the switch under load
# ---------------------------------------------------------------------------------------------------------------
def test_not_ready_until_something_is_published(api_settings):
    with TestClient(create_app(api_settings)) as c:
        r = get(c, "/ready", key=None)
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.headers["x-manifest-version"] == "none"
        r = get(c, f"/v1/customers/{golden_id(1)}")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert get(c, "/health", key=None).status_code == 200
        publish_manifest(api_settings, write_sample_gold(api_settings, customers=10))
        wait_ready(c, 1)
        assert get(c, f"/v1/customers/{golden_id(1)}").status_code == 200


def test_serves_exactly_the_published_table_versions(api_settings, gold):
    app = create_app(api_settings, start_polling=False)
    repo = app.state.repository
    with TestClient(app) as c:
        assert repo.refresh() is True
        path = f"/v1/customers/{golden_id(5)}/loyalty"
        assert get(c, path).json()["loyalty_score"] == loyalty_score(5, 0)
        # New table versions written but not published (e.g. a failed gate): still the published ones.
        unpublished = write_sample_gold(api_settings, customers=N, variant=9)
        assert all(t.delta_version == 1 for t in unpublished.values())
        assert repo.refresh() is False
        assert get(c, path).json()["loyalty_score"] == loyalty_score(5, 0)
        # Published: served after the reload hook, without a restart.
        assert publish_manifest(api_settings, unpublished) == 2
        assert repo.refresh() is True
        r = get(c, path)
        assert r.json()["loyalty_score"] == loyalty_score(5, 9) and r.headers["x-manifest-version"] == "2"
        # A publication that cannot be read keeps the previous one in force.
        broken = dict(unpublished)
        broken["gold.loyalty_scores"] = type(broken["gold.loyalty_scores"])(
            str(Path(api_settings.warehouse_root) / "gold" / "missing"), 0, 1)
        assert publish_manifest(api_settings, broken) == 3
        assert repo.refresh() is False and repo.version == 2 and "gold.loyalty_scores" in repo.last_error
        assert get(c, "/ready", key=None).json()["manifest_version"] == 2
        assert get(c, path).json()["loyalty_score"] == loyalty_score(5, 9)
        assert 'lakehouse_api_reloads_total{outcome="failed"} 1' in get(c, "/metrics", key=None).text


def test_switch_to_a_new_publication_under_concurrent_requests(api_settings, gold):
    variants = {1: 0, 2: 7}
    seen: dict[int, int] = defaultdict(int)
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def hammer(c: TestClient, seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            i = rng.randrange(N)
            route = rng.choice(("loyalty", "summary"))
            r = c.get(f"/v1/customers/{golden_id(i)}/{route}", headers={"X-API-Key": KEYS["reader"][0]})
            if r.status_code != 200:
                failures.append(f"{r.status_code} {r.text[:200]}")
                continue
            version = int(r.headers["x-manifest-version"])
            variant = variants.get(version)
            body = r.json()
            ok = variant is not None and body["loyalty_score"] == loyalty_score(i, variant)
            if route == "summary":  # two more tables must come from the same publication
                ok = ok and body["activity"]["total_orders"] == i % 12 + variant
                ok = ok and body["loyalty_tier"] == tier_of(loyalty_score(i, variant))
            if not ok:
                failures.append(f"v{version} {route} {i}: {body}")
            with lock:
                seen[version] += 1

    with TestClient(create_app(api_settings)) as c:
        wait_ready(c, 1)
        threads = [threading.Thread(target=hammer, args=(c, s)) for s in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            publish_manifest(api_settings, write_sample_gold(api_settings, customers=N, variant=variants[2]))
            wait_ready(c, 2)
            before = seen[2]
            deadline = time.time() + 20
            while seen[2] < before + 50 and time.time() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
    assert not failures, failures[:5]
    assert seen[1] > 0 and seen[2] > 0, dict(seen)
