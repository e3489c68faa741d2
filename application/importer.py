"""`import FILE.jsonl`: commands sent through the real workflows, in order.

Each line is validated (pydantic, unknown fields refused), given defaults (`on` today,
`actor` the importer's, `id` derived from the file name, line number and text so that
importing a file again is idempotent), and sent to its case's workflow. Lines touching
different cases and apartments go in parallel; the lines of one case that are ready
together go as one batched update whose activity applies them in order and answers per
line. Order is kept wherever it matters: per case, per apartment, and around any line
that may free an apartment this file cannot see.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from application.errors import Unavailable
from application.gateway import ChainClient, Refused, is_transient
from domain.commands import TYPED, ApplyLine, import_line_adapter
from domain.personal_number import find_personal_number, mask_personal_numbers
from domain.views import LineResult

BARRIER = "*"
MAX_BATCH = 200


@dataclass
class Line:
    number: int
    step: Any
    keys: tuple[str, ...]
    identity: tuple[str, str | None, str | None] | None = None

    @property
    def case(self) -> str | None:
        return getattr(self.step, "case", None)


@dataclass
class Refusal:
    line: int
    case: str | None
    reason: str


@dataclass
class ImportReport:
    accepted: int = 0
    duplicates: int = 0
    refused: list[Refusal] = field(default_factory=list)
    stages: dict[str, str] = field(default_factory=dict)
    stopped_early: bool = False
    outage: str | None = None  # why the import stopped without an answer from the stack
    not_sent: int = 0  # lines neither accepted nor refused, because of the outage

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "accepted": self.accepted,
            "duplicates": self.duplicates,  # of the accepted: recorded by an earlier import
            "refused": [{"line": r.line, "case": r.case, "reason": r.reason} for r in self.refused],
        }
        if self.outage:
            answer.update(outage=self.outage, not_sent=self.not_sent)
        return answer


class Outage(Exception):
    """The stack did not answer a line within the import's patience: not a refusal."""


def transient(exc: BaseException) -> bool:
    """An error of the transport or a busy server, worth sending the line again for: never
    a refusal (that is `Refused`, or a refused LineResult)."""
    if isinstance(exc, RPCError):
        return is_transient(exc)
    return isinstance(exc, (Unavailable, WorkflowUpdateRPCTimeoutOrCancelledError,
                            ConnectionError, TimeoutError))


def describe(exc: ValidationError) -> str:
    """A pydantic error as a user reads it: the field path and what is wrong."""
    parts = []
    for err in exc.errors()[:3]:
        loc = [str(p) for p in err["loc"]]
        if len(loc) > 1 and loc[0] in _TAGS:
            loc = loc[1:]
        where = ".".join(loc) or "line"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


_TAGS = set(import_line_adapter.json_schema()["discriminator"]["mapping"])


def command_id(source: str, number: int, text: str) -> str:
    """`<file>:<line>:<hash of the text>`: the same line of the same file is the same command.

    In about one in ten thousand hashes the hex digits happen to form a valid personal
    identity number, which no id may carry; those few take a digest spelled in letters."""
    digest = hashlib.sha256(text.strip().encode()).hexdigest()[:12]
    derived = f"{source}:{number}:{digest}"
    if find_personal_number(derived) is None:
        return derived
    return f"{source}:{number}:{digest.translate(_LETTERS)}"


_LETTERS = str.maketrans("0123456789", "ghijklmnop")


class DuplicateKey(ValueError):
    """A JSON object names the same key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse a repeated key: `json.loads` would silently keep the last value, so a line
    `{"on": "2024-01-02", …, "on": "2025-01-02"}` would be recorded with a date nobody checked."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise DuplicateKey(f"duplicate key {key!r}: each field may appear once")
        data[key] = value
    return data


def parse(
    lines: list[str], *, source: str, actor: str, today: date
) -> tuple[list[Line], list[Refusal]]:
    """Validate every line; give defaults; compute the ordering keys."""
    parsed: list[Line] = []
    refused: list[Refusal] = []
    apartment_of: dict[str, str | None] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if text.startswith(UNDECODABLE):
            refused.append(Refusal(number, None, text[len(UNDECODABLE):]))
            continue
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except DuplicateKey as exc:
            refused.append(Refusal(number, None, str(exc)))
            continue
        except json.JSONDecodeError as exc:
            refused.append(Refusal(number, None, f"not valid JSON: {exc.msg} at column {exc.colno}"))
            continue
        except RecursionError:
            refused.append(Refusal(number, None, "not valid JSON: nested too deeply"))
            continue
        case = data.get("case") if isinstance(data, dict) else None
        # a refused line's case as typed: a personal identity number in it is echoed masked
        case = mask_personal_numbers(case) if isinstance(case, str) else None
        try:
            step = import_line_adapter.validate_python(data, context=TYPED)
        except ValidationError as exc:
            refused.append(Refusal(number, case, describe(exc)))
            continue
        step = step.model_copy(update={
            "on": step.on or today,
            "actor": step.actor or actor,
            "id": step.id or command_id(source, number, text),
        })
        identity = None
        if isinstance(step, ApplyLine):
            c = step.client
            if c.name or c.personal_number:
                identity = (c.id, c.name, c.personal_number)
            step = step.without_identity()
        parsed.append(Line(number, step, _keys(step, apartment_of), identity))
    return parsed, refused


def _keys(step: Any, apartment_of: dict[str, str | None]) -> tuple[str, ...]:
    """What a line must stay in order with: its case, its apartment, or everything."""
    kind = step.type
    if kind in ("register_apartment", "return_apartment", "apartment_to_repair",
                "apartment_repaired"):
        return (f"apt:{step.apartment}",)
    keys = [f"case:{step.case}"]
    if kind == "apply":
        apartment_of[step.case] = None
    elif kind == "move_apartment":  # vacates the case's apartment, occupies the new one
        keys.append(f"apt:{step.apartment}")
        old = apartment_of.get(step.case)
        keys.append(f"apt:{old}" if old else BARRIER)
        apartment_of[step.case] = step.apartment
    elif kind in ("offer", "move_in"):
        apartment_of[step.case] = step.apartment
        keys.append(f"apt:{step.apartment}")
    elif kind in ("landlord_decision", "exit"):
        if step.case not in apartment_of:
            keys.append(BARRIER)  # it may free an apartment this file never named
        elif apartment_of[step.case]:
            keys.append(f"apt:{apartment_of[step.case]}")
            if kind == "exit" or not getattr(step, "approved", True):
                apartment_of[step.case] = None
    return tuple(keys)


class Scheduler:
    """Hands out lines (as per-case batches) as soon as nothing before them conflicts."""

    def __init__(self, lines: list[Line], max_batch: int = MAX_BATCH) -> None:
        self.lines = lines
        self.max_batch = max_batch
        self.queues: dict[str, deque[int]] = {}
        self.barriers: deque[int] = deque()
        for i, line in enumerate(lines):
            for key in line.keys:
                if key == BARRIER:
                    self.barriers.append(i)
                else:
                    self.queues.setdefault(key, deque()).append(i)
        self.started: set[int] = set()
        self.done: set[int] = set()
        self.lowest_pending = 0
        self.candidates: set[int] = {q[0] for q in self.queues.values()}

    @property
    def finished(self) -> bool:
        return len(self.done) == len(self.lines)

    def _barrier_allows(self, i: int) -> bool:
        if not self.barriers:
            return True
        b = self.barriers[0]
        return i < b or (i == b and i == self.lowest_pending)

    def _at_heads(self, i: int, also: set[int] = frozenset()) -> bool:  # type: ignore[assignment]
        for key in self.lines[i].keys:
            if key == BARRIER:
                continue
            for j in self.queues[key]:
                if j == i:
                    break
                if j not in also:
                    return False
        return True

    def take_ready(self, most: int) -> list[list[int]]:
        batches: list[list[int]] = []
        for i in sorted(self.candidates):
            if len(batches) >= most:
                break
            if i in self.started or not self._barrier_allows(i) or not self._at_heads(i):
                continue
            batch = [i]
            self.started.add(i)
            line = self.lines[i]
            if line.case is not None:
                queue = self.queues[f"case:{line.case}"]
                members = {i}
                for j in list(queue)[queue.index(i) + 1:]:
                    if len(batch) >= self.max_batch or not self._barrier_allows(j):
                        break
                    if BARRIER in self.lines[j].keys or not self._at_heads(j, members):
                        break
                    batch.append(j)
                    members.add(j)
                    self.started.add(j)
            batches.append(batch)
        self.candidates -= self.started
        return batches

    def complete(self, batch: list[int]) -> None:
        for i in batch:
            self.done.add(i)
            for key in self.lines[i].keys:
                if key == BARRIER:
                    self.barriers.remove(i)
                    continue
                queue = self.queues[key]
                queue.remove(i)
                if queue:
                    self.candidates.add(queue[0])
        while self.lowest_pending < len(self.lines) and self.lowest_pending in self.done:
            self.lowest_pending += 1
        if self.barriers:
            self.candidates.add(self.barriers[0])
        for i in range(self.lowest_pending, min(self.lowest_pending + 1, len(self.lines))):
            self.candidates.add(i)


async def run_import(
    chain: ChainClient,
    lines: list[Line],
    report: ImportReport,
    *,
    parallel: int = 16,
    strict: bool = False,
    record_identity: Callable[[str, str | None, str | None], None] | None = None,
    processed: Callable[[Any], LineResult | None] | None = None,
    progress: Callable[[int], None] | None = None,
    outage_for: float = 300.0,
    recorded_by: str | None = None,
    seal: Callable[[list[Any]], Awaitable[list[Any]]] | None = None,
) -> ImportReport:
    """Send the lines; a refusal is reported per line and the import goes on.

    An outage (the stack or the network away past the gateway's own retries) is never a
    refusal: the line is sent again with backoff for up to `outage_for` seconds; if the stack
    stays away the import stops, sends nothing more (so no later line of that case runs out
    of order) and reports how many lines were not sent. Importing the file again then
    resumes: what was recorded answers as a duplicate."""
    scheduler = Scheduler(lines, max_batch=1 if strict else MAX_BATCH)
    limit = 1 if strict else parallel
    inflight: dict[asyncio.Task, list[int]] = {}

    async def send(batch: list[int]) -> list[LineResult]:
        deadline = time.monotonic() + outage_for
        delay = 0.5
        first_try = True
        while True:
            try:
                return await attempt(batch, first_try)
            except Exception as exc:
                if not transient(exc):  # not the domain's answer either: stop, never "refused"
                    raise Outage(f"line {lines[batch[0]].number} failed: {exc!r}") from exc
                if time.monotonic() + delay > deadline:
                    raise Outage(f"the stack did not answer for {outage_for:.0f} s ({exc})") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                first_try = False

    async def attempt(batch: list[int], first_try: bool) -> list[LineResult]:
        # only before the first try: what a lost answer of this run recorded is not "already
        # recorded" by an earlier import (its retry gets Temporal's first answer instead)
        before = await recorded_before(batch) if first_try else None
        # sent even when every line was recorded: the send is what brings the case's workflow
        # level with the store again (started, or repaired) after a crash between the two
        results = await sent(batch)
        if before is None:
            return results
        # a line recorded by an earlier import is a duplicate, whatever Temporal answers (a
        # known update id answers with its first answer, which says duplicate=false)
        return [e.model_copy(update={"duplicate": True}) if e is not None and r.accepted else r
                for r, e in zip(results, before, strict=True)]

    async def recorded_before(batch: list[int]) -> list[LineResult | None] | None:
        """Which of the batch's lines were recorded before it is sent (a file imported again,
        or resumed): one look-up for a new batch, one a line when its first line was."""
        if processed is None:
            return None

        def look() -> list[LineResult | None] | None:
            head = processed(lines[batch[0]].step)
            if head is None:
                return None
            return [head, *(processed(lines[i].step) for i in batch[1:])]

        return await asyncio.to_thread(look)

    async def sent(batch: list[int]) -> list[LineResult]:
        first = lines[batch[0]]
        if first.case is None:
            try:
                return [await chain.send_stock(first.step)]
            except Refused as exc:
                return [LineResult(accepted=False, command_id=first.step.id, reason=str(exc))]
        steps = [lines[i].step for i in batch]
        if seal is not None:  # free text sealed with the client's key (application/free_text)
            steps = await seal(steps)
        if len(steps) == 1:
            try:
                return [await chain.send(steps[0], recorded_by=recorded_by)]
            except Refused as exc:
                return [LineResult(accepted=False, command_id=steps[0].id, reason=str(exc))]
        return await chain.send_batch(first.case, steps, batch_id=f"{steps[0].id}+{len(steps)}",
                                      recorded_by=recorded_by)

    stop = False
    outage: str | None = None
    while not scheduler.finished and not (stop and not inflight):
        if not stop:
            for batch in scheduler.take_ready(limit - len(inflight)):
                inflight[asyncio.ensure_future(send(batch))] = batch
        if not inflight:
            break
        done, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            batch = inflight.pop(task)
            try:
                results = task.result()
            except Outage as exc:
                outage = outage or str(exc)
                stop = True  # its lines stay unsent, and so does every line after them
                continue
            for i, result in zip(batch, results, strict=True):
                line = lines[i]
                if not result.accepted and processed is not None:
                    # refused now (its case closed since, say) but recorded by an earlier import
                    earlier = processed(line.step)  # on this line's own case or apartment
                    result = earlier.model_copy(update={"duplicate": True}) if earlier else result
                if result.accepted:
                    report.accepted += 1
                    report.duplicates += int(result.duplicate)
                    if line.case and result.stage:
                        report.stages[line.case] = result.stage
                    if line.identity and record_identity:
                        record_identity(*line.identity)
                else:
                    report.refused.append(Refusal(line.number, line.case, result.reason or ""))
                    if strict:
                        stop = True
            scheduler.complete(batch)
            if progress:
                progress(len(batch))
    report.stopped_early = stop
    if outage:
        report.not_sent = len(lines) - len(scheduler.done)
        report.outage = (f"{outage}: the import stopped with {report.not_sent} lines not sent; "
                         "import the file again once the stack is back (what was recorded "
                         "answers as already recorded)")
    report.refused.sort(key=lambda r: r.line)
    return report


UNDECODABLE = "\x00undecodable\x00"


def read_lines(path: Path) -> list[str]:
    """The file's lines; a line that is not UTF-8 is kept as a marker and refused alone."""
    return decode_lines(path.read_bytes())


def decode_lines(data: bytes) -> list[str]:
    """Lines of an upload; one that is not UTF-8 is refused alone, naming its line, rather
    than read with replacement characters (a name would be stored misspelt)."""
    lines = []
    for raw in data.split(b"\n"):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as exc:
            lines.append(f"{UNDECODABLE}not UTF-8 text ({exc.reason} at byte {exc.start})")
    if lines and lines[-1] == "":
        lines.pop()
    return lines
