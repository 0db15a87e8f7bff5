"""The generation run: master data, people, then day by day (in chunks) every source's landing files, then truth."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from generator import activity as A
from generator import fmt
from generator.master import (
    LOCATIONS, MOVEMENT_TYPES, N_STORES, ONLINE_SHARE, STORE_HOURS, ONLINE_HOURS, WAREHOUSE_P, _round_price,
    build_catalogue, day_volume,
)
from generator.people import UPDATE_RATE, PeopleFactory
from generator.tables import TableBuilder
from generator.writer import LandingWriter, csv_bytes
from lakehouse.entities import KINDS
from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings
from lakehouse.storage import Storage

DEFAULT_FORMATS = {"online": "csv", "pos": "csv", "clickstream": "jsonl", "inventory": "parquet"}
FORMAT_ALIASES = {"csv": "csv", "jsonl": "jsonl", "json": "jsonl", "ndjson": "jsonl", "parquet": "parquet"}
CHUNK_ORDERS = 80_000  # orders per chunk: each chunk writes its own files (bounded memory, files <= ~250k rows)
SCHEMA_DRIFT_FROM_DAY = 3  # online orders carry an extra column `coupon_code` from the third day on
PRICE_CHANGES_PER_DAY = (3, 9)

# Random streams (first word after the seed), so that adding draws to one stream leaves the others unchanged.
_S_CATALOGUE, _S_PEOPLE, _S_VOLUME, _S_DAY, _S_CHUNK, _S_TAIL, _S_INVENTORY, _S_ACCOUNTS = range(1, 9)


def resolve_formats(formats: dict[str, str] | None) -> dict[str, str]:
    """Per-source file formats: the defaults, overridden by ``formats`` (``json`` is accepted for JSON lines)."""
    out = dict(DEFAULT_FORMATS)
    for source, value in (formats or {}).items():
        source = source.strip()
        if source not in DEFAULT_FORMATS:
            raise LakehouseError(f"--format: unknown source {source!r} (sources: {', '.join(DEFAULT_FORMATS)})")
        fmt_name = FORMAT_ALIASES.get(str(value).strip().lower())
        if fmt_name is None:
            raise LakehouseError(f"--format {source}={value}: unknown format (use csv, jsonl or parquet)")
        out[source] = fmt_name
    return out


@dataclass
class GenerationSummary:
    """What a generation run wrote: rows per (source, entity), bad records by kind, files, people, truth."""

    start: dt.date
    days: int
    seed: int
    customers: int
    orders_per_day: int
    bad_share: float
    formats: dict[str, str]
    landing_root: str
    truth_root: str
    rows: dict[tuple[str, str], int]
    bad_records: dict[str, int]
    bad_by_entity: dict[tuple[str, str, str], int]
    eligible_rows: int
    files: list[str]
    truth_files: list[str]
    persons: int
    online_accounts: int
    pos_members: int
    persons_in_both: int
    elapsed_s: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def order_lines(self) -> int:
        """Online order lines plus store receipt lines."""
        return self.rows.get(("online", "order_lines"), 0) + self.rows.get(("pos", "transaction_lines"), 0)

    @property
    def total_rows(self) -> int:
        """Records written over all entities."""
        return sum(self.rows.values())

    @property
    def bad_record_count(self) -> int:
        """Records with an injected defect (schema-drift files not counted)."""
        return sum(v for k, v in self.bad_records.items() if k != "schema_drift")

    def to_dict(self) -> dict:
        """A JSON-friendly view (also written to ``truth/generation.json``, without the elapsed time)."""
        return {
            "start": self.start.isoformat(), "days": self.days, "seed": self.seed, "customers": self.customers,
            "orders_per_day": self.orders_per_day, "bad_share": self.bad_share, "formats": self.formats,
            "rows": {f"{s}.{e}": n for (s, e), n in sorted(self.rows.items())},
            "order_lines": self.order_lines,
            "bad_records": dict(sorted(self.bad_records.items())),
            "bad_records_by_entity": {f"{s}.{e}.{k}": n for (s, e, k), n in sorted(self.bad_by_entity.items())},
            "eligible_rows": self.eligible_rows,
            "persons": self.persons, "online_accounts": self.online_accounts, "pos_members": self.pos_members,
            "persons_in_both_systems": self.persons_in_both, "files": len(self.files),
            **self.extra,
        }

    def describe(self) -> str:
        """A human-readable report of the run."""
        end = self.start + dt.timedelta(days=self.days - 1)
        lines = [
            f"generated {self.start} .. {end} ({self.days} day(s)), seed {self.seed}, into {self.landing_root}",
            f"people: {self.persons} persons, {self.online_accounts} online accounts, {self.pos_members} POS members, "
            f"{self.persons_in_both} persons in both systems",
            f"{'source.entity':<30} {'rows':>12}  format",
        ]
        for (s, e), n in sorted(self.rows.items()):
            lines.append(f"  {s + '.' + e:<28} {n:>12,}  {self.formats.get(s, '')}")
        rate = self.bad_record_count / self.eligible_rows if self.eligible_rows else 0.0
        lines.append(f"order lines (online + store): {self.order_lines:,}; files: {len(self.files)}; "
                     f"rows: {self.total_rows:,}")
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(self.bad_records.items())) or "none"
        lines.append(f"bad records: {self.bad_record_count:,} ({rate:.2%} of {self.eligible_rows:,} eligible rows): {kinds}")
        lines.append(f"truth: {', '.join(self.truth_files)}")
        if self.elapsed_s:
            rps = self.total_rows / self.elapsed_s
            lines.append(f"took {self.elapsed_s:.1f}s ({rps:,.0f} rows/s, {self.order_lines / self.elapsed_s:,.0f} order lines/s)")
        return "\n".join(lines)


@dataclass
class _Pending:
    """Things that land on a later day: returns, status updates and late cancellations."""

    online_returns: defaultdict = field(default_factory=lambda: defaultdict(list))
    store_returns: defaultdict = field(default_factory=lambda: defaultdict(list))
    status: defaultdict = field(default_factory=lambda: defaultdict(list))


class _Simulation:
    def __init__(self, settings: Settings, *, start: dt.date, days: int, customers: int, orders_per_day: int,
                 seed: int, bad_share: float, formats: dict[str, str], progress: bool) -> None:
        self.start, self.days, self.seed = start, days, seed
        self.orders_per_day = orders_per_day
        self.storage = Storage(settings)
        self.settings = settings
        self.formats = formats
        self.progress = progress
        self.writer = LandingWriter(self.storage, formats, seed=seed, bad_share=bad_share)
        self.cat = build_catalogue(self._rng(_S_CATALOGUE))
        self.cum_pop = np.cumsum(self.cat.popularity)
        self.factory = PeopleFactory([seed, _S_PEOPLE], start, days)
        self.people = self.factory.build_people(customers, self._rng(_S_PEOPLE))
        self.online = self.factory.build_accounts("online", self._rng(_S_ACCOUNTS, 1))
        self.pos = self.factory.build_accounts("pos", self._rng(_S_ACCOUNTS, 2))
        self.tables = TableBuilder(self.cat, self.online, self.pos)
        self.pending = _Pending()
        self.next_order = 1
        self.next_payment = 1
        self.next_txn = 1
        self.next_movement = 1
        self.sources = {k: k for k in KINDS}

    def _rng(self, *words: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *words])

    # -- per day -----------------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Generate every day, with a progress bar over the orders."""
        volumes = []
        for d in range(self.days):
            day = self.start + dt.timedelta(days=d)
            volumes.append(max(2, int(self._rng(_S_VOLUME, d).poisson(day_volume(day, self.orders_per_day)))))
        from tqdm import tqdm

        with tqdm(total=sum(volumes), unit="orders", desc="generate", file=sys.stderr, disable=not self.progress,
                  dynamic_ncols=True) as bar:
            for d, volume in enumerate(volumes):
                bar.set_postfix_str(str(self.start + dt.timedelta(days=d)))
                self.run_day(d, volume, bar)

    def run_day(self, d: int, volume: int, bar) -> None:
        """One day: master data or price changes, customers, orders in chunks, then stock movements."""
        day = self.start + dt.timedelta(days=d)
        day_s = fmt.day_start(day)
        rng = self._rng(_S_DAY, d)
        self.writer.clear_day(self.sources, day)
        self._products(d, day, day_s, rng)
        self._customers(d, day, day_s, rng)
        self.online_postcodes = pa.array(self.online.values.get("postcode", []), pa.string())

        n_online = int(rng.binomial(volume, ONLINE_SHARE[day.weekday()]))
        n_online = min(max(n_online, 1), volume - 1)
        n_pos = volume - n_online
        n_chunks = max(1, math.ceil(volume / CHUNK_ORDERS))
        online_split = np.diff(np.linspace(0, n_online, n_chunks + 1).round().astype(int))
        pos_split = np.diff(np.linspace(0, n_pos, n_chunks + 1).round().astype(int))
        n_sku = self.cat.size
        self.sold = np.zeros(len(LOCATIONS) * n_sku, dtype=np.int64)
        self.returned = np.zeros(len(LOCATIONS) * n_sku, dtype=np.int64)
        tail = self._tail(d, day, day_s)
        for c in range(n_chunks):
            self._chunk(d, day, day_s, c, int(online_split[c]), int(pos_split[c]), tail if c == 0 else None)
            bar.update(int(online_split[c] + pos_split[c]))
        self._inventory(d, day, day_s)

    def _products(self, d: int, day: dt.date, day_s: int, rng: np.random.Generator) -> None:
        cat = self.cat
        if d == 0:
            self.writer.write("pos", "stores", day, self.tables.stores())
            idx = np.arange(cat.size)
            # The catalogue as it stood before the window: each product last edited some days earlier.
            updated = day_s - rng.integers(86400, 400 * 86400, cat.size)
        else:
            k = int(rng.integers(*PRICE_CHANGES_PER_DAY))
            idx = np.sort(rng.choice(cat.size, size=k, replace=False))
            factor = rng.uniform(0.8, 1.15, k)
            cat.price[idx] = np.maximum(_round_price((cat.price[idx] * factor).astype(np.int64)), cat.cost[idx] + 50)
            updated = day_s + rng.integers(5 * 3600, 7 * 3600, k)
        self.writer.write("online", "products", day, self.tables.online_products(idx, updated))
        pos_updated = updated + rng.integers(-1800, 1800, len(idx))
        self.writer.write("pos", "products", day, self.tables.pos_products(idx, pos_updated))

    def _customers(self, d: int, day: dt.date, day_s: int, rng: np.random.Generator) -> None:
        for acc, source, entity in ((self.online, "online", "customers"), (self.pos, "pos", "members")):
            new = np.flatnonzero(acc.created_day <= 0) if d == 0 else np.flatnonzero(acc.created_day == d)
            changed = np.zeros(0, dtype=np.int64)
            existing = acc.active_until(d - 1) if d > 0 else 0
            if existing:
                k = max(1, int(rng.binomial(existing, UPDATE_RATE)))
                changed = np.sort(rng.choice(existing, size=min(k, existing), replace=False))
                hours = fmt.day_start(day) + rng.integers(6 * 3600, 23 * 3600, len(changed))
                for i, ts in zip(changed.tolist(), hours.tolist()):
                    self.factory.update(acc, i, int(ts))
            rows = np.concatenate([new, changed]).astype(np.int64)
            if len(rows):
                self.writer.write(source, entity, day, acc.rows(rows))

    # -- orders --------------------------------------------------------------------------------------------------
    def _pick_online(self, d: int):
        return lambda rng, n: self.online.pick(rng, n, d)

    def _pick_members(self, d: int):
        return lambda rng, n: self.pos.pick(rng, n, d)

    def _tail(self, d: int, day: dt.date, day_s: int) -> dict:
        """Returns, delivered/cancelled status updates and store returns that fall due today."""
        rng = self._rng(_S_TAIL, d)
        out: dict = {}
        # online returns: one new order (status returned) per original order, negative lines, a refund
        due = self.pending.online_returns.pop(d, [])
        if due:
            parents = A.Orders.concat([p[0] for p in due])
            methods = np.concatenate([p[1] for p in due])
            lines = A.Lines.concat([p[2] for p in due])
            by_no = np.argsort(parents.order_no, kind="stable")
            parents, methods = parents.take(by_no), methods[by_no]
            n = len(parents)
            new_no = self.next_order + np.arange(n, dtype=np.int64)
            self.next_order += n
            ts = A.sample_times(rng, n, day_s, ONLINE_HOURS)
            ts = rng.permutation(ts)
            orders = A.Orders(new_no, parents.acct, ts, np.full(n, A.RETURNED), parents.channel, parents.device, ts,
                              np.full(n, -1))
            mapping = np.searchsorted(parents.order_no, lines.order_no)
            rl = A.renumber_lines(A.return_lines(lines, new_no[mapping], ts[mapping]))
            totals = A.order_totals(rl, new_no)
            pay = A.Payments(self.next_payment + np.arange(n, dtype=np.int64), new_no, ts + 3600, methods, totals,
                             np.full(n, A.REFUNDED))
            self.next_payment += n
            warehouse = rng.choice(len(WAREHOUSE_P), size=n, p=WAREHOUSE_P)
            loc = N_STORES + warehouse[np.searchsorted(new_no, rl.order_no)]
            self._count(self.returned, loc, rl.sku, -rl.qty)
            out["returns"] = (orders, rl, pay)
        # status updates of earlier orders (delivered, or cancelled a day later with a refund)
        due = self.pending.status.pop(d, [])
        if due:
            upd = A.Orders.concat([p[0] for p in due])
            totals = np.concatenate([p[1] for p in due])
            methods = np.concatenate([p[2] for p in due])
            upd.updated = day_s + rng.integers(7 * 3600, 21 * 3600, len(upd))
            cancel = upd.status == A.CANCELLED
            k = int(cancel.sum())
            pay = A.Payments(self.next_payment + np.arange(k, dtype=np.int64), upd.order_no[cancel],
                             upd.updated[cancel], methods[cancel], -totals[cancel], np.full(k, A.REFUNDED))
            self.next_payment += k
            out["status"] = (upd, pay)
        # store returns: a receipt of type return with negative lines, usually at the same store
        due = self.pending.store_returns.pop(d, [])
        if due:
            parents = A.Receipts.concat([p[0] for p in due])
            parents = parents.take(np.argsort(parents.txn_no, kind="stable"))
            lines = A.Lines.concat([p[1] for p in due])
            n = len(parents)
            new_no = self.next_txn + np.arange(n, dtype=np.int64)
            self.next_txn += n
            ts = rng.permutation(A.sample_times(rng, n, day_s, STORE_HOURS))
            store = np.where(rng.random(n) < 0.85, parents.store, rng.integers(0, N_STORES, n))
            mapping = np.searchsorted(parents.txn_no, lines.order_no)
            rl = A.renumber_lines(A.return_lines(lines, new_no[mapping], ts[mapping]))
            totals = A.order_totals(rl, new_no)
            receipts = A.Receipts(new_no, store, parents.member, ts, np.full(n, A.RETURN), parents.method, totals)
            self._count(self.returned, store[np.searchsorted(new_no, rl.order_no)], rl.sku, -rl.qty)
            out["store_returns"] = (receipts, rl)
        return out

    def _count(self, acc: np.ndarray, loc: np.ndarray, sku: np.ndarray, qty: np.ndarray) -> None:
        n_sku = self.cat.size
        acc += np.bincount(loc * n_sku + sku, weights=qty, minlength=len(acc)).astype(np.int64)

    def _chunk(self, d: int, day: dt.date, day_s: int, c: int, n_online: int, n_pos: int, tail: dict | None) -> None:
        rng = self._rng(_S_CHUNK, d, c)
        with_coupon = d + 1 >= SCHEMA_DRIFT_FROM_DAY
        # online sales
        sales = A.online_sales(rng, self.cat, self.cum_pop, n=n_online, first_order_no=self.next_order,
                               first_payment_no=self.next_payment, day_s=day_s, accounts_pick=self._pick_online(d),
                               segments=self.online.segment, with_coupon=with_coupon)
        self.next_order += len(sales.orders)
        self.next_payment += len(sales.payments)
        o = sales.orders
        not_cancelled = o.status != A.CANCELLED
        line_pos = np.searchsorted(o.order_no, sales.lines.order_no)
        self._count(self.sold, N_STORES + sales.warehouse[line_pos][not_cancelled[line_pos]],
                    sales.lines.sku[not_cancelled[line_pos]], sales.lines.qty[not_cancelled[line_pos]])
        # later: returns, deliveries, late cancellations
        parents, line_sel = A.pick_returns(rng, sales.lines, o.order_no, not_cancelled, A.ONLINE_RETURN_RATE)
        return_day = d + 1 + np.minimum(rng.geometric(0.25, len(parents)), 20)  # most returns within a week
        for due in np.unique(return_day[return_day < self.days]):
            sel = parents[return_day == due]
            lsel = line_sel & np.isin(line_pos, sel)
            self.pending.online_returns[int(due)].append((o.take(sel), sales.method[sel], sales.lines.take(np.flatnonzero(lsel))))
        u = rng.random(len(o))
        late_cancel = not_cancelled & (o.status == A.PLACED) & (u < A.CANCEL_LATER)
        delivered = not_cancelled & ~late_cancel & (u > 1 - A.DELIVERY_UPDATE_RATE)
        status_day = np.where(late_cancel, d + 1, d + rng.integers(2, 6, len(o)))
        for due in np.unique(status_day[(late_cancel | delivered) & (status_day < self.days)]):
            sel = np.flatnonzero((late_cancel | delivered) & (status_day == due))
            upd = o.take(sel)
            upd.status = np.where(late_cancel[sel], A.CANCELLED, A.DELIVERED)
            self.pending.status[int(due)].append((upd, sales.totals[sel], sales.method[sel]))

        # store sales
        store = A.store_sales(rng, self.cat, self.cum_pop, n=n_pos, first_txn_no=self.next_txn, day_s=day_s,
                              members_pick=self._pick_members(d), segments=self.pos.segment)
        self.next_txn += len(store.receipts)
        rc = store.receipts
        rline_pos = np.searchsorted(rc.txn_no, store.lines.order_no)
        self._count(self.sold, rc.store[rline_pos], store.lines.sku, store.lines.qty)
        rparents, rline_sel = A.pick_returns(rng, store.lines, rc.txn_no, np.ones(len(rc), dtype=bool), A.POS_RETURN_RATE)
        rday = d + np.minimum(rng.geometric(0.3, len(rparents)), 14)
        for due in np.unique(rday[rday < self.days]):
            sel = rparents[rday == due]
            lsel = rline_sel & np.isin(rline_pos, sel)
            self.pending.store_returns[int(due)].append((rc.take(sel), store.lines.take(np.flatnonzero(lsel))))

        # clickstream: a session per tracked order, plus browsing sessions at a realistic conversion rate
        tracked = rng.random(len(o)) < A.CLICKSTREAM_TRACKED_SHARE
        conversion = rng.uniform(0.025, 0.035)
        n_other = int(round(len(o) * A.CLICKSTREAM_TRACKED_SHARE * (1 / conversion - 1)))
        purchases = o.take(np.flatnonzero(tracked))
        plines = sales.lines.take(np.flatnonzero(tracked[line_pos]))
        events, n_sessions = A.clickstream(rng, self.cat, self.cum_pop, day_s=day_s, purchases=purchases,
                                           purchase_lines=plines, n_other=n_other,
                                           visitors_pick=self._pick_online(d))
        session_ids = fmt.uuids(rng, n_sessions)
        code_null = rng.random(len(events)) < 0.05

        # assemble with today's tail (in the first chunk) and write
        orders_parts, lines_parts, pay_parts = [o], [sales.lines], [sales.payments]
        rc_parts, rl_parts = [rc], [store.lines]
        if tail:
            if "returns" in tail:
                orders_parts.insert(0, tail["returns"][0])
                lines_parts.insert(0, tail["returns"][1])
                pay_parts.insert(0, tail["returns"][2])
            if "status" in tail:
                orders_parts.append(tail["status"][0])
                pay_parts.append(tail["status"][1])
            if "store_returns" in tail:
                rc_parts.insert(0, tail["store_returns"][0])
                rl_parts.insert(0, tail["store_returns"][1])
        all_orders = A.Orders.concat(orders_parts)
        ship_null = rng.random(len(all_orders)) < 0.04
        T, W = self.tables, self.writer
        W.write("online", "orders", day, T.orders(all_orders, self.online_postcodes, ship_null, with_coupon))
        W.write("online", "order_lines", day, T.order_lines(A.Lines.concat(lines_parts)))
        W.write("online", "payments", day, T.payments(A.Payments.concat(pay_parts)))
        all_rc = A.Receipts.concat(rc_parts)
        all_rl = A.Lines.concat(rl_parts)
        store_of_line = all_rc.store[_positions(all_rc.txn_no, all_rl.order_no)]
        W.write("pos", "transactions", day, T.receipts(all_rc))
        W.write("pos", "transaction_lines", day, T.receipt_lines(all_rl, store_of_line))
        W.write("clickstream", "events", day, T.events(events, session_ids, code_null))
        self.clickstream_sessions = getattr(self, "clickstream_sessions", 0) + n_sessions
        self.purchase_sessions = getattr(self, "purchase_sessions", 0) + len(purchases)

    # -- inventory -----------------------------------------------------------------------------------------------
    def _inventory(self, d: int, day: dt.date, day_s: int) -> None:
        rng = self._rng(_S_INVENTORY, d)
        n_sku = self.cat.size
        n_loc = len(LOCATIONS)
        ymd = day.strftime("%Y%m%d")
        refs: list[str] = []
        parts: list[A.Movements] = []

        def ref(text: str) -> int:
            refs.append(text)
            return len(refs) - 1

        inbound, outbound, adjustment = (MOVEMENT_TYPES.index(t) for t in ("inbound", "outbound", "adjustment"))
        base = {loc: ref(f"SALES-{ymd}-{LOCATIONS[loc].location_id}") for loc in range(n_loc)}
        ret = {loc: ref(f"RETURNS-{ymd}-{LOCATIONS[loc].location_id}") for loc in range(n_loc)}
        for counts, mtype, hour, refs_of in ((self.sold, outbound, 22, base), (self.returned, inbound, 21, ret)):
            nz = np.flatnonzero(counts)
            loc, sku = nz // n_sku, nz % n_sku
            parts.append(A.Movements(day_s + hour * 3600 + loc * 60 + rng.integers(0, 60, len(nz)), loc, sku,
                                     np.full(len(nz), mtype), counts[nz], np.array([refs_of[x] for x in loc.tolist()],
                                                                                   dtype=np.int64)))
        for w in range(N_STORES, n_loc):  # supplier deliveries to the warehouses
            sku = np.flatnonzero(rng.random(n_sku) < 0.04)
            po = ref(f"PO-{ymd}-{LOCATIONS[w].location_id}")
            parts.append(A.Movements(day_s + 6 * 3600 + rng.integers(0, 4 * 3600, len(sku)), np.full(len(sku), w), sku,
                                     np.full(len(sku), inbound), 12 * rng.integers(2, 41, len(sku)), np.full(len(sku), po)))
        for s in range(N_STORES):  # transfers warehouse -> store
            sku = np.flatnonzero(rng.random(n_sku) < 0.02)
            k = len(sku)
            w = N_STORES + int(rng.choice(len(WAREHOUSE_P), p=WAREHOUSE_P))
            tr = ref(f"TR-{ymd}-{LOCATIONS[w].location_id}-{LOCATIONS[s].location_id}")
            qty = rng.integers(6, 49, k)
            out_ts = day_s + 5 * 3600 + rng.integers(0, 3600, k)
            parts.append(A.Movements(out_ts, np.full(k, w), sku, np.full(k, outbound), qty, np.full(k, tr)))
            parts.append(A.Movements(out_ts + rng.integers(1800, 3 * 3600, k), np.full(k, s), sku, np.full(k, inbound),
                                     qty, np.full(k, tr)))
        adj = np.flatnonzero(rng.random(n_loc * n_sku) < 0.003)  # stock counts: shrinkage, damage, found items
        loc, sku = adj // n_sku, adj % n_sku
        qty = np.where(rng.random(len(adj)) < 0.75, -rng.integers(1, 6, len(adj)), rng.integers(1, 4, len(adj)))
        adj_ref = {loc_i: ref(f"ADJ-{ymd}-{LOCATIONS[loc_i].location_id}") for loc_i in range(n_loc)}
        parts.append(A.Movements(day_s + 20 * 3600 + rng.integers(0, 3600, len(adj)), loc, sku,
                                 np.full(len(adj), adjustment), qty,
                                 np.array([adj_ref[x] for x in loc.tolist()], dtype=np.int64)))
        mv = A.Movements.concat(parts)
        mv = mv.take(np.argsort(mv.ts, kind="stable"))
        self.writer.write("inventory", "movements", day, self.tables.movements(mv, self.next_movement, refs))
        self.next_movement += len(mv)

    # -- truth ---------------------------------------------------------------------------------------------------
    def write_truth(self) -> list[str]:
        """identity_map.csv, persons.csv and bad_records.csv under the truth root."""
        truth = self.storage.truth_dir().rstrip("/")
        written = []
        ids = {
            "source_system": ["online"] * self.online.size + ["pos"] * self.pos.size,
            "source_customer_id": self.online.ids + self.pos.ids,
            "person_id": [self.people.person_id[p] for p in self.online.person.tolist()]
            + [self.people.person_id[p] for p in self.pos.person.tolist()],
        }
        for name, table in (("identity_map.csv", pa.table(ids)), ("persons.csv", self.factory.persons_table()),
                            ("bad_records.csv", self.writer.bad_records_table())):
            uri = f"{truth}/{name}"
            self.storage.write_bytes(uri, csv_bytes(table))
            written.append(uri)
        return written


def _positions(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Positions of ``keys`` in an array that is sorted or not (via an argsort)."""
    order = np.argsort(sorted_keys, kind="stable")
    return order[np.searchsorted(sorted_keys[order], keys)]


def check_parameters(*, days: int, customers: int, orders_per_day: int, bad_share: float = 0.01) -> None:
    """Refuse a generation too small to mean anything (raises LakehouseError naming the option); before any work."""
    if days < 1:
        raise LakehouseError(f"--days must be at least 1, got {days}")
    if customers < 10:
        raise LakehouseError(f"--customers must be at least 10, got {customers}")
    if orders_per_day < 2:
        raise LakehouseError(f"--orders-per-day must be at least 2, got {orders_per_day}")
    if not 0.0 <= bad_share <= 0.2:
        raise LakehouseError(f"--bad-share must be between 0 and 0.2 (a share, e.g. 0.01), got {bad_share}")


def generate(settings: Settings, *, start: dt.date, days: int, customers: int, orders_per_day: int, seed: int,
             bad_share: float = 0.01, formats: dict[str, str] | None = None, progress: bool = False) -> GenerationSummary:
    """Write ``days`` days of landing files for every built-in source, plus the ground truth; return a summary."""
    check_parameters(days=days, customers=customers, orders_per_day=orders_per_day, bad_share=bad_share)
    resolved = resolve_formats(formats)
    t0 = time.perf_counter()
    if progress:
        print(f"generate: {customers:,} people, catalogue and stores ...", file=sys.stderr, flush=True)
    sim = _Simulation(settings, start=start, days=days, customers=customers, orders_per_day=orders_per_day, seed=seed,
                      bad_share=bad_share, formats=resolved, progress=progress)
    sim.run()
    summary = GenerationSummary(
        start=start, days=days, seed=seed, customers=customers, orders_per_day=orders_per_day, bad_share=bad_share,
        formats=resolved, landing_root=str(settings.landing_root), truth_root=str(settings.truth_root),
        rows=dict(sim.writer.rows), bad_records=dict(sim.writer.bad_by_kind), bad_by_entity=dict(sim.writer.bad_by_entity),
        eligible_rows=sim.writer.eligible_rows, files=list(sim.writer.files), truth_files=[],
        persons=sim.people.size, online_accounts=sim.online.size, pos_members=sim.pos.size,
        persons_in_both=len(set(sim.online.person.tolist()) & set(sim.pos.person.tolist())),
        extra={"clickstream_sessions": sim.clickstream_sessions, "purchase_sessions": sim.purchase_sessions},
    )
    truth_files = sim.write_truth()
    truth = sim.storage.truth_dir().rstrip("/")
    summary.truth_files = truth_files + [f"{truth}/generation.json"]
    sim.storage.write_bytes(f"{truth}/generation.json", (json.dumps(summary.to_dict(), indent=2) + "\n").encode())
    summary.elapsed_s = time.perf_counter() - t0
    return summary
