"""The worker's collector schedule (config/gcwatch.py): recent garbage is collected and the
rest frozen, so no collection walks every cached workflow; garbage cycles among frozen
objects wait for the full collection; long collections are logged. Each check runs in a
Python process of its own: freezing the test runner's objects would change other tests."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines() + done.stderr.splitlines()  # logs go to stderr


CYCLE = """
import gc, weakref
from config.gcwatch import collect_all, collect_recent

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)
"""


def test_garbage_made_since_the_last_freeze_is_collected_at_the_next_one():
    out = run(CYCLE + """
collect_recent()
gone = cycle()  # made after the freeze, garbage at once
collect_recent()
print(gone() is None, gc.get_freeze_count() > 0)
""")
    assert out == ["True True"]


def test_a_cycle_frozen_while_alive_waits_for_the_full_collection():
    out = run(CYCLE + """
a, b = Node(), Node()
a.other, b.other = b, a
ref = weakref.ref(a)
collect_recent()  # a and b are alive now: frozen
del a, b  # a cycle of frozen objects: only a full collection finds it
collect_recent()
after_recent = ref() is None
collected, ms = collect_all()
print(after_recent, ref() is None, collected >= 2)
""")
    assert out == ["False True True"]


def test_an_object_frozen_is_still_freed_when_its_last_reference_goes():
    out = run(CYCLE + """
n = Node()
ref = weakref.ref(n)
collect_recent()
del n  # no cycle: freed by its reference count, frozen or not
print(ref() is None)
""")
    assert out == ["True"]


def test_a_long_collection_is_logged_with_its_generation_and_length():
    out = run("""
import gc
from config.logs import configure
from config.gcwatch import watch_gc_pauses
configure("json", "info")
watch_gc_pauses(threshold_ms=0)
watch_gc_pauses(threshold_ms=0)  # installed once
gc.collect()
import os, sys
sys.stderr.flush()
os._exit(0)  # no collection at exit
""")
    pauses = [json.loads(line) for line in out if '"gc pause"' in line]
    assert len(pauses) == 1
    assert pauses[0]["generation"] == 2 and pauses[0]["ms"] >= 0
    assert pauses[0]["level"] == "warning"


def test_the_schedule_collects_recent_garbage_every_period_and_everything_after_full_minutes():
    out = run("""
import asyncio, gc
from config.gcwatch import keep_pauses_short
from config.logs import configure
configure("json", "info")

async def main():
    stop = asyncio.Event()
    task = asyncio.create_task(keep_pauses_short(0.05, 0.002, stop))  # 0.002 min = 0.12 s
    await asyncio.sleep(0.5)
    stop.set()
    await task
    print(gc.get_freeze_count() > 0)
    off = asyncio.create_task(keep_pauses_short(0, 1, asyncio.Event()))
    await asyncio.wait_for(off, 1)  # 0 leaves Python's schedule alone: returns at once

asyncio.run(main())
""")
    assert out[0] == "True"
    full = [json.loads(line) for line in out[1:] if '"gc full collection"' in line]
    assert full and all(f["ms"] >= 0 and f["frozen"] > 0 for f in full)
