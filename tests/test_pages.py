"""The insight and operations pages in-process (TestClient) over a small synthetic publication: sign-in and cookie,
masking for keys without pii, figures equal the gold tables, search, customer 360, pipeline health from the system
tables, quarantine drill-down, data docs under the same sign-in, aggregation once per publication, charts as SVG."""

from __future__ import annotations

import ast
import json
import re
import time
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from api.app import create_app
from api.pages import charts as C
from api.pages.masking import mask_reasons, mask_row, scrub_text
from api.pages.routes import COOKIE
from api.pages.sample import write_page_gold, write_system_tables
from api.sample_gold import publish_manifest, sample_customer, write_sample_gold
from api.security import hash_key
from lakehouse.manifest import latest_manifest
from lakehouse.settings import load_settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
N = 80
DAYS = 10
KEYS = {
    "reader": ("lh_pages-reader-key-0123456789abcdefghijklmnopqr", ["read"]),
    "crm": ("lh_pages-crm-key-0123456789abcdefghijklmnopqrstuvw", ["read", "pii"]),
    "pii_only": ("lh_pages-pii-only-key-0123456789abcdefghijklmno", ["pii"]),
}
BASE = "https://testserver"


def keys_json() -> str:
    return json.dumps([{"name": n, "hash": hash_key(k), "scopes": s} for n, (k, s) in KEYS.items()])


@pytest.fixture
def page_settings(settings):
    return load_settings(data_root=str(settings.data_root), api_keys=keys_json(), api_poll_interval_s=0.1)


def publish(page_settings, *, variant: int = 0) -> int:
    tables = write_sample_gold(page_settings, customers=N, variant=variant)
    tables.update(write_page_gold(page_settings, customers=N, days=DAYS))
    return publish_manifest(page_settings, tables)


@pytest.fixture
def published(page_settings):
    write_system_tables(page_settings, days=DAYS, tables=6, quarantined=24, unbalanced=True)
    assert publish(page_settings) == 1
    return latest_manifest(page_settings)


def wait_for(predicate, timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def app(page_settings, published):
    return create_app(page_settings)


@pytest.fixture
def client(app):
    with TestClient(app, base_url=BASE) as c:
        wait_for(lambda: c.get("/ready").status_code == 200, what="gold loaded")
        wait_for(lambda: app.state.pages.bundle is not None, what="pages aggregated")
        yield c


def login(client: TestClient, who: str = "crm", next_: str = "/pages/overview"):
    return client.post("/login", data={"api_key": KEYS[who][0], "next": next_}, headers={"origin": BASE},
                       follow_redirects=False)


def signed_in(client: TestClient, who: str) -> TestClient:
    r = login(client, who)
    assert r.status_code == 303, r.text
    return client


def table(manifest, name: str):
    ref = manifest.table(name)
    return DeltaTable(ref.location, version=ref.delta_version).to_pyarrow_table()


def text_of(html: str, attr: str) -> str:
    m = re.search(rf'{attr}[^>]*>([^<]*)<', html)
    assert m, f"{attr} not in page"
    return m.group(1).strip()


def money(text: str) -> Decimal:
    return Decimal(text.replace("£", "").replace(",", ""))


def num(text: str) -> int:
    return int(text.replace(",", ""))


# ---------------------------------------------------------------------------------------------------------------
# Sign-in
# ---------------------------------------------------------------------------------------------------------------
def test_pages_need_a_signed_in_key(client):
    for path in ("/pages/overview", "/pages/customers", "/pages/customers/G000000001", "/pages/identity",
                 "/pages/pipeline", "/pages/pipeline/quarantine?table=x&rule=y", "/docs/data/index.html"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=/"), path
    assert client.get("/", follow_redirects=False).headers["location"] == "/pages/overview"


def test_login_sets_a_secure_http_only_same_site_strict_cookie(client):
    r = login(client, "reader", "/pages/identity")
    assert r.status_code == 303 and r.headers["location"] == "/pages/identity"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert "secure" in flags and "httponly" in flags
    assert flags["samesite"].lower() == "samesite=strict"
    assert client.get("/pages/identity").status_code == 200
    r = client.post("/logout", headers={"origin": BASE}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/pages/identity", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("key, status, sentence", [
    ("lh_not-a-configured-key-0123456789abcdefghijklmnop", 401, "not valid"),
    (KEYS["pii_only"][0], 403, "lacks the read scope"),
])
def test_login_refuses_bad_keys(client, key, status, sentence):
    r = client.post("/login", data={"api_key": key, "next": "/pages/overview"}, headers={"origin": BASE},
                    follow_redirects=False)
    assert r.status_code == status and sentence in r.text
    assert "set-cookie" not in r.headers


def test_login_refuses_other_origins_and_never_redirects_off_site(client):
    r = client.post("/login", data={"api_key": KEYS["crm"][0]}, headers={"origin": "https://evil.example"},
                    follow_redirects=False)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    for target in ("https://evil.example/x", "//evil.example/pages/", "/pages/../..//evil", "/v1/customers"):
        r = client.post("/login", data={"api_key": KEYS["crm"][0], "next": target}, headers={"origin": BASE},
                        follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/pages/overview", target


def test_an_unknown_cookie_is_sent_back_to_login_and_cleared(client):
    client.cookies.set(COOKIE, "lh_forged-0123456789abcdefghijklmnopqrstuvwxyzABCD")
    r = client.get("/pages/overview", follow_redirects=False)
    assert r.status_code == 303 and "login" in r.headers["location"]
    assert f'{COOKIE}=""' in r.headers.get("set-cookie", "") or "Max-Age=0" in r.headers.get("set-cookie", "")


def test_pages_are_not_in_the_openapi_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/pages", "/login", "/logout", "/docs/data"))] and "/" not in paths


# ---------------------------------------------------------------------------------------------------------------
# Every page: one publication, security headers, charts
# ---------------------------------------------------------------------------------------------------------------
PAGES = ("/pages/overview", "/pages/customers", "/pages/customers/G000000003", "/pages/identity", "/pages/pipeline")


def test_every_page_states_its_publication_and_sends_strict_headers(client, published):
    signed_in(client, "crm")
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["x-manifest-version"] == "1"
        assert f'data-manifest-version="{published.version}"' in r.text
        assert f'data-published-at="{published.published_at}"' in r.text
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert r.headers["cache-control"] == "no-store"
        assert "<script" not in r.text.lower()
        # Nothing is loaded from another host (plain links, like the Prefect UI's, are fine).
        assert not re.search(r'src="(https?:)?//|<link[^>]*href="(https?:)?//', r.text), path
        for svg in re.findall(r"<svg\b.*?</svg>", r.text, flags=re.S):
            ET.fromstring(svg)  # every chart is well-formed SVG


def test_overview_figures_equal_the_gold_tables(client, published):
    signed_in(client, "reader")
    html = client.get("/pages/overview").text
    daily = table(published, "daily_sales_summary").to_pylist()
    alls = [r for r in daily if r["channel"] == "all"]
    assert money(text_of(html, 'data-kpi="revenue_total"')) == sum(r["total_revenue"] for r in alls)
    orders = sum(r["total_orders"] for r in alls)
    assert num(text_of(html, 'data-kpi="orders_total"')) == orders
    gross = sum(r["gross_sales"] for r in alls)
    assert money(text_of(html, 'data-kpi="aov"')) == (gross / orders).quantize(Decimal("0.01"))
    latest = max(alls, key=lambda r: r["event_date"])
    assert money(text_of(html, 'data-kpi="latest_revenue"')) == latest["total_revenue"]
    assert money(text_of(html, 'data-kpi="latest_revenue_7d_avg"')) == latest["revenue_7d_avg"]
    for r in daily:  # every day x channel cell of the daily table
        row = re.search(rf'<tr data-day="{r["event_date"]}">(.*?)</tr>', html, flags=re.S).group(1)
        col = "revenue" if r["channel"] == "all" else r["channel"]
        assert money(text_of(row, f'data-col="{col}"')) == r["total_revenue"]
    tiers = table(published, "loyalty_scores").column("loyalty_tier").to_pylist()
    for tier in set(tiers):
        row = re.search(rf'<tr data-tier="{tier}">(.*?)</tr>', html, flags=re.S).group(1)
        assert num(text_of(row, 'data-col="customers"')) == tiers.count(tier)
    risks = table(published, "customer_metrics").column("churn_risk").to_pylist()
    for risk in set(risks):
        row = re.search(rf'<tr data-risk="{re.escape(risk)}">(.*?)</tr>', html, flags=re.S).group(1)
        assert num(text_of(row, 'data-col="customers"')) == risks.count(risk)
    funnel = table(published, "conversion_funnel").to_pylist()
    for cat in {r["category_l1"] for r in funnel}:
        row = re.search(rf'<tr data-category="{cat}">(.*?)</tr>', html, flags=re.S).group(1)
        assert num(text_of(row, 'data-col="sessions"')) == sum(r["total_sessions"] for r in funnel if r["category_l1"] == cat)
        assert num(text_of(row, 'data-col="purchase"')) == sum(r["sessions_with_purchase"] for r in funnel
                                                               if r["category_l1"] == cat)
    products = sorted(table(published, "product_performance").to_pylist(), key=lambda p: (-p["total_revenue"], p["sku"]))
    shown = re.findall(r'<tr data-sku="([^"]+)">', html)
    assert shown == [p["sku"] for p in products[:10]]
    for chart in ("revenue", "orders", "aov", "funnel", "tiers", "churn", "top_products", "performance_tiers"):
        svg = re.search(rf'<svg[^>]*data-chart="{chart}".*?</svg>', html, flags=re.S)
        assert svg and 'class="mark"' in svg.group(0), chart


def test_identity_figures_equal_the_gold_tables(client, published):
    signed_in(client, "reader")
    html = client.get("/pages/identity").text
    xref = table(published, "customer_xref").to_pylist()
    assert num(text_of(html, 'data-kpi="identities"')) == N
    assert num(text_of(html, 'data-kpi="records"')) == len(xref)
    per_identity: dict[str, int] = {}
    for r in xref:
        per_identity[r["golden_id"]] = per_identity.get(r["golden_id"], 0) + 1
    for bucket in ("1", "2"):
        row = re.search(rf'<tr data-bucket="{bucket}">(.*?)</tr>', html, flags=re.S).group(1)
        assert num(text_of(row, 'data-col="identities"')) == sum(1 for n in per_identity.values() if n == int(bucket))
    links = table(published, "identity_links").to_pylist()
    for rule in {r["match_rule"] for r in links}:
        row = re.search(rf'<tr data-pair="online ↔ pos" data-rule="{rule}">(.*?)</tr>', html, flags=re.S).group(1)
        assert num(text_of(row, 'data-col="links"')) == sum(1 for r in links if r["match_rule"] == rule)
    changes = table(published, "identity_changes").column("change_type").to_pylist()
    assert f"merge: {changes.count('merge')}" in html and f"split: {changes.count('split')}" in html


def test_customer_360(client, published):
    signed_in(client, "crm")
    html = client.get("/pages/customers/G000000002").text
    c = sample_customer(2)  # an online and a POS record
    assert c["email"] in html and c["phone_e164"] in html  # the pii key sees contact details
    assert re.findall(r'<table data-table="sources">.*?</table>', html, flags=re.S)[0].count("<tr>") - 1 == 2
    fact = table(published, "fact_sales").to_pylist()
    orders = {(r["source_system"], r["order_id"]) for r in fact if r["golden_id"] == "G000000002"}
    body = re.search(r'<table data-table="orders">.*?</table>', html, flags=re.S).group(0)
    assert body.count("<tr>") - 1 == len(orders) > 0
    assert re.search(r'<svg[^>]*data-chart="timeline".*?class="mark"', html, flags=re.S)
    loyalty = [r for r in table(published, "loyalty_scores").to_pylist() if r["golden_id"] == "G000000002"][0]
    assert text_of(html, 'data-kpi="loyalty_score"') == f"{loyalty['loyalty_score']:.1f}"
    assert text_of(html, 'data-kpi="loyalty_tier"') == loyalty["loyalty_tier"]
    vouchers = re.search(r'<table data-table="vouchers">.*?</table>', html, flags=re.S).group(0)
    assert vouchers.count("<tr>") - 1 == 3
    assert client.get("/pages/customers/G999999999").status_code == 404
    assert client.get("/pages/customers/not%20an%20id").status_code == 404


# ---------------------------------------------------------------------------------------------------------------
# Search and masking
# ---------------------------------------------------------------------------------------------------------------
def search(client: TestClient, q: str, postcode: str = "") -> str:
    r = client.post("/pages/customers", data={"q": q, "postcode": postcode}, headers={"origin": BASE})
    assert r.status_code == 200, r.text[:300]
    return r.text


def found(html: str) -> list[str]:
    return re.findall(r'<a href="/pages/customers/([^"]+)" data-customer', html.split("Highest loyalty scores")[0])


def test_search_by_email_phone_and_name(client):
    signed_in(client, "crm")
    c = sample_customer(7)
    assert found(search(client, "  " + c["email"].upper() + " ")) == ["G000000007"]
    assert found(search(client, "0" + c["phone_e164"][3:])) == ["G000000007"]  # national format
    first, last = c["first_name"], c["last_name"]
    by_name = found(search(client, f"{last.lower()} {first.upper()}"))
    expected = [f"G{i:09d}" for i in range(N) if sample_customer(i)["full_name"] == c["full_name"]]
    assert by_name == expected and "G000000007" in by_name
    assert found(search(client, c["full_name"], c["postcode"].lower().replace(" ", ""))) == \
        [f"G{i:09d}" for i in range(N) if sample_customer(i)["full_name"] == c["full_name"]
         and sample_customer(i)["postcode"] == c["postcode"]]
    assert found(search(client, "Nobody Atall")) == []


def test_a_key_without_pii_sees_no_email_or_phone_anywhere(client, published):
    signed_in(client, "reader")
    emails = {sample_customer(i)["email"] for i in range(N)}
    phones = {sample_customer(i)["phone_e164"] for i in range(N)}
    national = {"07" + p[4:] for p in phones}
    pages = [client.get(p).text for p in PAGES]
    pages.append(client.get("/pages/customers/G000000005").text)
    pages.append(search(client, sample_customer(5)["email"]))
    pages.append(search(client, sample_customer(6)["phone_e164"]))
    pages.append(search(client, sample_customer(6)["full_name"]))
    pipeline = client.get("/pages/pipeline").text
    links = re.findall(r'href="(/pages/pipeline/quarantine\?[^"]+)"', pipeline)
    assert links, "no quarantine drill-down links"
    for link in links:
        r = client.get(link.replace("&amp;", "&"))
        assert r.status_code == 200 and "data-example" in r.text
        pages.append(r.text)
    assert found(pages[-len(links) - 3]) == ["G000000005"]  # the email search still finds the customer
    for html in pages:
        lowered = html.lower()
        leaked = [e for e in emails if e in lowered] + [p for p in phones | national if p in html]
        assert not leaked, leaked[:3]
        unmasked = re.search(r"[\w.+-]{2,}@@?[\w-]+\.\w+", html)  # a masked one reads j***@example.com
        assert not unmasked, unmasked
    assert "PII masked" in pages[0]


def test_quarantine_drill_down_masks_for_reader_and_shows_for_pii(client, published):
    q = DeltaTable(str(Path(published.table("golden_customers").location).parents[1] / "system" / "quarantine"))
    rows = q.to_pyarrow_table().to_pylist()
    rule_rows = [r for r in rows if "email_valid" in r["failed_rules"] and r["source_table"] == "silver.customers"]
    signed_in(client, "reader")
    url = "/pages/pipeline/quarantine?table=silver.customers&rule=email_valid"
    html = client.get(url).text
    assert html.count("data-example") == min(len(rule_rows), 20)
    assert num(text_of(html, 'data-kpi="rule_rows"')) == len(rule_rows)
    some = json.loads(rule_rows[0]["row_json"])
    assert some["email"] not in html and some["full_name"] in html  # names are not masked (as in the API)
    client.post("/logout", headers={"origin": BASE})
    signed_in(client, "crm")
    assert some["email"].replace("@", "&#64;") in client.get(url).text or some["email"] in client.get(url).text
    assert client.get("/pages/pipeline/quarantine?table=nope&rule=nope").status_code == 404


def test_pipeline_page_reads_the_system_tables(client, published):
    signed_in(client, "reader")
    html = client.get("/pages/pipeline").text
    root = Path(published.table("golden_customers").location).parents[1] / "system"
    runs = DeltaTable(str(root / "pipeline_runs")).to_pyarrow_table().to_pylist()
    latest = {}
    for r in sorted(runs, key=lambda r: r["started_at"]):
        latest[(r["layer"], r["table_name"])] = r
    for (layer, name), r in latest.items():
        row = re.search(rf'<tr data-run-table="{re.escape(name)}">(.*?)</tr>', html, flags=re.S).group(1)
        for col in ("rows_in", "rows_out", "rows_quarantined", "rows_deduplicated"):
            assert num(text_of(row, f'data-col="{col}"')) == r[col], (name, col)
    bad = [r for r in latest.values() if r["rows_in"] != r["rows_out"] + r["rows_quarantined"] + r["rows_deduplicated"]]
    assert len(bad) == 1 and 'data-accounting="fail"' in html and "1 table run(s) do not balance" in html
    quarantine = DeltaTable(str(root / "quarantine")).to_pyarrow_table()
    assert num(text_of(html, 'data-kpi="quarantine_total"')) == quarantine.num_rows
    flat = pc.list_flatten(quarantine.column("failed_rules")).to_pylist()
    for rule in set(flat):
        cells = re.findall(rf'<tr data-rule="{rule}" data-source-table="[^"]+">.*?data-col="rows">([^<]+)<', html, flags=re.S)
        assert sum(num(c) for c in cells) == flat.count(rule), rule
    assert text_of(html, 'data-kpi="manifest_version"') == f"v{published.version}"
    versions = {name: DeltaTable(str(root / name.split(".")[1])).version() for name in ("system.pipeline_runs", "system.quarantine")}
    for name, v in versions.items():
        assert text_of(html, f'data-system-version="{name}"') == f"Delta v{v}"
    assert "read read-only at their latest Delta version" in html
    assert 'href="http://127.0.0.1:4200"' in html and "Data docs: not built yet" in html
    assert re.search(r'<svg[^>]*data-chart="quarantine".*?class="mark"', html, flags=re.S)


def test_data_docs_are_served_under_the_same_sign_in(client, page_settings):
    from expectations.docs import site_dir

    site = Path(site_dir(page_settings))
    signed_in(client, "reader")
    assert client.get("/docs/data/index.html").status_code == 404  # not built yet
    (site / "static").mkdir(parents=True)
    (site / "index.html").write_text("<html><body>data docs index</body></html>")
    (site / "static" / "style.css").write_text("body{color:red}")
    (site.parent / "secret.txt").write_text("outside the site")
    assert "data docs index" in client.get("/docs/data/").text
    r = client.get("/docs/data/static/style.css")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    for bad in ("/docs/data/../secret.txt", "/docs/data/%2e%2e/secret.txt", "/docs/data/static/../../secret.txt"):
        assert "outside the site" not in client.get(bad).text, bad
    assert 'href="/docs/data/index.html"' in client.get("/pages/pipeline").text
    client.post("/logout", headers={"origin": BASE})
    assert client.get("/docs/data/index.html", follow_redirects=False).status_code == 303


# ---------------------------------------------------------------------------------------------------------------
# Aggregated once per publication, swapped with the repository
# ---------------------------------------------------------------------------------------------------------------
def test_aggregates_are_built_once_per_publication_and_follow_the_repository(page_settings, published):
    app = create_app(page_settings)
    with TestClient(app, base_url=BASE) as c:
        wait_for(lambda: getattr(app.state, "pages", None) is not None and app.state.pages.bundle is not None,
                 what="pages aggregated at start-up")
        store = app.state.pages
        assert store.watching and store.builds == 1
        signed_in(c, "reader")
        for _ in range(5):
            for path in PAGES:
                assert c.get(path).status_code == 200
        assert store.builds == 1
        assert publish(page_settings, variant=1) == 2
        wait_for(lambda: store.bundle is not None and store.bundle.version == 2, what="pages at v2")
        assert store.builds == 2
        html = c.get("/pages/overview").text
        assert 'data-manifest-version="2"' in html
        # The page's figures and the repository snapshot are one publication.
        bundle = store.bundle
        assert bundle.gold.version == bundle.data.manifest.version == 2
    assert not store.watching  # stopped with the app


def test_without_the_lifespan_the_first_request_builds(page_settings, published):
    c = TestClient(create_app(page_settings), base_url=BASE)  # no `with`: no lifespan, no poll thread
    c.app.state.repository.refresh()
    signed_in(c, "reader")
    assert c.get("/pages/overview").status_code == 200
    assert c.app.state.pages.builds == 1 and not c.app.state.pages.watching


def test_not_ready_before_the_first_publication(page_settings):
    c = TestClient(create_app(page_settings), base_url=BASE)
    signed_in(c, "reader")
    r = c.get("/pages/overview")
    assert r.status_code == 503 and r.headers["retry-after"] == "5" and "No gold publication" in r.text


# ---------------------------------------------------------------------------------------------------------------
# Units: masking, charts, imports
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row, expected", [
    ({"email": "jane.doe@example.com"}, {"email": "j***@example.com"}),
    ({"customer_email": "not-an-email"}, {"customer_email": "***"}),
    ({"phone": "07700 900123"}, {"phone": "********123"}),
    ({"mobile_phone": "+44 7700 900123"}, {"mobile_phone": "+44*******123"}),
    ({"postcode": "sw1a 1aa"}, {"postcode": "SW1A ***"}),
    ({"birth_date": "24/07/1988", "address_line1": "1 High St"}, {"birth_date": "***", "address_line1": "***"}),
    ({"notes": "call +447700900123 or mail jane@example.com"}, {"notes": "call +44*******123 or mail j***@example.com"}),
    ({"movement_ts": "2026-01-02 10:15:00", "order_id": "ORD-000000008", "quantity": "abc"},
     {"movement_ts": "2026-01-02 10:15:00", "order_id": "ORD-000000008", "quantity": "abc"}),
    ({"_raw_line": "1,Jane,jane@example.com,07700900123"}, {"_raw_line": "[raw line hidden"}),
])
def test_mask_row(row, expected):
    masked = mask_row(row, pii=False)
    for key, value in expected.items():
        assert str(masked[key]).startswith(value), (key, masked[key])
    assert mask_row(row, pii=True) == row


def test_mask_reasons_and_scrub():
    text = 'email_valid: not valid (email="jane@@example.com", phone="07700 900123", quantity=abc)'
    masked = mask_reasons(text, pii=False)
    assert "jane" not in masked and "900123" not in masked and "quantity=abc" in masked
    assert mask_reasons(text, pii=True) == text
    assert scrub_text("on 2026-01-02 at 10:15:00.123456") == "on 2026-01-02 at 10:15:00.123456"


def test_charts_escape_labels_and_are_well_formed():
    evil = '<script>alert("x")</script>&'
    svgs = [
        C.stacked_bars("a", ["d1", evil], [C.Series(evil, [1.0, 2.0], "#000")], line=C.Series("avg", [1.0, None], "#111"),
                       title=evil),
        C.hbars("b", [(evil, 3.0, "#000"), ("zero", 0.0, "#000")], title=evil),
        C.grouped_hbars("c", [(evil, [4, 3, 2, 1])], [("s", "#000")] * 4, title=evil),
        C.empty_chart("d", evil),
    ]
    for svg in svgs:
        assert "<script" not in svg and "style=" not in svg
        root = ET.fromstring(str(svg))
        assert root.tag.endswith("svg") and root.get("class") == "chart"
    marks = [e for e in ET.fromstring(str(svgs[0])).iter() if e.get("class") == "mark"]
    assert [e.tag.split("}")[1] for e in marks] == ["rect", "rect", "circle"]  # two bars, one line point
    assert 'class="mark"' not in svgs[3]
    assert C.nice_ticks(0.0) == [0.0, 1.0] and C.nice_ticks(97)[-1] == 100


def test_pages_import_no_spark_and_only_read_helpers():
    allowed_lakehouse = {"lakehouse.settings", "lakehouse.manifest", "lakehouse.catalog", "lakehouse.errors",
                         "lakehouse.normalize", "lakehouse.storage"}
    offenders = []
    for path in sorted((REPO / "api" / "pages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                root = name.split(".")[0]
                if root in ("pyspark", "pysail", "flows", "transforms", "generator"):
                    offenders.append(f"{path.name}: {name}")
                if root == "expectations" and name != "expectations.docs":
                    offenders.append(f"{path.name}: {name}")
                if root == "lakehouse" and name not in allowed_lakehouse:
                    offenders.append(f"{path.name}: {name}")
    assert not offenders, offenders


def test_an_aggregation_failure_is_a_503_page_and_the_api_keeps_answering(page_settings, published, monkeypatch):
    import api.pages.store as store_module

    calls = []

    def broken(settings, snapshot):
        calls.append(snapshot.version)
        raise OSError("disk on fire")

    monkeypatch.setattr(store_module, "build_page_data", broken)
    c = TestClient(create_app(page_settings), base_url=BASE)
    c.app.state.repository.refresh()
    signed_in(c, "reader")
    for _ in range(3):
        r = c.get("/pages/overview")
        assert r.status_code == 503 and "could not aggregate" in r.text and "disk on fire" not in r.text
    assert calls == [1]  # not retried on every request
    r = c.get("/v1/customers/G000000001", headers={"X-API-Key": KEYS["reader"][0]})
    assert r.status_code == 200


def test_pages_say_preparing_while_the_watcher_aggregates_the_first_publication(page_settings, published):
    import threading

    from api.pages.store import get_store

    c = TestClient(create_app(page_settings), base_url=BASE)
    c.app.state.repository.refresh()
    store = get_store(c.app)
    stop = threading.Event()
    store._thread = threading.Thread(target=stop.wait, daemon=True)  # stands for a watcher busy aggregating
    store._thread.start()
    try:
        with store._build_lock:
            signed_in(c, "reader")
            r = c.get("/pages/overview")
            assert r.status_code == 503 and "aggregating publication v1" in r.text
            assert r.headers["retry-after"] == "5" and 'http-equiv="refresh"' in r.text
    finally:
        stop.set()
