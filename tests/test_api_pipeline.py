"""The API over gold built by the real pipeline (generator -> ingest -> refine -> publish) on a small generated data set:
every golden customer is served with its source records, lookups and searches find it, every score, voucher and
summary answers. (Switching to a newer publication under load is covered in test_api.py on deltalake-written gold.)"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.schemas import CustomerDetailPublic, CustomerPagePublic, LoyaltyPublic, SummaryPublic, VouchersPublic
from api.security import hash_key
from lakehouse.settings import load_settings

pytestmark = [pytest.mark.flow, pytest.mark.filterwarnings("ignore:.*No Partition Defined")]

DAYS = [dt.date(2026, 1, 1)]
KEY = "lh_pipeline-test-key-0123456789abcdefghijklmnopqr"
HEADERS = {"X-API-Key": KEY}


def published(settings, name: str) -> list[dict]:
    """Rows of a gold table at the version of the publication in force (read independently of the API)."""
    from deltalake import DeltaTable

    from lakehouse.manifest import latest_manifest

    ref = latest_manifest(settings).table(name)
    return DeltaTable(ref.location, version=ref.delta_version).to_pyarrow_table().to_pylist()


def wait_version(client: TestClient, version: int, timeout_s: float = 120) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        r = client.get("/ready")
        if r.status_code == 200 and r.json()["manifest_version"] >= version:
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"manifest v{version} not served: {client.get('/ready').text}")


def national(e164: str) -> str:
    """+447700900123 -> '07700 900123' (how a clerk types a UK number)."""
    digits = "0" + e164[3:]
    return f"{digits[:5]} {digits[5:]}"


def test_api_serves_gold_published_by_the_pipeline(spark, settings):
    from flows.ingest import ingest_days
    from flows.publish import publish_day
    from flows.refine import refine_days
    from generator import generate
    from lakehouse.manifest import latest_manifest

    generate(settings, start=DAYS[0], days=len(DAYS), customers=80, orders_per_day=25, seed=5, bad_share=0.02)
    ingest_days(settings, DAYS)
    refine_days(settings, DAYS)
    publish_day(settings, DAYS[-1])
    first = latest_manifest(settings)
    assert first is not None

    keys = json.dumps([{"name": "test", "hash": hash_key(KEY), "scopes": ["read", "pii"]}])
    api_settings = load_settings(data_root=str(settings.data_root), api_keys=keys, api_poll_interval_s=0.2)
    golden = published(settings, "golden_customers")
    xref = published(settings, "customer_xref")
    loyalty = {r["golden_id"]: r for r in published(settings, "loyalty_scores")}
    vouchers: dict[str, int] = defaultdict(int)
    for r in published(settings, "voucher_recommendations"):
        vouchers[r["golden_id"]] += 1
    sources_of: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r in xref:
        sources_of[r["golden_id"]].add((r["source_system"], r["source_customer_id"]))
    assert len(golden) > 20 and len(xref) >= len(golden)

    with TestClient(create_app(api_settings)) as c:
        ready = wait_version(c, first.version)
        assert ready["customers"] == len(golden)

        for g in golden:
            gid = g["golden_id"]
            body = CustomerDetailPublic.model_validate(c.get(f"/v1/customers/{gid}", headers=HEADERS).json())
            assert body.email == g["email"] and body.phone_e164 == g["phone_e164"]
            assert {(s.source_system, s.source_customer_id) for s in body.sources} == sources_of[gid]
            SummaryPublic.model_validate(c.get(f"/v1/customers/{gid}/summary", headers=HEADERS).json())
            v = VouchersPublic.model_validate(c.get(f"/v1/customers/{gid}/vouchers", headers=HEADERS).json())
            assert len(v.vouchers) == vouchers[gid]
            assert [x.rank for x in v.vouchers] == sorted(x.rank for x in v.vouchers)
            r = c.get(f"/v1/customers/{gid}/loyalty", headers=HEADERS)
            if gid in loyalty:
                body = LoyaltyPublic.model_validate(r.json())
                assert body.loyalty_score == pytest.approx(float(loyalty[gid]["loyalty_score"]))
                assert body.loyalty_tier == loyalty[gid]["loyalty_tier"]
            else:
                assert r.status_code == 404

        for r in xref:
            found = c.get("/v1/customers/lookup", params={"source": r["source_system"], "source_id": r["source_customer_id"]},
                          headers=HEADERS)
            assert found.status_code == 200 and found.json()["golden_id"] == r["golden_id"]

        searched = 0
        for g in golden:
            if g["email"]:
                hits = c.get("/v1/customers/search", params={"email": f"  {g['email'].upper()} "}, headers=HEADERS).json()
                assert g["golden_id"] in [h["golden_id"] for h in hits["items"]]
                searched += 1
            if g["phone_e164"] and g["phone_e164"].startswith("+44"):
                hits = c.get("/v1/customers/search", params={"phone": national(g["phone_e164"])}, headers=HEADERS).json()
                assert g["golden_id"] in [h["golden_id"] for h in hits["items"]]
            if g["last_name"] and g["postcode"]:
                hits = c.get("/v1/customers/search", headers=HEADERS, params={
                    "name": g["last_name"].lower(), "postcode": g["postcode"].replace(" ", "").lower(), "limit": "50"}).json()
                assert g["golden_id"] in [h["golden_id"] for h in hits["items"]]
        assert searched > 10

        ids, cursor = [], None
        while True:
            page = CustomerPagePublic.model_validate(c.get("/v1/customers", headers=HEADERS,
                                                           params={"limit": "9", **({"cursor": cursor} if cursor else {})}).json())
            ids += [i.golden_id for i in page.items]
            cursor = page.next_cursor
            if not cursor:
                break
        assert ids == sorted(g["golden_id"] for g in golden)

