"""Daily activity, vectorized with numpy: online orders (lines, payments, returns, cancellations, status updates),
store receipts (lines, returns), clickstream sessions whose purchases match online orders, and stock movements.

Every function here returns numeric arrays; :mod:`generator.tables` turns them into landing columns.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from generator.master import (
    ANONYMOUS_SEGMENT, DEVICE_P_BY_CHANNEL, N_STORES, ONLINE_CHANNEL_P, ONLINE_HOURS, ONLINE_PAYMENT_P, POS_PAYMENT_P,
    SEG_BASKET_MAX, SEG_BASKET_MIN, SEG_DISCOUNT, STORE_HOURS, STORE_P, WAREHOUSE_P, Catalogue,
)

# Order statuses (index into master.ORDER_STATUSES) and payment statuses (index into master.PAYMENT_STATUSES).
PLACED, SHIPPED, DELIVERED, CANCELLED, RETURNED = range(5)
CAPTURED, REFUNDED, FAILED = range(3)
SALE, RETURN = 0, 1
VIEW, CART, REMOVE, PURCHASE = range(4)

CLICKSTREAM_TRACKED_SHARE = 0.10  # online orders whose session was tracked (consented analytics)
ONLINE_RETURN_RATE = 0.07
POS_RETURN_RATE = 0.035
CANCEL_AT_ONCE = 0.02
CANCEL_LATER = 0.01
SHIPPED_SAME_DAY = 0.14
DELIVERY_UPDATE_RATE = 0.30  # orders whose later "delivered" status lands in a later file
MEMBER_SHARE = 0.62  # store receipts with a loyalty card
FAILED_PAYMENT_RATE = 0.02
COUPON_RATE = 0.10
COUPONS = ("WELCOME10", "SPRING15", "FREESHIP", "VIP20", "NEWYEAR5", "APP10")
DISCOUNT_PCT = np.array([5, 10, 15, 20, 25, 30])


@dataclass
class Frame:
    """A bundle of equally long numpy arrays (one per field)."""

    def __len__(self) -> int:
        first = fields(self)[0].name
        return len(getattr(self, first))

    def take(self, idx: np.ndarray):
        """The rows at ``idx`` (an index array or a boolean mask)."""
        return type(self)(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @classmethod
    def concat(cls, frames: list):
        """All rows of several frames, in order."""
        return cls(**{f.name: np.concatenate([getattr(fr, f.name) for fr in frames]) for f in fields(cls)})

    @classmethod
    def empty(cls):
        """A frame without rows."""
        return cls(**{f.name: np.zeros(0, dtype=np.int64) for f in fields(cls)})


@dataclass
class Orders(Frame):
    order_no: np.ndarray
    acct: np.ndarray
    ts: np.ndarray
    status: np.ndarray
    channel: np.ndarray
    device: np.ndarray
    updated: np.ndarray
    coupon: np.ndarray  # -1 = none


@dataclass
class Lines(Frame):
    order_no: np.ndarray  # order or transaction number
    line_number: np.ndarray
    sku: np.ndarray  # product position in the catalogue
    qty: np.ndarray
    price: np.ndarray  # pence
    discount: np.ndarray
    total: np.ndarray
    updated: np.ndarray


@dataclass
class Payments(Frame):
    payment_no: np.ndarray
    order_no: np.ndarray
    ts: np.ndarray
    method: np.ndarray
    amount: np.ndarray
    status: np.ndarray


@dataclass
class Receipts(Frame):
    txn_no: np.ndarray
    store: np.ndarray
    member: np.ndarray  # -1 = anonymous
    ts: np.ndarray
    type: np.ndarray
    method: np.ndarray
    total: np.ndarray


@dataclass
class Events(Frame):
    ts: np.ndarray
    type: np.ndarray
    sku: np.ndarray
    acct: np.ndarray  # -1 = anonymous visitor
    session: np.ndarray  # index into the batch's session ids
    device: np.ndarray


@dataclass
class Movements(Frame):
    ts: np.ndarray
    location: np.ndarray
    sku: np.ndarray
    type: np.ndarray  # index into master.MOVEMENT_TYPES
    qty: np.ndarray
    reference: np.ndarray  # index into the day's reference strings


def sample_times(rng: np.random.Generator, n: int, day_s: int, hours: np.ndarray) -> np.ndarray:
    """``n`` sorted timestamps (epoch seconds) on a day, following an hour-of-day profile."""
    h = rng.choice(24, size=n, p=hours)
    return np.sort(day_s + h * 3600 + rng.integers(0, 3600, n))


def _unique_per_group(rng: np.random.Generator, group: np.ndarray, sku: np.ndarray, n_sku: int) -> np.ndarray:
    """Re-draw SKUs that repeat within one order, so every order has distinct products."""
    sku = sku.copy()
    for _ in range(20):
        key = group * n_sku + sku
        srt = np.argsort(key, kind="stable")
        ks = key[srt]
        dup = np.zeros(len(ks), dtype=bool)
        dup[1:] = ks[1:] == ks[:-1]
        if not dup.any():
            break
        idx = srt[dup]
        sku[idx] = (sku[idx] + rng.integers(1, n_sku, len(idx))) % n_sku
    return sku


def draw_lines(rng: np.random.Generator, cat: Catalogue, cum_pop: np.ndarray, order_no: np.ndarray, seg: np.ndarray,
               updated: np.ndarray, member_discount: np.ndarray | None = None) -> Lines:
    """Basket lines for orders: size by segment, popular products more often, discounts by sensitivity."""
    n = len(order_no)
    lo, hi = SEG_BASKET_MIN[seg], SEG_BASKET_MAX[seg]
    sizes = lo + (rng.random(n) * (hi - lo + 1)).astype(np.int64)
    of = np.repeat(np.arange(n), sizes)
    total_lines = len(of)
    starts = np.cumsum(sizes) - sizes
    line_number = np.arange(total_lines) - starts[of] + 1
    sku = np.minimum(np.searchsorted(cum_pop, rng.random(total_lines)), cat.size - 1)
    sku = _unique_per_group(rng, of, sku, cat.size)
    u = rng.random(total_lines)
    qty = 1 + (u < 0.15) + (u < 0.04) * rng.integers(1, 4, total_lines)
    price = cat.price[sku]
    p_disc = SEG_DISCOUNT[seg[of]] * 0.35
    if member_discount is not None:
        p_disc = np.where(member_discount[of], p_disc, 0.08)
    has = rng.random(total_lines) < p_disc
    pct = DISCOUNT_PCT[rng.integers(0, len(DISCOUNT_PCT), total_lines)]
    discount = np.where(has, np.round(price * qty * pct / 100), 0).astype(np.int64)
    return Lines(order_no=order_no[of], line_number=line_number, sku=sku, qty=qty.astype(np.int64), price=price,
                 discount=discount, total=price * qty - discount, updated=updated[of])


def order_totals(lines: Lines, order_no: np.ndarray) -> np.ndarray:
    """Sum of line totals per order (orders given by number, lines sorted by order)."""
    pos = np.searchsorted(order_no, lines.order_no)
    return np.bincount(pos, weights=lines.total, minlength=len(order_no)).astype(np.int64)


@dataclass
class OnlineSales:
    orders: Orders
    lines: Lines
    payments: Payments
    totals: np.ndarray
    method: np.ndarray
    warehouse: np.ndarray


def online_sales(rng: np.random.Generator, cat: Catalogue, cum_pop: np.ndarray, *, n: int, first_order_no: int,
                 first_payment_no: int, day_s: int, accounts_pick, segments: np.ndarray, with_coupon: bool) -> OnlineSales:
    """New online orders of one chunk with their lines and payments."""
    acct = accounts_pick(rng, n)
    ok = acct >= 0
    acct = acct[ok]
    n = len(acct)
    ts = sample_times(rng, n, day_s, ONLINE_HOURS)
    order_no = first_order_no + np.arange(n, dtype=np.int64)
    channel = (rng.random(n) >= ONLINE_CHANNEL_P[0]).astype(np.int64)
    u = rng.random(n)
    cdf = np.cumsum(DEVICE_P_BY_CHANNEL, axis=1)[channel]
    device = (u[:, None] >= cdf).sum(axis=1).clip(0, 2)
    s = rng.random(n)
    status = np.where(s < CANCEL_AT_ONCE, CANCELLED, np.where(s < CANCEL_AT_ONCE + SHIPPED_SAME_DAY, SHIPPED, PLACED))
    later = np.minimum(ts + rng.integers(1800, 8 * 3600, n), day_s + 86399)
    updated = np.where(status == PLACED, ts, later)
    coupon = np.where(rng.random(n) < COUPON_RATE, rng.integers(0, len(COUPONS), n), -1) if with_coupon else np.full(n, -1)
    orders = Orders(order_no, acct, ts, status.astype(np.int64), channel, device.astype(np.int64), updated, coupon)
    lines = draw_lines(rng, cat, cum_pop, order_no, segments[acct], ts)
    totals = order_totals(lines, order_no)
    method = rng.choice(len(ONLINE_PAYMENT_P), size=n, p=ONLINE_PAYMENT_P)
    # Payments: a failed attempt now and then, the capture, and a refund for orders cancelled at once.
    failed = rng.random(n) < FAILED_PAYMENT_RATE
    cancelled = status == CANCELLED
    parts = [
        (order_no[failed], ts[failed] + 5, method[failed], totals[failed], np.full(failed.sum(), FAILED)),
        (order_no, ts + np.where(failed, 45, 3), method, totals, np.full(n, CAPTURED)),
        (order_no[cancelled], updated[cancelled], method[cancelled], -totals[cancelled], np.full(cancelled.sum(), REFUNDED)),
    ]
    pay_order = np.concatenate([p[0] for p in parts])
    pay_ts = np.concatenate([p[1] for p in parts])
    sort = np.lexsort((pay_ts, pay_order))
    payments = Payments(
        payment_no=first_payment_no + np.arange(len(pay_order), dtype=np.int64),
        order_no=pay_order[sort], ts=pay_ts[sort], method=np.concatenate([p[2] for p in parts])[sort],
        amount=np.concatenate([p[3] for p in parts])[sort], status=np.concatenate([p[4] for p in parts])[sort],
    )
    warehouse = rng.choice(len(WAREHOUSE_P), size=n, p=WAREHOUSE_P)
    return OnlineSales(orders, lines, payments, totals, method, warehouse)


@dataclass
class StoreSales:
    receipts: Receipts
    lines: Lines


def store_sales(rng: np.random.Generator, cat: Catalogue, cum_pop: np.ndarray, *, n: int, first_txn_no: int,
                day_s: int, members_pick, segments: np.ndarray) -> StoreSales:
    """New store receipts (sales) of one chunk with their lines."""
    ts = sample_times(rng, n, day_s, STORE_HOURS)
    txn_no = first_txn_no + np.arange(n, dtype=np.int64)
    store = rng.choice(N_STORES, size=n, p=STORE_P)
    member = members_pick(rng, n)
    member = np.where(rng.random(n) < MEMBER_SHARE, member, -1)
    seg = np.where(member >= 0, segments[np.maximum(member, 0)] if len(segments) else ANONYMOUS_SEGMENT, ANONYMOUS_SEGMENT)
    lines = draw_lines(rng, cat, cum_pop, txn_no, seg, ts, member_discount=member >= 0)
    totals = order_totals(lines, txn_no)
    method = rng.choice(len(POS_PAYMENT_P), size=n, p=POS_PAYMENT_P)
    receipts = Receipts(txn_no, store, member, ts, np.full(n, SALE), method, totals)
    return StoreSales(receipts, lines)


def pick_returns(rng: np.random.Generator, lines: Lines, parent_no: np.ndarray, eligible: np.ndarray, rate: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Which orders get (partly) returned, and which of their lines: (parent positions, line mask)."""
    chosen = eligible & (rng.random(len(parent_no)) < rate)
    pos = np.searchsorted(parent_no, lines.order_no)
    line_sel = chosen[pos] & (rng.random(len(lines)) < 0.6)
    # every chosen order returns at least its first line
    line_sel |= chosen[pos] & (lines.line_number == 1)
    return np.flatnonzero(chosen), line_sel


def return_lines(lines: Lines, new_no: np.ndarray, updated: np.ndarray) -> Lines:
    """Negative lines of a return: same products and prices, quantities and discounts negated."""
    return Lines(order_no=new_no, line_number=np.zeros(len(new_no), dtype=np.int64), sku=lines.sku, qty=-lines.qty,
                 price=lines.price, discount=-lines.discount, total=-lines.total, updated=updated)


def renumber_lines(lines: Lines) -> Lines:
    """Line numbers 1..k within each order (lines grouped by order number)."""
    if len(lines) == 0:
        return lines
    order = np.argsort(lines.order_no, kind="stable")
    out = lines.take(order)
    change = np.ones(len(out), dtype=bool)
    change[1:] = out.order_no[1:] != out.order_no[:-1]
    starts = np.flatnonzero(change)
    group = np.cumsum(change) - 1
    out.line_number = np.arange(len(out)) - starts[group] + 1
    return out


def clickstream(rng: np.random.Generator, cat: Catalogue, cum_pop: np.ndarray, *, day_s: int, purchases: Orders,
                purchase_lines: Lines, n_other: int, visitors_pick) -> tuple[Events, int]:
    """Sessions of one chunk: one per tracked online order (ending in its purchase events) plus browsing sessions
    that do not buy (some add to cart and leave). Returns events sorted by time and the number of sessions."""
    k = len(purchases)
    parts: list[tuple[np.ndarray, ...]] = []  # (session, key, type, sku)
    # -- converting sessions: views and carts of every ordered product, some browsing, then the purchase
    if k:
        pos = np.searchsorted(purchases.order_no, purchase_lines.order_no)
        rank = purchase_lines.line_number - 1
        sku = purchase_lines.sku
        two = rng.random(len(pos)) < 0.3
        parts.append((pos, 10 * rank, np.full(len(pos), VIEW), sku))
        parts.append((pos[two], 10 * rank[two] + 1, np.full(two.sum(), VIEW), sku[two]))
        parts.append((pos, 10 * rank + 2, np.full(len(pos), CART), sku))
        parts.append((pos, 1000 + rank, np.full(len(pos), PURCHASE), sku))
        first_sku = sku[rank == 0]
        first_pos = pos[rank == 0]
        n_browse = rng.integers(0, 4, len(first_pos))
        bs = np.repeat(first_pos, n_browse)
        bsku = _same_leaf(rng, cat, np.repeat(first_sku, n_browse))
        parts.append((bs, -10 + np.arange(len(bs)) % 7, np.full(len(bs), VIEW), bsku))
        rem = rng.random(len(first_pos)) < 0.15
        rs = first_pos[rem]
        rsku = _same_leaf(rng, cat, first_sku[rem])
        parts.append((rs, np.full(len(rs), 500), np.full(len(rs), CART), rsku))
        parts.append((rs, np.full(len(rs), 501), np.full(len(rs), REMOVE), rsku))
    # -- browsing sessions that do not buy
    m = n_other
    views = np.minimum(rng.geometric(0.35, m), 12)
    vs = np.repeat(np.arange(m), views)
    vstart = np.cumsum(views) - views
    vj = np.arange(len(vs)) - vstart[vs]
    popular = np.minimum(np.searchsorted(cum_pop, rng.random(len(vs))), cat.size - 1)
    focus = popular[vstart[vs]]
    vsku = np.where((vj > 0) & (rng.random(len(vs)) < 0.7), _same_leaf(rng, cat, focus), popular)
    parts.append((k + vs, 10 * vj, np.full(len(vs), VIEW), vsku))
    carts = rng.random(m) < 0.09
    cart_at = (rng.random(m) * views).astype(np.int64)
    cs = np.flatnonzero(carts)
    csku = vsku[vstart[cs] + cart_at[cs]]
    parts.append((k + cs, 10 * cart_at[cs] + 5, np.full(len(cs), CART), csku))
    removed = rng.random(len(cs)) < 0.35
    parts.append((k + cs[removed], 10 * views[cs[removed]] + 5, np.full(removed.sum(), REMOVE), csku[removed]))

    session = np.concatenate([p[0] for p in parts]).astype(np.int64)
    key = np.concatenate([p[1] for p in parts]).astype(np.int64)
    etype = np.concatenate([p[2] for p in parts]).astype(np.int64)
    esku = np.concatenate([p[3] for p in parts]).astype(np.int64)
    srt = np.lexsort((key, session))
    session, etype, esku = session[srt], etype[srt], esku[srt]
    gap = np.where(etype == PURCHASE, 0, rng.integers(8, 150, len(session)))
    csum = np.cumsum(gap)
    last = np.searchsorted(session, session, side="right") - 1
    first = np.searchsorted(session, session, side="left")
    conv = session < k
    # converting sessions end at the order time; browsing sessions start at a random time of the day
    suffix = csum[last] - csum + gap
    starts = sample_times(rng, m, day_s, ONLINE_HOURS) if m else np.zeros(0, dtype=np.int64)
    starts = rng.permutation(starts)
    order_ts = purchases.ts[np.minimum(session, max(k - 1, 0))] if k else np.zeros(len(session), dtype=np.int64)
    prefix = csum - csum[first]
    browse_start = starts[np.maximum(session - k, 0)] if m else np.zeros(len(session), dtype=np.int64)
    ts = np.where(conv, order_ts - suffix, browse_start + prefix)
    ts = np.clip(ts, day_s, day_s + 86399)
    # who and on which device
    browse_user = np.where(rng.random(m) < 0.4, visitors_pick(rng, m), -1) if m else np.zeros(0, dtype=np.int64)
    browse_device = rng.choice(3, size=m, p=[0.45, 0.45, 0.10]) if m else np.zeros(0, dtype=np.int64)
    user = np.where(conv, purchases.acct[np.minimum(session, max(k - 1, 0))] if k else -1,
                    browse_user[np.maximum(session - k, 0)] if m else -1)
    device = np.where(conv, purchases.device[np.minimum(session, max(k - 1, 0))] if k else 0,
                      browse_device[np.maximum(session - k, 0)] if m else 0)
    by_time = np.argsort(ts, kind="stable")
    ev = Events(ts=ts, type=etype, sku=esku, acct=user.astype(np.int64), session=session, device=device.astype(np.int64))
    return ev.take(by_time), k + m


def _same_leaf(rng: np.random.Generator, cat: Catalogue, sku: np.ndarray) -> np.ndarray:
    """A random product of the same leaf category as each given product."""
    leaf = cat.leaf[sku]
    return cat.leaf_start[leaf] + (rng.random(len(sku)) * cat.leaf_size[leaf]).astype(np.int64)
