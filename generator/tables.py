"""Numeric activity frames -> landing columns (canonical names from ``lakehouse.entities``, per-source text formats)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator import fmt
from generator.activity import COUPONS, Events, Lines, Movements, Orders, Payments, Receipts
from generator.master import (
    CURRENCY, DEVICE_TYPES, EVENT_TYPES, LOCATIONS, MOVEMENT_TYPES, ONLINE_CHANNELS, ONLINE_PAYMENT_METHODS,
    ORDER_STATUSES, PAYMENT_STATUSES, POS_PAYMENT_METHODS, Catalogue,
)
from generator.people import Accounts

TRANSACTION_TYPES = ("sale", "return")


class TableBuilder:
    """Formats frames of one generation run; holds the lookups (ids, SKUs, categories) as arrow arrays."""

    def __init__(self, cat: Catalogue, online: Accounts, pos: Accounts) -> None:
        self.cat = cat
        self.sku_text = fmt.ints(cat.sku)
        self.online_ids = pa.array(online.ids, pa.string())
        self.member_ids = pa.array(pos.ids, pa.string())
        self.location_ids = pa.array([loc.location_id for loc in LOCATIONS], pa.string())
        self.product_code = pa.array([cat.leaf_code[leaf] for leaf in cat.leaf], pa.string())
        self.product_category_id = fmt.ints(cat.leaf_category_id[cat.leaf])
        self.product_brand = pa.array([b.lower() if b else None for b in cat.brand], pa.string())
        self.online = online

    # -- master data ----------------------------------------------------------------------------------------------
    def stores(self) -> dict[str, pa.Array]:
        """POS ``stores``: the ten stores and three warehouses."""
        return {
            "store_id": self.location_ids,
            "store_name": pa.array([loc.name for loc in LOCATIONS]),
            "location_type": pa.array([loc.location_type for loc in LOCATIONS]),
            "city": pa.array([loc.city for loc in LOCATIONS]),
            "region": pa.array([loc.region for loc in LOCATIONS]),
            "postcode": pa.array([loc.postcode for loc in LOCATIONS]),
            "country": pa.array([loc.country for loc in LOCATIONS]),
            "opened_at": pa.array([loc.opened_at.isoformat() for loc in LOCATIONS]),
        }

    def online_products(self, idx: np.ndarray, updated: np.ndarray) -> dict[str, pa.Array]:
        """Online ``products`` rows for catalogue positions ``idx``."""
        cat = self.cat
        ia = pa.array(idx)
        return {
            "sku": self.sku_text.take(ia),
            "product_name": pa.array([cat.name[i] for i in idx], pa.string()),
            "brand": pa.array([cat.brand[i] or None for i in idx], pa.string()),
            "category_code": self.product_code.take(ia),
            "unit_price": fmt.money(cat.price[idx]),
            "unit_cost": fmt.money(cat.cost[idx]),
            "currency": fmt.const(CURRENCY, len(idx)),
            "updated_at": fmt.timestamps(updated, "iso"),
        }

    def pos_products(self, idx: np.ndarray, updated: np.ndarray) -> dict[str, pa.Array]:
        """POS ``products`` rows (store spellings) for catalogue positions ``idx``."""
        cat = self.cat
        return {
            "item_code": self.sku_text.take(pa.array(idx)),
            "description": pa.array([cat.pos_description[i] for i in idx], pa.string()),
            "brand": pa.array([cat.pos_brand[i] or None for i in idx], pa.string()),
            "department": pa.array([cat.leaf_department[cat.leaf[i]] for i in idx], pa.string()),
            "price": fmt.money(cat.price[idx]),
            "cost": fmt.money(cat.cost[idx]),
            "updated_at": fmt.timestamps(updated, "pos"),
        }

    # -- online -----------------------------------------------------------------------------------------------------
    def orders(self, o: Orders, postcodes: pa.Array, ship_null: np.ndarray, with_coupon: bool) -> dict[str, pa.Array]:
        """Online ``orders`` (plus ``coupon_code`` once the schema has drifted)."""
        out = {
            "order_id": fmt.prefixed("ORD-", o.order_no, 9),
            "customer_id": self.online_ids.take(pa.array(o.acct)),
            "order_ts": fmt.timestamps(o.ts, "iso"),
            "status": fmt.lookup(ORDER_STATUSES, o.status),
            "channel": fmt.lookup(ONLINE_CHANNELS, o.channel),
            "device_type": fmt.lookup(DEVICE_TYPES, o.device),
            "currency": fmt.const(CURRENCY, len(o)),
            "shipping_postcode": fmt.with_nulls(postcodes.take(pa.array(o.acct)), ship_null),
            "updated_at": fmt.timestamps(o.updated, "iso"),
        }
        if with_coupon:
            out["coupon_code"] = fmt.lookup(COUPONS, np.maximum(o.coupon, 0), null=o.coupon < 0)
        return out

    def order_lines(self, lines: Lines) -> dict[str, pa.Array]:
        """Online ``order_lines``."""
        return {
            "order_id": fmt.prefixed("ORD-", lines.order_no, 9),
            "line_number": fmt.ints(lines.line_number),
            "sku": self.sku_text.take(pa.array(lines.sku)),
            "quantity": fmt.ints(lines.qty),
            "unit_price": fmt.money(lines.price),
            "discount_amount": fmt.money(lines.discount),
            "line_total": fmt.money(lines.total),
            "updated_at": fmt.timestamps(lines.updated, "iso"),
        }

    def payments(self, p: Payments) -> dict[str, pa.Array]:
        """Online ``payments``."""
        return {
            "payment_id": fmt.prefixed("PAY-", p.payment_no, 9),
            "order_id": fmt.prefixed("ORD-", p.order_no, 9),
            "payment_ts": fmt.timestamps(p.ts, "iso"),
            "payment_method": fmt.lookup(ONLINE_PAYMENT_METHODS, p.method),
            "amount": fmt.money(p.amount),
            "status": fmt.lookup(PAYMENT_STATUSES, p.status),
        }

    # -- pos --------------------------------------------------------------------------------------------------------
    def _txn_ids(self, store: np.ndarray, txn_no: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(self.location_ids.take(pa.array(store)), fmt.prefixed("", txn_no, 9), "-")

    def receipts(self, r: Receipts) -> dict[str, pa.Array]:
        """POS ``transactions`` (anonymous receipts have no member)."""
        anonymous = r.member < 0
        return {
            "transaction_id": self._txn_ids(r.store, r.txn_no),
            "store_id": self.location_ids.take(pa.array(r.store)),
            "member_id": fmt.with_nulls(self.member_ids.take(pa.array(np.maximum(r.member, 0))), anonymous)
            if len(self.member_ids) else fmt.const(None, len(r)),
            "transaction_ts": fmt.timestamps(r.ts, "pos"),
            "transaction_type": fmt.lookup(TRANSACTION_TYPES, r.type),
            "payment_method": fmt.lookup(POS_PAYMENT_METHODS, r.method),
            "total_amount": fmt.money(r.total),
        }

    def receipt_lines(self, lines: Lines, store_of_line: np.ndarray) -> dict[str, pa.Array]:
        """POS ``transaction_lines``."""
        return {
            "transaction_id": self._txn_ids(store_of_line, lines.order_no),
            "line_number": fmt.ints(lines.line_number),
            "item_code": self.sku_text.take(pa.array(lines.sku)),
            "quantity": fmt.ints(lines.qty),
            "unit_price": fmt.money(lines.price),
            "discount": fmt.money(lines.discount),
            "line_total": fmt.money(lines.total),
        }

    # -- clickstream and inventory ----------------------------------------------------------------------------------
    def events(self, e: Events, session_ids: pa.Array, code_null: np.ndarray) -> dict[str, pa.Array]:
        """Clickstream ``events`` in the REES46 layout plus ``device_type``."""
        sku = pa.array(e.sku)
        anonymous = e.acct < 0
        return {
            "event_time": fmt.timestamps(e.ts, "click"),
            "event_type": fmt.lookup(EVENT_TYPES, e.type),
            "product_id": self.sku_text.take(sku),
            "category_id": self.product_category_id.take(sku),
            "category_code": fmt.with_nulls(self.product_code.take(sku), code_null),
            "brand": self.product_brand.take(sku),
            "price": fmt.money(self.cat.price[e.sku]),
            "user_id": fmt.with_nulls(self.online_ids.take(pa.array(np.maximum(e.acct, 0))), anonymous)
            if len(self.online_ids) else fmt.const(None, len(e)),
            "user_session": session_ids.take(pa.array(e.session)),
            "device_type": fmt.lookup(DEVICE_TYPES, e.device),
        }

    def movements(self, m: Movements, first_no: int, references: list[str]) -> dict[str, pa.Array]:
        """Inventory ``movements``, numbered from ``first_no``."""
        return {
            "movement_id": fmt.prefixed("MV-", first_no + np.arange(len(m), dtype=np.int64), 10),
            "movement_ts": fmt.timestamps(m.ts, "iso"),
            "location_id": self.location_ids.take(pa.array(m.location)),
            "sku": self.sku_text.take(pa.array(m.sku)),
            "movement_type": fmt.lookup(MOVEMENT_TYPES, m.type),
            "quantity": fmt.ints(m.qty),
            "unit_cost": fmt.money(self.cat.cost[m.sku]),
            "reference": fmt.lookup(references, m.reference),
        }
