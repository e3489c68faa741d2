"""The HTTP API under load, against a bare Temporal update round trip measured in the same run.

Starts its own embedded stack with `bench_stack` (harness.py: the real dev server, our worker,
the projection thread and the API in this process, free ports, a temporary data directory)
with the bare worker beside ours, sets up `--cases` cases through the API's own import
(`POST /api/imports`; four in five moved into a training apartment within the last week and
assigned to one of ten housing pilots, one in five left waiting for an apartment), and then:

(a) step latency, one at a time: a housing pilot's `record_visit` through the API
    (`POST /api/cases/{case}/steps`: bearer token checked, access rule, the step through the
    case's workflow, the access record), against a bare update round trip (`BareWorkflow.step`,
    bare.py; its workflows started during the warm-up, so each measured one is a plain update
    like each record_visit) and, to show where the difference goes, the same step through `ChainClient.send`
    without HTTP, and the API step again from a lean HTTP client (`LeanClient`: one kept-alive
    connection, no library) to show the client library's own share; they alternate step by
    step, the order rotating, so noise hits all of them; p50/p90/p99 and p50(API)/p50(bare)
    against the 1.2× target, and after (b) the step's floor (`step_floor`: bare + GET /api/me
    + the step's store work, what the step would cost if nothing else of ours took time);
(b) reads, one at a time, round robin: `GET /api/me` (the floor: HTTP + token check), a case's
    status (event store + the workflow's status query) and history, the pilot's worklist, and
    four reports (read models, caught up first); p50/p95/p99 each;
(c) 50 simulated users at once for `--seconds` (default 300), each in a loop of think time
    (`--think`, mean seconds) and a request: status 30 %, history 15 %, worklist 15 %, a report
    10 % (as a supervisor), a `record_visit` 30 %; run by a client process of its own (httpx
    async), so the load generator does not share this process with the API and the worker.
    Errors (any exception or status ≥ 400) by kind, p50/p99 per kind and overall, requests/s.

`--seconds 20 --cases 200` is a quick run (about 3 minutes on 2 cores). Prints a table and
writes bench/results/api.json. The timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import bare
import httpx
from harness import (
    CpuMeter,
    bench_stack,
    free_port,
    machine,
    percentile,
    run_main,
    run_process,
    summary_ms,
    write_results,
)

TARGET = 1.2
PILOTS = [f"pilot.{k}" for k in range(10)]
DISTRICTS = ("Farsta", "Skärholmen", "Rinkeby-Kista", "Södermalm", "Hägersten-Älvsjö",
             "Spånga-Tensta")
TARGET_GROUPS = ("young_adults", "substance_abuse", "psychiatric_disability",
                 "families_with_children", "elderly")
REPORTS = [("queue", {}), ("waiting-times", {"by": "year"}), ("caseload", {}), ("stock", {})]
# the environment of the stack: our data directory only, the default policy, SQLite
STRIPPED_ENV = ("PERSISTENCE_MODULE", "SQLITE_DBNAME", "SQLITE_LOCK_TIMEOUT",
                "HOUSING_CHAIN_POLICY_FILE", "HOUSING_CHAIN_TASK_QUEUE", "TEMPORAL_NAMESPACE",
                "HOUSING_CHAIN_TEMPORAL_NAMESPACE", "HOUSING_CHAIN_TEMPORAL_ADDRESS",
                "HOUSING_CHAIN_API_URL", "HOUSING_CHAIN_API_TOKEN", "HOUSING_CHAIN_OIDC_ISSUER")


def summary(samples: list[float]) -> dict[str, float | int]:
    """summary_ms plus p95 (the read figures are given at p95)."""
    if not samples:
        return {"n": 0}
    return {**summary_ms(samples), "p95_ms": round(percentile(samples, 95) * 1000, 2)}


# --- set-up ---------------------------------------------------------------------------------

def import_lines(cases: int, today: date) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The apartments first, then per case apply … move_in and the pilot's assignment, dated
    within the last 12 days, ascending per case: moved in 0–6 days ago, so no visit is overdue
    yet (an overdue visit would make the workflow write notes during the measurement). Every
    fifth case stops at the decision, waiting for an apartment (the queue report's rows)."""
    stock: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    training: dict[str, list[str]] = defaultdict(list)
    for k in range(cases):
        case, apartment, pilot = f"api-{k:05d}", f"APT-A{k:05d}", PILOTS[k % len(PILOTS)]
        district = DISTRICTS[k % len(DISTRICTS)]
        back = 12 - k % 7

        def day(n: int, back: int = back) -> str:
            return (today - timedelta(days=back - n)).isoformat()

        actor = f"handlaggare.{district.lower()}"
        steps += [
            {"type": "apply", "case": case, "on": day(0), "actor": actor, "client": {
                "id": f"client-{case}", "target_group": TARGET_GROUPS[k % len(TARGET_GROUPS)],
                "district": district}},
            {"type": "start_assessment", "case": case, "on": day(1), "actor": actor},
            {"type": "decide", "case": case, "on": day(2), "actor": actor, "outcome": "granted",
             "programme": "training_apartment"},
        ]
        if k % 5 == 4:
            continue
        stock.append({"type": "register_apartment", "apartment": apartment,
                      "landlord": "Stockholmshem", "rooms": 1 + k % 3, "on": day(0),
                      "actor": "bostadsenheten.bench"})
        steps += [
            {"type": "offer", "case": case, "on": day(3), "actor": actor, "apartment": apartment},
            {"type": "landlord_decision", "case": case, "on": day(4), "actor": actor,
             "approved": True},
            {"type": "move_in", "case": case, "on": day(6), "actor": actor,
             "apartment": apartment},
            {"type": "assign", "case": case, "on": day(6), "actor": actor,
             "role": "housing_pilot", "to": pilot},
        ]
        training[pilot].append(case)
    return stock + steps, dict(training)


async def import_via_api(http: httpx.AsyncClient, admin: str, lines: list[dict[str, Any]]
                         ) -> dict[str, Any]:
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    summary_line: dict[str, Any] = {}
    async with http.stream("POST", "/api/imports", content=body, params={"source": "bench"},
                           headers={"Authorization": f"Bearer {admin}",
                                    "Content-Type": "application/x-ndjson"},
                           timeout=3600) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"the import was refused: {response.status_code} {response.text}")
        async for line in response.aiter_lines():
            if line.strip():
                item = json.loads(line)
                if "error" in item:
                    raise RuntimeError(f"the import failed: {item['error']}")
                summary_line = item.get("summary", summary_line)
    return summary_line


# --- (a) steps, (b) reads -------------------------------------------------------------------

async def api_step(http: httpx.AsyncClient, token: str, case: str) -> float:
    began = time.perf_counter()
    response = await http.post(f"/api/cases/{case}/steps", json={
        "type": "record_visit", "kind": "home_visit"}, headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - began
    if response.status_code != 200 or not response.json().get("accepted"):
        raise RuntimeError(f"step on {case} answered {response.status_code}: {response.text}")
    return elapsed


class LeanClient:
    """HTTP/1.1 on one kept-alive connection, nothing else: a POST and its answer's status and
    body (Content-Length framed, as every API answer is). Beside httpx it shows how much of
    the step's HTTP layer is the Python client library's own time (about 0.8 ms a request
    here), which a browser, curl or another language's client does not spend."""

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post_json(self, path: str, body: dict[str, Any], token: str) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        data = json.dumps(body).encode()
        writer.write((f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer "
                      f"{token}\r\nContent-Type: application/json\r\nContent-Length: "
                      f"{len(data)}\r\n\r\n").encode() + data)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
        answer = await reader.readexactly(int(fields["content-length"]))
        if fields.get("connection") == "close":
            writer.close()
            self.streams = None
        return int(head[0].split()[1]), answer

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def lean_step(lean: LeanClient, token: str, case: str) -> float:
    began = time.perf_counter()
    status, answer = await lean.post_json(f"/api/cases/{case}/steps",
                                          {"type": "record_visit", "kind": "home_visit"}, token)
    elapsed = time.perf_counter() - began
    if status != 200 or not json.loads(answer).get("accepted"):
        raise RuntimeError(f"step on {case} answered {status}: {answer[:300]!r}")
    return elapsed


async def direct_step(chain: Any, case: str, pilot: str, n: int, today: date) -> float:
    from domain.commands import RecordVisit

    step = RecordVisit(case=case, kind="home_visit", on=today, actor=pilot, id=f"direct:{case}:{n}")
    began = time.perf_counter()
    result = await chain.send(step)
    elapsed = time.perf_counter() - began
    if not result.accepted or result.duplicate:
        raise RuntimeError(f"direct step {step.id} was not applied: {result}")
    return elapsed


async def read(http: httpx.AsyncClient, token: str, path: str,
               params: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    response = await http.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
    return elapsed


async def start_serve(bs: Any, base: str) -> tuple[Any, httpx.AsyncClient]:
    """`housing-chain serve` on a free port against this stack (its data directory, Temporal
    address, stores): the API in a process of its own, not on the worker's event loop."""
    port = free_port()
    env = {**bs.env(), "HOUSING_CHAIN_API_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interfaces.cli.main", "serve", "--data", str(bs.data),
        "--port", str(port), env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=(bs.data / "serve.log").open("w"))
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120)
    for _ in range(300):
        try:
            if (await http.get("/healthz")).status_code == 200:
                return proc, http
        except httpx.HTTPError:
            pass
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.1)
    await stop_serve(proc, http)
    raise RuntimeError(f"`serve` did not start; see {bs.data / 'serve.log'}")


async def stop_serve(proc: Any, http: httpx.AsyncClient) -> None:
    await http.aclose()
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# --- (c) the simulated users, in a process of their own -------------------------------------

async def users(plan: dict[str, Any], seconds: float, count: int, think: float,
                seed: int) -> dict[str, Any]:
    """`count` users in a closed loop: think, then one request; for `seconds`."""
    rng = random.Random(seed)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    pilots = sorted(plan["training"])
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)

    async with httpx.AsyncClient(base_url=plan["base"], timeout=60, limits=limits) as http:

        async def user(u: int) -> None:
            pilot = pilots[u % len(pilots)]
            mine, token = plan["training"][pilot], plan["tokens"][pilot]
            supervisor = plan["tokens"]["supervisor"]
            local = random.Random(rng.random())
            while time.monotonic() < deadline:
                await asyncio.sleep(local.uniform(0.5, 1.5) * think)
                if time.monotonic() >= deadline:
                    return
                case, pick = local.choice(mine), local.random()
                headers = {"Authorization": f"Bearer {token}"}
                if pick < 0.30:
                    kind, request = "status", http.get(f"/api/cases/{case}", headers=headers)
                elif pick < 0.45:
                    kind, request = "history", http.get(f"/api/cases/{case}/history",
                                                        headers=headers)
                elif pick < 0.60:
                    kind, request = "worklist", http.get("/api/worklist", headers=headers)
                elif pick < 0.70:
                    name, params = local.choice(REPORTS)
                    kind, request = "report", http.get(
                        f"/api/reports/{name}", params=params,
                        headers={"Authorization": f"Bearer {supervisor}"})
                else:
                    kind, request = "step", http.post(
                        f"/api/cases/{case}/steps", headers=headers,
                        json={"type": "record_visit", "kind": "home_visit"})
                began = time.perf_counter()
                try:
                    response = await request
                except httpx.HTTPError as exc:
                    errors[f"{kind}: {type(exc).__name__}"] += 1
                    examples.setdefault(kind, repr(exc)[:200])
                    continue
                elapsed = time.perf_counter() - began
                if response.status_code >= 400:
                    errors[f"{kind}: {response.status_code}"] += 1
                    examples.setdefault(kind, response.text[:200])
                    continue
                latencies[kind].append(elapsed)

        began = time.perf_counter()
        await asyncio.gather(*(user(u) for u in range(count)))
        wall = time.perf_counter() - began
    every = [t for v in latencies.values() for t in v]
    return {
        "users": count, "seconds": round(wall, 2), "think_mean_s": think,
        "requests": len(every) + sum(errors.values()),
        "requests_per_s": round((len(every) + sum(errors.values())) / wall, 1),
        "errors": sum(errors.values()), "errors_by_kind": dict(errors),
        "error_examples": examples, "all": summary(every),
        "by_kind": {k: summary(v) for k, v in sorted(latencies.items())},
    }


def load_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="(c): the simulated users; prints JSON")
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--think", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    print(json.dumps(asyncio.run(users(plan, args.seconds, args.users, args.think, args.seed))),
          flush=True)


# --- the run --------------------------------------------------------------------------------

async def run(args: argparse.Namespace) -> None:
    for key in STRIPPED_ENV:
        os.environ.pop(key, None)
    os.environ["HOUSING_CHAIN_API_PORT"] = str(free_port())  # bench_stack's Settings() reads it
    from application.gateway import ChainClient, today_in
    from application.tokens import LocalIssuer

    figures: dict[str, Any] = {"benchmark": "api", "target_p50_ratio_max": TARGET, "config": {
        "cases": args.cases, "steps": args.steps, "reads": args.reads, "seconds": args.seconds,
        "users": args.users, "think_mean_s": args.think, "serve_variant": args.serve}}
    async with bench_stack("api") as bs:
        base = f"http://127.0.0.1:{bs.settings.api_port}"
        issuer = LocalIssuer(bs.settings.data, audience=bs.settings.oidc_audience)
        hours = 3600 * 12
        admin = issuer.mint("admin.bench", ["admin"], ttl_seconds=hours)
        supervisor = issuer.mint("enhetschef.bench", ["supervisor"], DISTRICTS, ttl_seconds=hours)
        tokens = {p: issuer.mint(p, ["housing_pilot"], ttl_seconds=hours) for p in PILOTS}
        chain = ChainClient(bs.client, bs.settings)
        # the bare worker's own converter: bs.client encodes with the installation's payload
        # codec (encryption), which the bare workflow does not have
        bare_client = await bare.connect(bs.settings.temporal_address,
                                         bs.settings.temporal_namespace)
        today = today_in(chain.policy)
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            lines, training = import_lines(args.cases, today)
            print(f"stack up; API at {base}; importing {len(lines)} lines ({args.cases} cases) "
                  "through POST /api/imports…", flush=True)
            began = time.perf_counter()
            imported = await import_via_api(http, admin, lines)
            import_s = time.perf_counter() - began
            refused = imported.get("refused", [])
            print(f"set-up: {imported.get('accepted')} accepted, {len(refused)} refused in "
                  f"{import_s:.1f} s ({len(lines) / import_s:.0f} lines/s)", flush=True)
            if refused:
                raise RuntimeError(f"set-up lines refused: {refused[:5]}")
            figures["setup"] = {"lines": len(lines), "import_s": round(import_s, 1),
                                "accepted": imported.get("accepted")}
            pool = [(p, c) for p in PILOTS for c in training.get(p, [])]
            random.Random(1).shuffle(pool)

            # -- warm-up, not counted: a few of each; the bare workflows started, so that every
            # measured bare step is a plain update, as every measured record_visit is
            workflows = 20
            bare_ids = [f"bare-api-{k}" for k in range(workflows)]
            await bare.start_workflows(bare_client, bare_ids)
            for n in range(max(args.warmup, workflows)):
                pilot, case = pool[n % len(pool)]
                await bare.round_trip(bare_client, bare_ids[n % workflows], -1 - n)
                if n < args.warmup:
                    await api_step(http, tokens[pilot], case)
                    await direct_step(chain, case, pilot, -1 - n, today)
                    await read(http, tokens[pilot], f"/api/cases/{case}")
            bs.timer.reset()

            # -- the variant: `housing-chain serve` as a process of its own, same stack
            served = await start_serve(bs, base) if args.serve else None
            lean = LeanClient(base)
            kinds = ["bare", "direct", "api", "lean"] + (["serve"] if served else [])
            if served:
                for n in range(args.warmup):
                    pilot, case = pool[n % len(pool)]
                    await api_step(served[1], tokens[pilot], case)

            # -- (a) steps, one at a time
            print(f"(a) {args.steps} record_visit steps through the API, as many through "
                  "ChainClient.send and bare round trips"
                  + (" and through a separate `serve` process" if served else "")
                  + ", alternating…", flush=True)
            samples: dict[str, list[float]] = {k: [] for k in kinds}
            orders = [tuple(kinds[k:] + kinds[:k]) for k in range(len(kinds))]
            meter = CpuMeter()
            began = time.perf_counter()
            for n in range(args.steps):
                pilot, case = pool[n % len(pool)]
                for which in orders[n % len(orders)]:
                    if which == "api":
                        samples["api"].append(await api_step(http, tokens[pilot], case))
                    elif which == "lean":
                        other_pilot, other = pool[(n + len(pool) // 3) % len(pool)]
                        samples["lean"].append(await lean_step(lean, tokens[other_pilot], other))
                    elif which == "serve":
                        assert served is not None
                        samples["serve"].append(await api_step(served[1], tokens[pilot], case))
                    elif which == "direct":
                        other_pilot, other = pool[(n + len(pool) // 2) % len(pool)]
                        samples["direct"].append(await direct_step(chain, other, other_pilot, n,
                                                                   today))
                    else:
                        samples["bare"].append(await bare.round_trip(
                            bare_client, bare_ids[n % workflows], n))
            steps_wall = time.perf_counter() - began
            await lean.close()
            steps_cpu = meter.stop()
            if served:
                await stop_serve(*served)
            activity_s = {k: summary_ms(v) for k, v in bs.timer.samples.items()}

            # -- (b) reads, one at a time, round robin
            print(f"(b) {args.reads} of each read, round robin…", flush=True)
            reads: dict[str, list[float]] = defaultdict(list)
            meter = CpuMeter()
            for n in range(args.reads):
                pilot, case = pool[n % len(pool)]
                token = tokens[pilot]
                reads["me (floor)"].append(await read(http, token, "/api/me"))
                reads["status"].append(await read(http, token, f"/api/cases/{case}"))
                reads["history"].append(await read(http, token, f"/api/cases/{case}/history"))
                reads["worklist"].append(await read(http, token, "/api/worklist"))
                for name, params in REPORTS:
                    reads[f"report {name}"].append(await read(
                        http, supervisor, f"/api/reports/{name}", params))
            reads_cpu = meter.stop()

        # -- (c) the simulated users, from a process of their own
        plan_path = bs.data / "bench-api-plan.json"
        plan_path.write_text(json.dumps({"base": base, "training": training, "tokens": {
            **tokens, "supervisor": supervisor}}), encoding="utf-8")
        print(f"(c) {args.users} users for {args.seconds:.0f} s (think {args.think} s mean), "
              "from a client process of their own…", flush=True)
        meter = CpuMeter()
        code, out, err, _ = await run_process(
            [sys.executable, __file__, "load", "--plan", str(plan_path), "--seconds",
             str(args.seconds), "--users", str(args.users), "--think", str(args.think)],
            dict(os.environ))
        load_cpu = meter.stop()
        if code != 0:
            raise RuntimeError(f"the load process failed ({code}):\n{err[-3000:]}")
        load = json.loads(out.strip().splitlines()[-1])

    figures.update(report(args, samples, steps_wall, reads, load, activity_s))
    figures["cpu"] = {"steps": steps_cpu, "reads": reads_cpu, "load": load_cpu}
    figures["machine"] = machine()
    figures["worker_options"] = bs.worker_options
    for phase, cpu in figures["cpu"].items():
        if cpu.get("others_pct_of_core") is not None:
            print(f"CPU during {phase}, % of one core (2 cores = 200 %): this benchmark "
                  f"{cpu['ours_pct_of_core']}, other processes {cpu['others_pct_of_core']}")
    print(f"\nwritten: {write_results('api', figures)}")


def row(label: str, s: dict[str, Any], p: str = "p99_ms") -> str:
    if not s.get("n"):
        return f"{label:40} {0:>5}"
    return (f"{label:40} {s['n']:>5} {s['p50_ms']:>8.1f} {s['p90_ms']:>8.1f} "
            f"{s.get('p95_ms', 0):>8.1f} {s['p99_ms']:>8.1f}")


def report(args, samples, steps_wall, reads, load, activity_s) -> dict[str, Any]:
    bare_s, direct_s, api_s = (summary(samples[k]) for k in ("bare", "direct", "api"))
    ratio = api_s["p50_ms"] / bare_s["p50_ms"]
    header = f"{'':40} {'n':>5} {'p50':>8} {'p90':>8} {'p95':>8} {'p99':>8}  (ms)"
    print(f"\n(a) step latency: one at a time, alternating ({steps_wall:.1f} s)")
    print(header)
    print(row("bare update round trip (baseline)", bare_s))
    print(row("record_visit via ChainClient.send", direct_s))
    print(row("record_visit via POST /api/.../steps", api_s))
    lean_s = summary(samples["lean"]) if samples.get("lean") else None
    if lean_s:
        print(row("  the same, a lean HTTP client", lean_s))
    serve_s = summary(samples["serve"]) if samples.get("serve") else None
    if serve_s:
        print(row("  the same via a separate `serve`", serve_s))
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"p50 API / p50 bare = {api_s['p50_ms']:.1f} / {bare_s['p50_ms']:.1f} ms = {ratio:.2f}×  "
          f"(target ≤ {TARGET}×: {verdict}); ChainClient.send alone "
          f"{direct_s['p50_ms'] / bare_s['p50_ms']:.2f}×, the HTTP layer "
          f"(token, access rule and record, HTTP) +{api_s['p50_ms'] - direct_s['p50_ms']:.1f} ms")
    print("activity time (executor wait + function), p50 ms: " + ", ".join(
        f"{k} {v['p50_ms']:.2f} (n={v['n']})" for k, v in sorted(activity_s.items())))

    read_s = {k: summary(v) for k, v in reads.items()}
    print(f"\n(b) reads, one at a time, {args.reads} each (baseline: GET /api/me = HTTP + token "
          f"check; the bare Temporal round trip above: {bare_s['p50_ms']:.1f} ms p50)")
    print(header)
    for label, s in read_s.items():
        print(row(f"GET {label}", s))
    floor = step_floor(bare_s, api_s, read_s.get("me (floor)", {}), activity_s)
    if floor:
        print(f"the step's floor: bare {bare_s['p50_ms']:.1f} + GET /api/me {floor['http_ms']:.1f}"
              f" + the step's store work {floor['store_ms']:.1f} (apply_steps less bare_step, p50)"
              f" = {floor['floor_ms']:.1f} ms = {floor['floor_ratio']:.2f}× bare, before any "
              f"other code of ours; the API step is {floor['api_over_floor']:.2f}× that floor")

    print(f"\n(c) {load['users']} simulated users, {load['seconds']:.0f} s, think "
          f"{load['think_mean_s']} s mean: {load['requests']} requests "
          f"({load['requests_per_s']}/s), {load['errors']} errors")
    if load["errors"]:
        print("  errors: " + ", ".join(f"{k} ×{v}" for k, v in load["errors_by_kind"].items()))
        for kind, example in load["error_examples"].items():
            print(f"    e.g. {kind}: {example}")
    print(header)
    print(row("all requests", load["all"]))
    for kind, s in load["by_kind"].items():
        print(row(f"  {kind}", s))
    return {
        "p50_ratio": round(ratio, 3), "target_met": ratio <= TARGET,
        "steps": {"bare": bare_s, "direct": direct_s, "api": api_s, "api_lean_client": lean_s,
                  **({"api_serve_process": serve_s,
                      "p50_ratio_serve_process": round(serve_s["p50_ms"] / bare_s["p50_ms"], 3)}
                     if serve_s else {}),
                  "wall_seconds": round(steps_wall, 2)},
        "activity_time": activity_s, "reads": read_s, "load": load, "floor": floor,
    }


def step_floor(bare_s: dict[str, Any], api_s: dict[str, Any], me: dict[str, Any],
               activity_s: dict[str, Any]) -> dict[str, float] | None:
    """What an API step would cost if nothing of ours but HTTP with the token check (GET
    /api/me, measured) and the step's durable store work (the apply_steps activity less the
    bare one) took any time: the bare round trip plus those two, all p50 of this run. The
    1.2× target is below this floor whenever the floor's ratio is above 1.2."""
    store, trivial = activity_s.get("apply_steps"), activity_s.get("bare_step")
    if not (me.get("n") and store and trivial and bare_s.get("n")):
        return None
    http_ms = me["p50_ms"]
    store_ms = max(0.0, store["p50_ms"] - trivial["p50_ms"])
    floor_ms = bare_s["p50_ms"] + http_ms + store_ms
    return {"http_ms": http_ms, "store_ms": round(store_ms, 2), "floor_ms": round(floor_ms, 2),
            "floor_ratio": round(floor_ms / bare_s["p50_ms"], 3),
            "api_over_floor": round(api_s["p50_ms"] / floor_ms, 3)}


def main() -> None:
    if sys.argv[1:2] == ["load"]:
        load_main(sys.argv[2:])
        sys.stdout.flush()
        os._exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases set up by the import")
    parser.add_argument("--steps", type=int, default=300, help="(a): steps of each kind")
    parser.add_argument("--reads", type=int, default=100, help="(b): requests of each read")
    parser.add_argument("--seconds", type=float, default=300, help="(c): how long the users run")
    parser.add_argument("--users", type=int, default=50, help="(c): simulated users")
    parser.add_argument("--think", type=float, default=1.0,
                        help="(c): mean think time between a user's requests, seconds")
    parser.add_argument("--warmup", type=int, default=10, help="uncounted steps and reads first")
    parser.add_argument("--serve", action="store_true",
                        help="(a): also steps through `housing-chain serve` in a process of its own")
    args = parser.parse_args()
    run_main(lambda: run(args))


if __name__ == "__main__":
    main()
