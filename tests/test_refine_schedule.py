"""Silver tables refined side by side (``flows.refine._side_by_side``): two tables run at once, a table never runs
beside an earlier table it reads or that reads it, and a failure stops new tables and is raised once the running
ones finish (no engine: the tables' refine is a stand-in that records what ran when); their quarantine writes take
turns."""

from __future__ import annotations

import threading

import pytest

from flows.refine import _side_by_side
from transforms.silver.tables import TABLES, SilverTable

WAIT_S = 20  # a stand-in waits this long at most for a table it expects to run beside it
LINGER_S = 1.0  # a stand-in waits this long for a table that must not start meanwhile (it passes either way)


def _table(name: str, reads: tuple[str, ...] = ()) -> SilverTable:
    return SilverTable(name, ("id",), ("id",), reads=reads)


class Recorder:
    """Records start and end of each table; ``meet(a, b)`` makes a and b each wait until the other has started;
    ``hold[a] = b`` makes a wait until b has finished (or failed)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, str]] = []
        self.started: dict[str, threading.Event] = {}
        self.meetings: dict[str, str] = {}
        self.fail: set[str] = set()
        self.hold: dict[str, str] = {}
        self.linger: dict[str, str] = {}
        self.tables: dict[str, SilverTable] = {}
        self.finished: dict[str, threading.Event] = {}

    def event(self, name: str) -> threading.Event:
        with self.lock:
            return self.started.setdefault(name, threading.Event())

    def meet(self, a: str, b: str) -> None:
        self.meetings[a], self.meetings[b] = b, a

    def __call__(self, table: SilverTable) -> None:
        with self.lock:
            running = [self.tables[n] for what, n in self.log if what == "start"
                       and ("end", n) not in self.log and ("failed", n) not in self.log]
            self.log.append(("start", table.name))
            self.tables[table.name] = table
        # the scheduler's promise: never two tables at once when one reads the other
        clash = [t.name for t in running if t.name in table.reads or table.name in t.reads]
        assert not clash, f"{table.name} started beside {clash}, one reading the other"
        self.event(table.name).set()
        if table.name in self.linger:  # give a table that should wait the time to start wrongly
            self.event(self.linger[table.name]).wait(LINGER_S)
        other = self.meetings.get(table.name)
        if other is not None:
            assert self.event(other).wait(WAIT_S), f"{table.name} never ran beside {other}"
        if table.name in self.hold:
            assert self.done(self.hold[table.name]).wait(WAIT_S), f"{self.hold[table.name]} never finished"
        if table.name in self.fail:
            with self.lock:
                self.log.append(("failed", table.name))
            self.done(table.name).set()
            raise RuntimeError(f"{table.name} failed")
        with self.lock:
            self.log.append(("end", table.name))
        self.done(table.name).set()

    def done(self, name: str) -> threading.Event:
        with self.lock:
            return self.finished.setdefault(name, threading.Event())

    def index(self, what: str, name: str) -> int:
        return self.log.index((what, name))


def test_independent_tables_run_side_by_side_and_readers_wait():
    a, b, c = _table("a"), _table("b", reads=("a",)), _table("c")
    rec = Recorder()
    rec.meet("a", "c")  # a finishes only once c has started: run one by one, this would never happen
    rec.linger["a"] = "b"
    _side_by_side([a, b, c], rec, workers=2)
    assert rec.index("start", "b") > rec.index("end", "a")  # b reads a
    assert {n for what, n in rec.log if what == "end"} == {"a", "b", "c"}


def test_a_table_read_by_a_later_one_runs_first():
    # the earlier table reads the later one (orders read the stored order lines): the later one waits
    first, second = _table("first", reads=("second",)), _table("second")
    rec = Recorder()
    rec.linger["first"] = "second"
    _side_by_side([first, second], rec, workers=2)
    assert rec.index("start", "second") > rec.index("end", "first")


def test_one_worker_keeps_catalog_order():
    tables = [_table(n) for n in "pqrs"]
    rec = Recorder()
    _side_by_side(tables, rec, workers=1)
    assert rec.log == [(what, n) for n in "pqrs" for what in ("start", "end")]


def test_after_a_failure_no_table_starts_and_the_failure_is_raised():
    tables = [_table("a"), _table("b"), _table("c")]
    rec = Recorder()
    rec.fail.add("a")
    with pytest.raises(RuntimeError, match="a failed"):
        _side_by_side(tables, rec, workers=1)
    assert rec.log == [("start", "a"), ("failed", "a")]


def test_a_table_running_beside_a_failure_finishes_before_it_is_raised():
    a, c = _table("a"), _table("c")
    rec = Recorder()
    rec.meet("a", "c")
    rec.fail.add("a")
    rec.hold["c"] = "a"  # c ends only after a failed
    with pytest.raises(RuntimeError, match="a failed"):
        _side_by_side([a, c], rec, workers=2)
    assert rec.log[-1] == ("end", "c")


def test_the_catalog_declares_what_orders_and_order_lines_read():
    from flows.refine import _selected

    order = [t.name for t in _selected(None)]
    assert order.index("payments") < order.index("orders") < order.index("order_lines")
    assert TABLES["orders"].reads == ("payments",)
    assert TABLES["order_lines"].reads == ("orders",)  # and its step writes the orders' totals: never side by side
    assert not any(TABLES[n].reads for n in ("customers", "products", "stores", "payments", "events",
                                              "inventory_movements"))


def test_quarantine_writes_from_tables_refined_side_by_side_take_turns(spark, settings):
    """Three threads MERGE into the one quarantine table at once (the first write creates it): every write commits
    and every row is held. Without the write lock, two commits race for the same Delta version and fail."""
    import datetime as dt

    from lakehouse import quarantine as Q

    day = dt.date(2026, 1, 1)

    def rows(table: str, n: int):
        return spark.createDataFrame(
            [(table, "{}", f'{{"k":"{i}"}}', f'{{"k":{i}}}', ["r"], "why", "run", day, None, None) for i in range(n)],
            Q.QUARANTINE_SCHEMA)

    errors: list[str] = []

    def write(table: str) -> None:
        try:
            for extra in range(3):  # a rerun of the day that quarantines one more row each time
                Q.write_quarantine(spark, rows(table, 20 + extra), settings, replace_days=(table, [day]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"{table}: {exc}")

    threads = [threading.Thread(target=write, args=(t,)) for t in ("silver.a", "silver.b", "silver.c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    held = {r["source_table"]: r["count"] for r in Q.read_quarantine(spark, settings).groupBy("source_table").count()
            .collect()}
    assert held == {"silver.a": 22, "silver.b": 22, "silver.c": 22}
