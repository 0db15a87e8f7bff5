"""End to end in a real browser: the generator and the pipeline (``flows.orchestration.run_day``) publish two small
days into tmp_path, ``lakehouse serve`` answers on 127.0.0.1, and headless Chromium (Debian package, driven over the
DevTools protocol) signs in, opens every page, checks the key figures against the gold tables (read independently
with deltalake), the charts, the console and the network, searches a customer and opens their 360, and saves a
screenshot of each page under ``tests/artifacts/pages/``. A second key without ``pii`` must see no email or phone
anywhere."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from browser import Chromium, chromium_binary
from lakehouse.processes import stop_process

pytestmark = [pytest.mark.flow, pytest.mark.filterwarnings("ignore:.*No Partition Defined")]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts" / "pages"
DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
KEYS = {
    "crm": ("lh_browser-crm-key-0123456789abcdefghijklmnopqrs", ["read", "pii"]),
    "reader": ("lh_browser-reader-key-0123456789abcdefghijklmnop", ["read"]),
}
SCREENSHOT_BYTES = 195_000

if chromium_binary() is None:
    pytest.skip("chromium is not installed (Debian: apt-get install chromium; scripts/test.sh installs it as root): "
                "the pages are not checked in a browser", allow_module_level=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def published(spark, tmp_path_factory):
    """Two generated days run through ingest, refine and publish; returns the settings of that warehouse."""
    from flows.orchestration import run_day
    from generator import generate
    from lakehouse.manifest import latest_manifest
    from lakehouse.settings import load_settings

    settings = load_settings(data_root=str(tmp_path_factory.mktemp("pages_e2e") / "lh"), spark_remote=None)
    generate(settings, start=DAYS[0], days=len(DAYS), customers=120, orders_per_day=30, seed=11, bad_share=0.03)
    for day in DAYS:
        run_day(settings, day)
    manifest = latest_manifest(settings)
    assert manifest is not None and manifest.version == len(DAYS)
    return settings


@pytest.fixture(scope="module")
def server(published, tmp_path_factory):
    """``lakehouse serve`` on a free 127.0.0.1 port (production mode, hashed keys), stopped by PID."""
    from api.security import hash_key

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update({
        "LAKEHOUSE_DATA_ROOT": str(published.data_root),
        "LAKEHOUSE_MODE": "production",
        "LAKEHOUSE_API_KEYS": json.dumps([{"name": n, "hash": hash_key(k), "scopes": s} for n, (k, s) in KEYS.items()]),
        "LAKEHOUSE_API_POLL_INTERVAL_S": "1",
    })
    log = open(tmp_path_factory.mktemp("pages_server") / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "lakehouse.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}; see {log.name}")
            try:
                req = urllib.request.Request(base + "/pages/overview", headers={"Cookie": f"lh_pages_key={KEYS['crm'][0]}"})
                with urllib.request.urlopen(req, timeout=10) as r:
                    if r.status == 200 and r.url.endswith("/pages/overview"):
                        break
            except Exception:  # noqa: BLE001 - not up, or gold not loaded yet (503)
                pass
            if time.time() > deadline:
                raise AssertionError("the pages did not come up within 180 s")
            time.sleep(0.5)
        yield base
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture(scope="module")
def gold(published):
    """The published gold tables, read independently with deltalake at the manifest's versions."""
    from deltalake import DeltaTable

    from lakehouse.manifest import latest_manifest

    manifest = latest_manifest(published)

    def read(name: str) -> list[dict]:
        ref = manifest.table(name)
        return DeltaTable(ref.location, version=ref.delta_version).to_pyarrow_table().to_pylist()

    return manifest, read


def sign_in(b: Chromium, base: str, who: str, page: str = "/pages/overview") -> None:
    b.goto(base + page)
    assert urlsplit(b.url()).path == "/login", "an anonymous visitor must land on the login form"
    b.run_and_wait_load(f"document.querySelector('input[name=api_key]').value = {KEYS[who][0]!r};"
                        "document.querySelector('form').submit()")
    assert urlsplit(b.url()).path == page, b.url()


def kpi(b: Chromium, name: str) -> str:
    return b.run(f"document.querySelector('[data-kpi={name}]').textContent.trim()")


def money(text: str) -> Decimal:
    return Decimal(text.replace("£", "").replace(",", ""))


def count(text: str) -> int:
    return int(text.replace(",", ""))


def cell(b: Chromium, row_selector: str, col: str) -> str:
    return b.run(f"document.querySelector({row_selector!r} + ' [data-col={col}]').textContent.trim()")


def charts(b: Chromium) -> dict[str, dict]:
    """Per chart: its rendered size and the number of marks (bars, points, dots) drawn."""
    return b.run("""Object.fromEntries([...document.querySelectorAll('svg.chart')].map(s => {
        const r = s.getBoundingClientRect();
        return [s.dataset.chart, {width: r.width, height: r.height, marks: s.querySelectorAll('.mark').length}];
    }))""")


def assert_drawn(b: Chromium, names: tuple[str, ...]) -> None:
    drawn = charts(b)
    for name in names:
        assert name in drawn, f"chart {name} missing on {b.url()}"
        assert drawn[name]["width"] > 100 and drawn[name]["height"] > 20, (name, drawn[name])
        assert drawn[name]["marks"] > 0, f"chart {name} drew nothing on {b.url()}"


def assert_clean(b: Chromium, base: str) -> None:
    """No console error and no request to any host but the server on 127.0.0.1."""
    assert b.errors() == []
    host = urlsplit(base).netloc
    foreign = [u for u in b.requested_urls() if not u.startswith("data:") and urlsplit(u).netloc != host]
    assert foreign == [], foreign


def test_pages_in_chromium_show_the_published_gold(server, gold, published, tmp_path):
    manifest, read = gold
    with Chromium(tmp_path / "profile") as b:
        sign_in(b, server, "crm")

        # Overview: KPIs, the daily table and the funnel against the marts.
        assert b.run("document.querySelector('[data-manifest-version]').dataset.manifestVersion") == str(manifest.version)
        daily = read("daily_sales_summary")
        alls = [r for r in daily if r["channel"] == "all"]
        assert money(kpi(b, "revenue_total")) == sum(r["total_revenue"] for r in alls)
        orders = sum(r["total_orders"] for r in alls)
        assert count(kpi(b, "orders_total")) == orders
        gross = sum(r["gross_sales"] for r in alls)
        assert money(kpi(b, "aov")) == (gross / orders).quantize(Decimal("0.01"))
        latest = max(alls, key=lambda r: r["event_date"])
        assert money(kpi(b, "latest_revenue")) == latest["total_revenue"]
        assert money(kpi(b, "latest_revenue_7d_avg")) == latest["revenue_7d_avg"]
        for r in daily:
            col = "revenue" if r["channel"] == "all" else r["channel"]
            assert money(cell(b, f'tr[data-day="{r["event_date"]}"]', col)) == r["total_revenue"], r
            if r["channel"] == "all":
                assert count(cell(b, f'tr[data-day="{r["event_date"]}"]', "orders")) == r["total_orders"]
        funnel = read("conversion_funnel")
        for cat in {r["category_l1"] for r in funnel}:
            want = sum(r["total_sessions"] for r in funnel if r["category_l1"] == cat)
            assert count(cell(b, f'tr[data-category="{cat}"]', "sessions")) == want, cat
        tiers = [r["loyalty_tier"] for r in read("loyalty_scores")]
        for tier in set(tiers):
            assert count(cell(b, f'table[data-table=tiers] tr[data-tier="{tier}"]', "customers")) == tiers.count(tier)
        risks = [r["churn_risk"] for r in read("customer_metrics")]
        for risk in set(risks):
            assert count(cell(b, f'tr[data-risk="{risk}"]', "customers")) == risks.count(risk)
        products = sorted(read("product_performance"), key=lambda p: (-p["total_revenue"], p["sku"]))
        assert b.run("[...document.querySelectorAll('tr[data-sku]')].map(r => r.dataset.sku)") == \
            [p["sku"] for p in products[:10]]
        assert_drawn(b, ("revenue", "orders", "aov", "funnel", "tiers", "churn", "top_products", "performance_tiers"))
        b.screenshot(ARTIFACTS / "overview.png", max_bytes=SCREENSHOT_BYTES)

        # Identity.
        b.goto(server + "/pages/identity")
        golden = read("golden_customers")
        xref = read("customer_xref")
        assert count(kpi(b, "identities")) == len(golden)
        assert count(kpi(b, "records")) == len(xref)
        sizes: dict[str, int] = {}
        for r in xref:
            sizes[r["golden_id"]] = sizes.get(r["golden_id"], 0) + 1
        for bucket in ("1", "2", "3", "4"):
            want = sum(1 for n in sizes.values() if n == int(bucket))
            assert count(cell(b, f'tr[data-bucket="{bucket}"]', "identities")) == want, bucket
        for system in {r["source_system"] for r in xref}:
            assert count(cell(b, f'tr[data-source="{system}"]', "records")) == \
                sum(1 for r in xref if r["source_system"] == system)
        links = read("identity_links")
        pairs: dict[tuple[str, str], int] = {}
        for r in links:
            a, c = sorted((r["left_key"].split(":")[0], r["right_key"].split(":")[0]))
            pairs[(f"{a} ↔ {c}", r["match_rule"])] = pairs.get((f"{a} ↔ {c}", r["match_rule"]), 0) + 1
        for (pair, rule), n in pairs.items():
            assert count(cell(b, f'tr[data-pair="{pair}"][data-rule="{rule}"]', "links")) == n, (pair, rule)
        assert_drawn(b, ("identity_distribution", "identity_rules", "identity_pairs"))
        b.screenshot(ARTIFACTS / "identity.png", max_bytes=SCREENSHOT_BYTES)

        # Pipeline health: the latest runs against system.pipeline_runs, quarantine counts, the drill-down.
        from deltalake import DeltaTable

        from lakehouse.catalog import PIPELINE_RUNS, QUARANTINE

        b.goto(server + "/pages/pipeline")
        assert kpi(b, "manifest_version") == f"v{manifest.version}"
        runs = DeltaTable(PIPELINE_RUNS.location(published)).to_pyarrow_table().to_pylist()
        latest_runs = {}
        for r in sorted(runs, key=lambda r: r["started_at"]):
            latest_runs[(r["layer"], r["table_name"])] = r
        for (layer, name), r in latest_runs.items():
            for col in ("rows_in", "rows_out", "rows_quarantined", "rows_deduplicated"):
                assert count(cell(b, f'table[data-table="runs-{layer}"] tr[data-run-table="{name}"]', col)) == r[col]
        balanced = all(r["rows_in"] == r["rows_out"] + r["rows_quarantined"] + r["rows_deduplicated"] + r["rows_rejected"]
                       for r in latest_runs.values())
        assert b.run("document.querySelector('[data-accounting]').dataset.accounting") == ("ok" if balanced else "fail")
        quarantine = DeltaTable(QUARANTINE.location(published)).to_pyarrow_table().to_pylist()
        assert count(kpi(b, "quarantine_total")) == len(quarantine)
        per_rule: dict[tuple[str, str], int] = {}
        for r in quarantine:
            for rule in r["failed_rules"]:
                per_rule[(r["source_table"], rule)] = per_rule.get((r["source_table"], rule), 0) + 1
        for (source, rule), n in per_rule.items():
            assert count(cell(b, f'tr[data-rule="{rule}"][data-source-table="{source}"]', "rows")) == n
        assert_drawn(b, ("quarantine",))
        assert b.run("document.querySelector('[data-link=prefect]').href") == "http://127.0.0.1:4200/"
        b.screenshot(ARTIFACTS / "pipeline.png", max_bytes=SCREENSHOT_BYTES)
        (source, rule), n = max(per_rule.items(), key=lambda kv: kv[1])
        b.run_and_wait_load(f'document.querySelector(\'tr[data-rule="{rule}"][data-source-table="{source}"] '
                            'a[data-drilldown]\').click()')
        assert b.run("document.querySelectorAll('[data-example]').length") == min(n, 20)
        assert count(kpi(b, "rule_rows")) == n

        # Customer search by email, then the 360 page.
        target = pick_customer(golden, xref, read("fact_sales"))
        b.goto(server + "/pages/customers")
        b.run_and_wait_load(f"document.querySelector('input[name=q]').value = {target['email'].upper()!r};"
                            "document.querySelector('form[data-form=search]').submit()")
        assert b.run("[...document.querySelectorAll('table[data-table=results] a[data-customer]')]"
                     ".map(a => a.dataset.customer)") == [target["golden_id"]]
        b.screenshot(ARTIFACTS / "customers.png", max_bytes=SCREENSHOT_BYTES)
        b.run_and_wait_load("document.querySelector('table[data-table=results] a[data-customer]').click()")
        assert urlsplit(b.url()).path == f"/pages/customers/{target['golden_id']}"
        assert b.run("document.querySelector('[data-field=email]').textContent.trim()") == target["email"]
        sources = [r for r in xref if r["golden_id"] == target["golden_id"]]
        assert b.run("document.querySelectorAll('table[data-table=sources] tbody tr').length") == len(sources) >= 2
        loyalty = next(r for r in read("loyalty_scores") if r["golden_id"] == target["golden_id"])
        assert kpi(b, "loyalty_score") == f"{loyalty['loyalty_score']:.1f}"
        vouchers = [r for r in read("voucher_recommendations") if r["golden_id"] == target["golden_id"]]
        assert b.run("document.querySelectorAll('table[data-table=vouchers] tbody tr').length") == len(vouchers)
        orders = {(r["source_system"], r["order_id"]) for r in read("fact_sales") if r["golden_id"] == target["golden_id"]}
        assert b.run("document.querySelectorAll('table[data-table=orders] tbody tr').length") == len(orders) > 0
        assert_drawn(b, ("loyalty", "timeline"))
        b.screenshot(ARTIFACTS / "customer_360.png", max_bytes=SCREENSHOT_BYTES)

        assert_clean(b, server)
    for shot in ("overview", "identity", "pipeline", "customers", "customer_360"):
        data = (ARTIFACTS / f"{shot}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) <= SCREENSHOT_BYTES + 5000, shot


def pick_customer(golden: list[dict], xref: list[dict], fact: list[dict]) -> dict:
    """A golden customer with a unique email and two or more source records, with the most varied purchases."""
    sizes: dict[str, int] = {}
    for r in xref:
        sizes[r["golden_id"]] = sizes.get(r["golden_id"], 0) + 1
    channels: dict[str, set] = {}
    orders: dict[str, set] = {}
    for r in fact:
        channels.setdefault(r["golden_id"], set()).add(r["channel"])
        orders.setdefault(r["golden_id"], set()).add((r["source_system"], r["order_id"]))
    emails = [r["email"] for r in golden]
    fit = [r for r in golden if r["email"] and emails.count(r["email"]) == 1 and sizes.get(r["golden_id"], 0) >= 2
           and r["golden_id"] in orders]
    assert fit, "no golden customer with an email, two source records and an order in the generated days"
    return max(fit, key=lambda r: (len(channels[r["golden_id"]]), len(orders[r["golden_id"]]), r["golden_id"]))


def test_a_key_without_pii_sees_no_email_or_phone_in_chromium(server, gold, published, tmp_path):
    from deltalake import DeltaTable

    from lakehouse.catalog import QUARANTINE, SILVER_CUSTOMERS

    manifest, read = gold
    golden = read("golden_customers")
    silver = DeltaTable(SILVER_CUSTOMERS.location(published)).to_pyarrow_table(columns=["email", "phone_e164"]).to_pylist()
    emails = {r["email"].lower() for r in golden + silver if r["email"]}
    phones = {r["phone_e164"] for r in golden + silver if r["phone_e164"]}
    raw_phones = set()
    for r in DeltaTable(QUARANTINE.location(published)).to_pyarrow_table().to_pylist():
        row = json.loads(r["row_json"] or "{}") if (r["row_json"] or "").startswith("{") else {}
        for k, v in row.items():
            if isinstance(v, str) and "@" in v and "mail" in k:
                emails.add(v.lower())
            if isinstance(v, str) and "phone" in k and sum(ch.isdigit() for ch in v) >= 9:
                raw_phones.add(v)
    assert emails and phones
    target = pick_customer(golden, read("customer_xref"), read("fact_sales"))
    pages: dict[str, str] = {}
    with Chromium(tmp_path / "profile") as b:
        sign_in(b, server, "reader", "/pages/customers")
        for path in ("/pages/overview", "/pages/identity", "/pages/pipeline", f"/pages/customers/{target['golden_id']}"):
            b.goto(server + path)
            pages[path] = b.html()
        b.goto(server + "/pages/pipeline")
        for href in b.run("[...document.querySelectorAll('a[data-drilldown]')].map(a => a.href)"):
            b.goto(href)
            pages[href] = b.html()
        for query in (target["email"], target["phone_e164"], target["full_name"]):
            if not query:
                continue
            b.goto(server + "/pages/customers")
            b.run_and_wait_load(f"document.querySelector('input[name=q]').value = {query!r};"
                                "document.querySelector('form[data-form=search]').submit()")
            pages[f"search {query[:3]}"] = b.html()
            assert target["golden_id"] in b.run("[...document.querySelectorAll('a[data-customer]')]"
                                                ".map(a => a.dataset.customer)")
        assert_clean(b, server)
        b.goto(server + f"/pages/customers/{target['golden_id']}")
        b.screenshot(ARTIFACTS / "customer_360_masked.png", max_bytes=SCREENSHOT_BYTES)
    assert len(pages) >= 7
    for where, html in pages.items():
        lowered = html.lower()
        leaked = [e for e in emails if e in lowered] + [p for p in phones | raw_phones if p in html]
        leaked += [p for p in phones if "0" + p[3:] in html and p.startswith("+44")]  # national form
        assert not leaked, (where, leaked[:3])
        unmasked = re.search(r"[\w.+-]{2,}@@?[\w-]+\.\w+", html)
        assert not unmasked, (where, unmasked.group(0))
        assert "PII masked" in html
