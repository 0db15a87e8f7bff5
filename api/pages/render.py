"""Templates, formatting filters and the charts of each page (publication charts are drawn once per publication)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from api.pages import charts as C
from api.pages.data import FUNNEL_CATEGORIES, PageData, PipelineData

TEMPLATES = Path(__file__).resolve().parent / "templates"


def money(value: Any) -> str:
    """``Decimal('1234.5')`` -> ``£1,234.50``; None -> an em dash."""
    if value is None:
        return "—"
    value = value if isinstance(value, Decimal) else Decimal(str(value))
    sign = "-" if value < 0 else ""
    return f"{sign}£{abs(value):,.2f}"


def count(value: Any) -> str:
    """``12345`` -> ``12,345``."""
    return "—" if value is None else f"{int(value):,}"


def pct(value: Any, digits: int = 1) -> str:
    """``0.1234`` -> ``12.3%``."""
    return "—" if value is None else f"{100.0 * float(value):.{digits}f}%"


def number(value: Any, digits: int = 2) -> str:
    """A float with ``digits`` decimals."""
    return "—" if value is None else f"{float(value):,.{digits}f}"


def when(value: Any) -> str:
    """Dates as ``YYYY-MM-DD``; datetimes (and ISO strings) as ``YYYY-MM-DD HH:MM UTC``."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def environment() -> jinja2.Environment:
    """The pages' Jinja2 environment (autoescaping on; templates from ``api/pages/templates``)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=money, count=count, pct=pct, number=number, when=when)
    return env


def _day_labels(days: list[dt.date]) -> list[str]:
    years = {d.year for d in days}
    return [d.strftime("%m-%d") if len(years) == 1 else d.isoformat() for d in days]


def _money_axis(value: float) -> str:
    return "£" + C.fmt_compact(value)


def _money_value(value: float) -> str:
    return money(Decimal(str(round(value, 2))))


def publication_charts(data: PageData) -> dict[str, Markup]:
    """Every chart of the overview, customer search and identity pages for one publication."""
    o, ident = data.overview, data.identity
    days = [d.day for d in o.days]
    labels = _day_labels(days)
    tips = [d.isoformat() for d in days]
    out: dict[str, Markup] = {}
    out["revenue"] = C.stacked_bars(
        "revenue", labels,
        [C.Series(c, [float(d.by_channel.get(c, 0)) for d in o.days], C.color_for(c, i)) for i, c in enumerate(o.channels)],
        line=C.Series("7-day average (all channels)",
                      [None if d.revenue_7d_avg is None else float(d.revenue_7d_avg) for d in o.days], C.INK),
        title="Revenue per day by channel", value_fmt=_money_value, axis_fmt=_money_axis, width=1200, height=300,
        tooltip_labels=tips)
    out["orders"] = C.stacked_bars("orders", labels, [C.Series("orders", [d.orders for d in o.days], "#2563eb")],
                                   title="Orders per day", width=580, height=220, tooltip_labels=tips)
    out["aov"] = C.stacked_bars(
        "aov", labels, [],
        line=C.Series("average order value", [None if d.avg_order_value is None else float(d.avg_order_value)
                                              for d in o.days], "#7c3aed"),
        title="Average order value per day", value_fmt=_money_value, axis_fmt=_money_axis, width=580, height=220,
        tooltip_labels=tips)
    stages = [("sessions", C.STAGE_COLORS[0]), ("viewed", C.STAGE_COLORS[1]), ("added to cart", C.STAGE_COLORS[2]),
              ("purchased", C.STAGE_COLORS[3])]
    out["funnel"] = C.grouped_hbars(
        "funnel", [(f.category, [f.sessions, f.view, f.cart, f.purchase]) for f in o.funnel[:FUNNEL_CATEGORIES]],
        stages, title="Conversion funnel by category (sessions)", width=1200, label_width=150)
    out["tiers"] = C.hbars("tiers", [(t, n, C.color_for(t, i)) for i, (t, n) in enumerate(o.tiers)],
                           title="Customers per loyalty tier", width=380, label_width=80)
    out["churn"] = C.hbars("churn", [(r, n, C.color_for(r, i)) for i, (r, n) in enumerate(o.churn)],
                           title="Customers per churn risk", width=380, label_width=80)
    tier_names = [t["tier"] for t in o.performance_tiers]
    out["top_products"] = C.hbars(
        "top_products", [(p["product_name"] or p["sku"] or "?", float(p["total_revenue"] or 0),
                          C.PALETTE[tier_names.index(p["performance_tier"]) % len(C.PALETTE)]
                          if p["performance_tier"] in tier_names else C.AXIS) for p in o.top_products],
        title="Top products by revenue", value_fmt=_money_value, width=580, label_width=230)
    out["performance_tiers"] = C.hbars(
        "performance_tiers", [(t["tier"], float(t["revenue"] or 0), C.PALETTE[i % len(C.PALETTE)])
                              for i, t in enumerate(o.performance_tiers)],
        title="Revenue per product performance tier", value_fmt=_money_value, width=380, label_width=100)
    out["identity_distribution"] = C.stacked_bars(
        "identity_distribution", [label for label, _ in ident.distribution],
        [C.Series("golden identities", [n for _, n in ident.distribution], "#2563eb")],
        title="Golden identities by number of source records", width=580, height=240)
    out["identity_rules"] = C.hbars("identity_rules", [(r["rule"], r["records"], C.PALETTE[i % len(C.PALETTE)])
                                                       for i, r in enumerate(ident.by_rule)],
                                    title="Source records by match rule", width=580, label_width=140)
    if ident.pairs is not None:
        out["identity_pairs"] = C.hbars(
            "identity_pairs", [(f"{p['pair']} · {p['rule']}", p["links"], C.PALETTE[i % len(C.PALETTE)])
                               for i, p in enumerate(ident.pairs)],
            title="Record links by source pair and rule", width=900, label_width=260)
    return out


def pipeline_charts(data: PipelineData) -> dict[str, Markup]:
    """The pipeline page's charts (redrawn whenever a system table changes)."""
    labels = _day_labels(data.quarantine_days)
    series = [C.Series(name, values, C.PALETTE[i % len(C.PALETTE)])
              for i, (name, values) in enumerate(data.quarantine_series.items())]
    return {"quarantine": C.stacked_bars("quarantine", labels, series,
                                         title="Quarantined rows per rule and ingest day (a row counts once per failed rule)",
                                         width=580, height=260, tooltip_labels=[d.isoformat() for d in data.quarantine_days])}


def customer_charts(loyalty: dict[str, Any] | None, orders: list[dict[str, Any]]) -> dict[str, Markup]:
    """The customer 360's charts (drawn per request: one customer's rows)."""
    out: dict[str, Markup] = {}
    if loyalty is not None:
        rows = [(f"{c['name']} (w {c['weight']:.2f})" if c["weight"] is not None else c["name"],
                 float(c["score"] or 0.0), C.PALETTE[i]) for i, c in enumerate(loyalty["components"])]
        out["loyalty"] = C.hbars("loyalty", rows, title="Loyalty score components (0-100, with weights)",
                                 value_fmt=lambda v: f"{v:.1f}", width=580, label_width=140)
    points = []
    for o in orders:
        if o["order_ts"] is None:
            continue
        tip = f"{o['order_ts']:%Y-%m-%d %H:%M} · {o['channel']} · {o['source_system']} {o['order_id']} · " \
              f"{o['lines']} line(s) · {money(o['net_exact'])} · {o['kind']}"
        points.append((o["order_ts"], float(o["net_amount"] or 0.0), o["channel"], tip))
    out["timeline"] = C.timeline("timeline", points, title="Purchase timeline across online and store", width=1200)
    return out
