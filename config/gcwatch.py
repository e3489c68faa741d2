"""The garbage collector, kept from stopping the worker for long.

A full collection stops every thread of the process while it walks every tracked object. With
thousands of open workflows in the worker's cache that is hundreds of megabytes of objects:
measured on the embedded stack with 3,000 cached workflows, a full collection took 750 ms
about once a minute, and each one stalled every step in flight (the whole p99 tail of
`bench/sustained_load.py`). Almost all of those objects are long-lived (the cached
workflows), so walking them again and again finds nothing.

So the worker, every `gc_freeze_seconds`, collects what was allocated since the last time (a
short pause: only those objects are walked) and freezes the survivors (`gc.freeze`: moved to
a generation no collection walks). Freezing is safe: a frozen object is freed as usual when its
last reference goes; only garbage *cycles* among frozen objects (an evicted workflow, say) wait
for the full collection that runs every `gc_full_minutes`, unfrozen, logged with its pause.

Every collection of `threshold_ms` or more is logged as `gc pause` (generation, milliseconds,
objects collected), so a latency spike with no cause in the code names its cause.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

log = structlog.get_logger("gc")
_started: list[float] = []


def watch_gc_pauses(threshold_ms: float = 100.0) -> None:
    """Log every collection that takes `threshold_ms` or more (installed once per process)."""
    if any(getattr(cb, "__name__", "") == "_on_gc" for cb in gc.callbacks):
        return

    def _on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _started[:] = [time.perf_counter()]
        elif _started:
            ms = (time.perf_counter() - _started[0]) * 1000
            if ms >= threshold_ms:
                log.warning("gc pause", generation=info.get("generation"), ms=round(ms, 1),
                            collected=info.get("collected"))

    gc.callbacks.append(_on_gc)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection while a page of the read models is projected, then a young one.

    A page holds tens of thousands of rows alive at once, so while it is projected the
    collector would promote them and set off a full collection every page or so, each walking
    every object of the process, to find nothing: they die by reference count when the page is
    saved. Measured (bench/catchup.py's catch-up, alternating runs) that was 70 full
    collections and about 17 % of the catch-up. Cycles made meanwhile wait for the next
    collection; the young generations are collected on the way out."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect(1)


def collect_recent() -> int:
    """Collect what is not frozen (allocated since the last freeze), then freeze the rest."""
    collected = gc.collect()
    gc.freeze()
    return collected


def collect_all() -> tuple[int, float]:
    """A full collection of every object, frozen or not; then freeze the survivors again."""
    began = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    return collected, (time.perf_counter() - began) * 1000


async def keep_pauses_short(freeze_seconds: float, full_minutes: float,
                            stop: asyncio.Event) -> None:
    """The worker's collector schedule (see the module's docstring); `freeze_seconds` 0 leaves
    Python's own schedule alone."""
    if freeze_seconds <= 0:
        return
    collect_recent()
    last_full = time.monotonic()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=freeze_seconds)
            return
        except TimeoutError:
            pass
        if full_minutes > 0 and time.monotonic() - last_full >= full_minutes * 60:
            collected, ms = collect_all()
            last_full = time.monotonic()
            log.info("gc full collection", ms=round(ms, 1), collected=collected,
                     frozen=gc.get_freeze_count())
        else:
            collect_recent()
