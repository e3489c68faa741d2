"""Caseworker step latency against a bare Temporal update round trip, measured in one run.

Starts its own embedded stack (dev server + our worker, free ports, temporary data
directory) with the bare worker beside ours, warms both up, then sends, one at a time:

- ours: real steps on real cases through `ChainClient.send` (update → validator → local
  activity → event stored → reply), 10 per case: apply (update-with-start, as the CLI does),
  start_assessment, decide granted, course_session 1, offer, landlord_decision, move_in,
  record_visit, course_session 2, record_visit follow_up; effective dates in the last week,
  ascending, so no deadline is already due and no timer fires during the run;
- bare: `BareWorkflow.step` round trips (bench/bare.py), as many, over as many workflows,
  the first round starting its workflow with update-with-start as `apply` does.

The two alternate step by step (which goes first alternates too), so whatever else the
machine is doing hits both. Prints p50/p90/p99/mean and p50(ours)/p50(bare) against the
1.5× target; writes bench/results/step_latency.json. No assertions on the timings.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from typing import Any

import bare
from harness import CpuMeter, bench_stack, machine, run_main, summary_ms, write_results
from pydantic import TypeAdapter

from application.gateway import ChainClient, today_in
from domain.commands import CaseStep, RegisterApartment

TARGET = 1.5
STEPS_PER_CASE = 10
case_step: TypeAdapter[Any] = TypeAdapter(CaseStep)


def journey(case: str, apartment: str, today: date) -> list[Any]:
    """Ten valid steps of one case, dated over the last week, ascending."""
    day = lambda n: (today - timedelta(days=n)).isoformat()  # noqa: E731
    lines: list[dict[str, Any]] = [
        {"type": "apply", "on": day(6), "client": {
            "id": f"client-{case}", "target_group": "young_adults", "district": "Farsta",
            "household": {"adults": 1, "children": 0}}, "referral": "self"},
        {"type": "start_assessment", "on": day(5)},
        {"type": "decide", "on": day(4), "outcome": "granted", "programme": "training_apartment"},
        {"type": "course_session", "on": day(4), "session": 1},
        {"type": "offer", "on": day(3), "apartment": apartment},
        {"type": "landlord_decision", "on": day(2), "approved": True},
        {"type": "move_in", "on": day(1), "apartment": apartment},
        {"type": "record_visit", "on": day(0), "kind": "home_visit", "checklist": {
            "rent_paid": True, "home_insurance": True, "in_housing_queue": True}},
        {"type": "course_session", "on": day(0), "session": 2},
        {"type": "record_visit", "on": day(0), "kind": "follow_up"},
    ]
    assert len(lines) == STEPS_PER_CASE
    return [
        case_step.validate_python(
            {**line, "case": case, "actor": "handlaggare.bench", "id": f"{case}:{n}"}
        )
        for n, line in enumerate(lines)
    ]


async def register_apartments(chain: ChainClient, names: list[str], on: date) -> None:
    for name in names:
        result = await chain.send_stock(RegisterApartment(
            apartment=name, landlord="Stockholmshem", rooms=1, on=on,
            actor="bostadsenheten.bench", id=f"register:{name}",
        ))
        if not result.accepted:
            raise RuntimeError(f"could not register apartment {name}: {result.reason}")


async def ours(chain: ChainClient, step: Any) -> float:
    began = time.perf_counter()
    result = await chain.send(step)  # raises Refused on a refusal
    elapsed = time.perf_counter() - began
    if not result.accepted or result.duplicate:
        raise RuntimeError(f"step {step.id} was not applied: {result}")
    return elapsed


async def run(args: argparse.Namespace) -> None:
    async with bench_stack("step-latency") as bs:
        chain = ChainClient(bs.client, bs.settings)
        # ours goes through bs.client, which encodes with the installation's payload codec
        # (encryption) as production does; the bare worker has no codec, so the baseline uses
        # a plain client with the bare worker's own converter
        bare_client = await bare.connect(bs.settings.temporal_address,
                                         bs.settings.temporal_namespace)
        today = today_in(chain.policy)
        cases = [f"lat-{i:03d}" for i in range(args.cases)]
        warm = [f"warm-{i:03d}" for i in range(args.warmup_cases)]
        await register_apartments(chain, [f"APT-{c}" for c in warm + cases], today - timedelta(7))
        journeys = {c: journey(c, f"APT-{c}", today) for c in warm + cases}

        print(f"stack up on {bs.settings.temporal_address}; warming up "
              f"({len(warm)} cases, {len(warm) * STEPS_PER_CASE} bare round trips)…", flush=True)
        for r in range(STEPS_PER_CASE):
            for k, case in enumerate(warm):
                await ours(chain, journeys[case][r])
                await bare.round_trip(bare_client, f"bare-warm-{k}", r, with_start=r == 0)
        bs.timer.reset()

        print(f"measuring: {len(cases) * STEPS_PER_CASE} caseworker steps and as many bare "
              "round trips, alternating…", flush=True)
        bare_s: list[float] = []
        ours_s: list[float] = []
        ours_by_type: dict[str, list[float]] = {}
        bare_start: list[float] = []
        load_before = machine()["load_average"]
        meter = CpuMeter()
        began = time.perf_counter()
        flip = False
        for r in range(STEPS_PER_CASE):
            for k, case in enumerate(cases):
                step = journeys[case][r]
                for which in (("ours", "bare") if flip else ("bare", "ours")):
                    if which == "ours":
                        t = await ours(chain, step)
                        ours_s.append(t)
                        ours_by_type.setdefault(step.type, []).append(t)
                    else:
                        t = await bare.round_trip(bare_client, f"bare-lat-{k}", r,
                                                 with_start=r == 0)
                        bare_s.append(t)
                        if r == 0:
                            bare_start.append(t)
                flip = not flip
        wall = time.perf_counter() - began
        cpu = meter.stop()
        activity_s = {k: list(v) for k, v in bs.timer.samples.items()}

    figures = report(args, bare_s, ours_s, ours_by_type, bare_start, activity_s, wall)
    figures["cpu"] = cpu
    if cpu["others_pct_of_core"] is not None:
        print(f"CPU during the measurement, % of one core (2 cores = 200 %): this benchmark "
              f"{cpu['ours_pct_of_core']}, other processes {cpu['others_pct_of_core']}")
    figures["machine"] = {**machine(), "load_average_before": load_before}
    figures["worker_options"] = bs.worker_options
    path = write_results("step_latency", figures)
    print(f"\nwritten: {path}")


def report(args, bare_s, ours_s, ours_by_type, bare_start, activity_s, wall) -> dict[str, Any]:
    bare_sum, ours_sum = summary_ms(bare_s), summary_ms(ours_s)
    ratio = ours_sum["p50_ms"] / bare_sum["p50_ms"]
    apply_sum = summary_ms(ours_by_type["apply"])
    plain_ours = [t for k, v in ours_by_type.items() if k != "apply" for t in v]
    plain_bare = bare_s[len(bare_start):]
    rows = [
        ("bare update round trip", bare_sum),
        ("caseworker step (ChainClient.send)", ours_sum),
        ("  bare, first (update-with-start)", summary_ms(bare_start)),
        ("  ours, apply (update-with-start)", apply_sum),
        ("  bare, plain update", summary_ms(plain_bare)),
        ("  ours, other steps (plain update)", summary_ms(plain_ours)),
    ]
    print(f"\nstep latency: {len(ours_s)} caseworker steps on {args.cases} cases and "
          f"{len(bare_s)} bare round trips, alternating, one at a time ({wall:.1f} s)")
    print(f"{'':38} {'n':>4} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8}  (ms)")
    for label, s in rows:
        print(f"{label:38} {s['n']:>4} {s['p50_ms']:>8.1f} {s['p90_ms']:>8.1f} "
              f"{s['p99_ms']:>8.1f} {s['mean_ms']:>8.1f}")
    by_type = {k: summary_ms(v) for k, v in ours_by_type.items()}
    print("ours by step type, p50 ms: " + ", ".join(
        f"{k} {v['p50_ms']:.1f}" for k, v in by_type.items()))
    acts = {k: summary_ms(v) for k, v in activity_s.items()}
    print("activity time (executor wait + function), p50 ms: " + ", ".join(
        f"{k} {v['p50_ms']:.2f} (n={v['n']})" for k, v in sorted(acts.items())))
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"p50 ours / p50 bare = {ours_sum['p50_ms']:.1f} / {bare_sum['p50_ms']:.1f} ms = "
          f"{ratio:.2f}×  (target ≤ {TARGET}×: {verdict})")
    plain_ratio = summary_ms(plain_ours)["p50_ms"] / summary_ms(plain_bare)["p50_ms"]
    print(f"  plain updates only: {plain_ratio:.2f}×")
    return {
        "benchmark": "step_latency",
        "target_p50_ratio_max": TARGET,
        "p50_ratio": round(ratio, 3),
        "p50_ratio_plain_updates": round(plain_ratio, 3),
        "target_met": ratio <= TARGET,
        "wall_seconds": round(wall, 2),
        "bare": bare_sum,
        "ours": ours_sum,
        "rows": {label.strip(): s for label, s in rows},
        "ours_by_step_type": by_type,
        "activity_time": acts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=30, help="measured cases (10 steps each)")
    parser.add_argument("--warmup-cases", type=int, default=3)
    args = parser.parse_args()
    run_main(lambda: run(args))


if __name__ == "__main__":
    main()
