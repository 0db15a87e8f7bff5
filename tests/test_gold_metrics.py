"""Customer metrics, RFM, segments, churn and loyalty on tiny frames (edge cases included)."""

from __future__ import annotations

import pytest

from test_gold_frames import AS_OF, D, event, events, golden, line, money, order_lines, products, rows_by, xref
from transforms.gold.common import midrank_percentile, midrank_quintile
from transforms.gold.dimensions import conform_products
from transforms.gold.facts import build_fact_sales
from transforms.gold.loyalty import score_loyalty
from transforms.gold.metrics import attach_golden_id_to_events, build_customer_metrics

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore:.*No Partition Defined")]


@pytest.mark.parametrize(
    "values, higher_is_better, expected",
    [
        (list(range(10)), True, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]),
        (list(range(10)), False, [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]),
        ([7], True, [3]),                                   # a lone customer is average
        ([4, 4, 4, 4], True, [3, 3, 3, 3]),                 # all tied: everyone average
        ([1, 1, 1, 1, 1, 1, 2, 3, 4, 5], True, [2, 2, 2, 2, 2, 2, 4, 4, 5, 5]),  # ties never split
        ([None, 1, 2], True, [None, 2, 4]),                 # nulls are not ranked
    ],
)
def test_midrank_quintile(spark, values, higher_is_better, expected):
    df = spark.createDataFrame([(i, v) for i, v in enumerate(values)], "i int, v int")
    out = df.select("i", midrank_quintile("v", higher_is_better=higher_is_better).alias("q")).orderBy("i").collect()
    assert [r["q"] for r in out] == expected


def test_midrank_percentile(spark):
    df = spark.createDataFrame([(i, float(v)) for i, v in enumerate([10, 20, 20, 40])], "i int, v double")
    out = [r["p"] for r in df.select("i", midrank_percentile("v").alias("p")).orderBy("i").collect()]
    assert out == [12.5, 50.0, 50.0, 87.5]


def _scenario(spark):
    """Seven customers covering every segment and churn branch, plus returns exceeding sales."""
    L = []
    # G1: a single purchase (New Customer, churn N/A)
    L.append(line("g1o1", 1, "A", 1, 10, day=D(2026, 1, 20), customer="c1"))
    # G2: three purchases 10 days apart, last 10 days ago -> ratio 1.0 -> Low
    for i, day in enumerate([D(2026, 1, 1), D(2026, 1, 11), D(2026, 1, 21)]):
        L.append(line(f"g2o{i}", 1, "B", 1, 20, day=day, customer="c2"))
    # G3: two purchases 2 days apart, last 28 days ago -> ratio 14 -> High; one of them in a store (both channels)
    L.append(line("g3o1", 1, "C", 2, 5, day=D(2026, 1, 1), customer="c3"))
    L.append(line("g3t1", 1, "C", 1, 5, day=D(2026, 1, 3), customer="m3", system="pos", channel="store", store="S1"))
    # G4: returns exceeding sales (a return of items bought before the data starts)
    L.append(line("g4o1", 1, "A", 1, 10, day=D(2026, 1, 5), customer="c4"))
    L.append(line("g4r1", 1, "A", -3, 10, day=D(2026, 1, 6), customer="c4"))
    # G8: ten purchases (Champion), medium churn: interval 1 day, last purchase 2 days ago -> ratio 2 -> Medium
    for i in range(10):
        L.append(line(f"g8o{i}", 1, "D", 1, 8, day=D(2026, 1, 20 + i), customer="c8"))
    # G9: five purchases on one day -> Loyal, churn N/A (one purchase day)
    for i in range(5):
        L.append(line(f"g9o{i}", 1, "A", 1, 10, day=D(2026, 1, 15), customer="c9"))
    # a cancelled order is not a purchase and not revenue
    L.append(line("g1c1", 1, "B", 1, 20, day=D(2026, 1, 21), customer="c1", line_type="cancelled"))
    lines = order_lines(spark, L)
    x = xref(spark, [("online", "c1", "G1"), ("online", "c2", "G2"), ("online", "c3", "G3"), ("pos", "m3", "G3"),
                     ("online", "c4", "G4"), ("online", "c5", "G5"), ("online", "c6", "G6"), ("online", "c8", "G8"),
                     ("online", "c9", "G9")])
    fact = build_fact_sales(lines, xref=x, dim_product=conform_products(products(spark)))
    ev = events(spark, [
        event("view", "A", user="c5", session="s5"), event("cart", "A", user="c5", session="s5", hour=11),
        event("view", "B", user="c6", session="s6"), event("view", "A", user="c1", session="s1", day=D(2026, 1, 19)),
        event("view", "A", user="c1", session="s1b", day=D(2026, 1, 22)), event("view", "A", user=None, session="anon"),
    ])
    ev = attach_golden_id_to_events(ev, xref=x)
    gold = golden(spark, ["G1", "G2", "G3", "G4", "G5", "G6", "G7", "G8", "G9"])
    return gold, fact, ev


def test_customer_metrics_segments_churn_and_edge_cases(spark):
    gold, fact, ev = _scenario(spark)
    m = rows_by(build_customer_metrics(gold, fact_sales=fact, events_with_golden=ev, as_of=AS_OF), "golden_id")
    assert len(m) == 9
    g1, g2, g3, g4, g5, g6, g7, g8, g9 = (m[f"G{i}"] for i in range(1, 10))
    # one purchase: New Customer, no rhythm -> N/A; the cancelled order counts neither as purchase nor revenue
    assert (g1["total_purchases"], g1["total_revenue"], g1["customer_segment"], g1["churn_risk"]) == (1, money(10), "New Customer", "N/A")
    assert g1["recency_days"] == 11 and g1["total_sessions"] == 2 and g1["total_views"] == 2
    assert g1["first_activity_date"] == D(2026, 1, 19) and g1["last_activity_date"] == D(2026, 1, 22)
    assert (g2["mean_interpurchase_days"], g2["churn_ratio"], g2["churn_risk"]) == (10.0, 1.0, "Low")
    assert g2["customer_segment"] == "Potential Loyalist" and g2["avg_order_value"] == money(20)
    assert (g3["churn_risk"], g3["online_orders"], g3["store_orders"], g3["channels_used"]) == ("High", 1, 1, 2)
    assert g3["store_revenue"] == money(5) and g3["online_revenue"] == money(10)
    # returns exceeding sales: negative net revenue, still one purchase, the return counted
    assert (g4["total_revenue"], g4["total_purchases"], g4["return_orders"], g4["returned_amount"]) == (money(-20), 1, 1, money(30))
    assert g4["m_score"] == 1
    assert (g5["customer_segment"], g5["rfm_score"], g5["churn_risk"]) == ("Cart Abandoner", None, "N/A")
    assert g6["customer_segment"] == "Visitor" and g7["customer_segment"] == "Visitor" and g7["total_events"] == 0
    assert (g8["customer_segment"], g8["churn_risk"], g8["mean_interpurchase_days"]) == ("Champion", "Medium", 1.0)
    assert (g9["customer_segment"], g9["churn_risk"]) == ("Loyal", "N/A")
    # RFM over the six buyers: ties share a score, composite is the sum
    buyers = [g1, g2, g3, g4, g8, g9]
    assert all(b["rfm_score"] == b["r_score"] + b["f_score"] + b["m_score"] for b in buyers)
    assert all(3 <= b["rfm_score"] <= 15 for b in buyers)
    assert g1["f_score"] == g4["f_score"]                      # one purchase each: same F
    assert g8["f_score"] == 5 and g8["r_score"] == 5           # most orders, most recent
    assert g3["r_score"] == 1                                  # least recent


def test_loyalty_components_weights_and_tiers(spark):
    gold, fact, ev = _scenario(spark)
    metrics = build_customer_metrics(gold, fact_sales=fact, events_with_golden=ev, as_of=AS_OF)
    scores = rows_by(score_loyalty(metrics, golden_customers=gold, as_of=AS_OF), "golden_id")
    for s in scores.values():
        explained = (s["rfm_component"] * s["rfm_weight"] + s["value_component"] * s["value_weight"]
                     + s["tenure_component"] * s["tenure_weight"] + s["channel_component"] * s["channel_weight"])
        assert s["loyalty_score"] == pytest.approx(explained, abs=0.06)
        assert 0 <= s["loyalty_score"] <= 100
        expected_tier = ("platinum" if s["loyalty_score"] >= 80 else "gold" if s["loyalty_score"] >= 60
                         else "silver" if s["loyalty_score"] >= 35 else "bronze")
        assert s["loyalty_tier"] == expected_tier
    g3, g4, g7, g8 = scores["G3"], scores["G4"], scores["G7"], scores["G8"]
    assert g3["channel_component"] == 100.0 and g8["channel_component"] == 50.0 and g7["channel_component"] == 0.0
    assert g7["rfm_component"] == 0.0 and g7["value_component"] == 0.0 and float(g7["expected_future_value"]) == 0.0
    assert g4["value_component"] == 0.0 and float(g4["expected_future_value"]) == 0.0   # negative AOV: no value
    # tenure: first seen 2025-01-01, as of 2026-01-31 = 395 days of 730
    assert g7["tenure_days"] == 395 and g7["tenure_component"] == pytest.approx(100 * 395 / 730, abs=0.01)
    assert g8["value_component"] > scores["G1"]["value_component"]
    assert g8["loyalty_score"] > g7["loyalty_score"]


def test_loyalty_rejects_bad_weights(spark):
    from lakehouse.errors import LakehouseError

    gold, fact, ev = _scenario(spark)
    metrics = build_customer_metrics(gold, fact_sales=fact, events_with_golden=ev, as_of=AS_OF)
    with pytest.raises(LakehouseError, match="sum to 1"):
        score_loyalty(metrics, golden_customers=gold, as_of=AS_OF, weights={"rfm": 0.9})
