"""`housing-chain import` of ~10,000 commands against the bare one-update-per-step rate,
measured in one run.

Starts its own embedded stack (dev server + our worker, free ports, temporary data
directory) with the bare worker beside ours, writes the demo municipality with the case
count that gives closest to 10,000 lines (309 cases: 10,040 lines, every one valid), warms
both workers up, then measures, each client in a process of its own:

(a) bare: `python bench/bare.py spread`: one `BareWorkflow.step` update per step, 16 in
    flight (the import's default `--parallel`), over 300 workflows started beforehand;
    steps/s over the updates only. 4,000 steps by default (`--bare-steps`; 10,000 would take
    over two minutes at the ~70 steps/s this gets on 2 cores), in two halves: one right
    before the import and one right after it, so a machine that gets busier or quieter
    meanwhile moves the baseline as it moves the import; the baseline is all steps over
    both halves' seconds;
(b) ours: `housing-chain import FILE --json` as a subprocess, timed from spawn to exit;
    the CLI's start-up (an import of an empty file: interpreter, imports, connect) is timed
    on its own and reported on a separate line.

The second bare half starts as soon as the import ends, well inside the 120 s quiet time
after which the imported cases raise their overdue deadlines; the worker's activity counts
during it are reported, so a deadline note slipping in would show. Prints commands/s
against the 2× target and writes bench/results/import_rate.json. Fails loudly if the import
refused any line. No assertions on the timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import bare
from harness import (
    BenchStack,
    CpuMeter,
    bench_stack,
    machine,
    run_main,
    run_process,
    write_results,
)
from step_latency import STEPS_PER_CASE, journey, ours, register_apartments

from application.gateway import ChainClient, today_in
from runtime import demo

TARGET = 2.0
DEMO_CASES = 309  # generate(cases=309) gives 10,040 lines, the closest to 10,000 near it
BARE = Path(__file__).resolve().parent / "bare.py"
CLI = [sys.executable, "-m", "interfaces.cli.main"]


async def bare_spread(bs: BenchStack, steps: int, workflows: int, parallel: int,
                      prefix: str) -> dict[str, Any]:
    code, out, err, wall = await run_process([
        sys.executable, str(BARE), "spread", "--address", bs.settings.temporal_address,
        "--namespace", bs.settings.temporal_namespace, "--steps", str(steps),
        "--workflows", str(workflows), "--parallel", str(parallel), "--prefix", prefix,
    ], bs.env())
    if code != 0:
        raise RuntimeError(f"bare spread failed ({code}):\n{err[-3000:]}")
    figures = json.loads(out.strip().splitlines()[-1])
    figures["process_wall_seconds"] = wall
    return figures


async def warm_up(bs: BenchStack, cases: int) -> None:
    """A few cases through our worker and a few hundred bare steps (not timed)."""
    chain = ChainClient(bs.client, bs.settings)
    today = today_in(chain.policy)
    names = [f"warm-{i:03d}" for i in range(cases)]
    await register_apartments(chain, [f"APT-{c}" for c in names], today - timedelta(7))
    for r in range(STEPS_PER_CASE):
        await asyncio.gather(*(ours(chain, journey(c, f"APT-{c}", today)[r]) for c in names))
    # the bare worker has no payload codec: warm it up through a plain client, not bs.client
    plain = await bare.connect(bs.settings.temporal_address, bs.settings.temporal_namespace)
    await bare.spread(plain, 200, workflows=16, parallel=16, prefix="bare-warm")


async def run(args: argparse.Namespace) -> None:
    async with bench_stack("import-rate") as bs:
        path = bs.data / "demo-municipality.jsonl"
        count = demo.write(path, cases=args.cases)
        empty = bs.data / "empty.jsonl"
        empty.write_text("", encoding="utf-8")
        halves = [args.bare_steps // 2, args.bare_steps - args.bare_steps // 2]
        print(f"stack up on {bs.settings.temporal_address}; demo municipality: {count} lines "
              f"of {args.cases} cases; warming up…", flush=True)
        await warm_up(bs, args.warmup_cases)
        load_before = machine()["load_average"]

        print(f"(a) bare, first half: {halves[0]} steps, one update each, {args.parallel} in "
              f"flight, {args.workflows} workflows…", flush=True)
        cpu = {}
        meter = CpuMeter()
        before = await bare_spread(bs, halves[0], args.workflows, args.parallel, "bare-before")
        cpu["bare_before"] = meter.stop()

        print(f"(b) housing-chain import of {count} lines (subprocess)…", flush=True)
        code, out, err, startup = await run_process(
            [*CLI, "import", str(empty), "--json"], bs.env())
        if code != 0:
            raise RuntimeError(f"import of an empty file failed ({code}):\n{err[-3000:]}")
        bs.timer.reset()
        meter = CpuMeter()
        code, out, err, import_wall = await run_process(
            [*CLI, "import", str(path), "--json", "--parallel", str(args.parallel)], bs.env())
        cpu["import"] = meter.stop()
        activities = {k: len(v) for k, v in bs.timer.samples.items()}
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise RuntimeError(f"import gave no JSON report (exit {code}):\n{err[-3000:]}") from None

        print(f"(a) bare, second half: {halves[1]} steps…", flush=True)
        bs.timer.reset()
        meter = CpuMeter()
        after = await bare_spread(bs, halves[1], args.workflows, args.parallel, "bare-after")
        cpu["bare_after"] = meter.stop()
        after["worker_activities"] = {k: len(v) for k, v in bs.timer.samples.items()}

    refused = result.get("refused", [])
    figures = report(args, count, [before, after], result, startup, import_wall, activities, cpu)
    figures["machine"] = {**machine(), "load_average_before": load_before}
    figures["worker_options"] = bs.worker_options
    path_out = write_results("import_rate", figures)
    print(f"\nwritten: {path_out}")
    if refused or result.get("accepted") != count or code != 0:
        for r in refused[:10]:
            print(f"  refused line {r['line']} ({r['case']}): {r['reason']}", file=sys.stderr)
        raise SystemExit(
            f"FAILED: the import refused {len(refused)} of {count} lines "
            f"(accepted {result.get('accepted')}, exit code {code}); the figures are not valid"
        )


def report(args, count, halves, result, startup, import_wall, activities, cpu) -> dict[str, Any]:
    bare_steps = sum(h["steps"] for h in halves)
    bare_seconds = sum(h["seconds"] for h in halves)
    bare_rate = bare_steps / bare_seconds
    rate = count / import_wall
    rate_net = count / max(import_wall - startup, 1e-9)
    ratio = rate / bare_rate
    updates = activities.get("apply_steps", 0) + activities.get("apply_stock_step", 0)
    print(f"\nimport rate: {count} demo lines ({args.cases} cases), {args.parallel} updates in flight")
    print(f"  (a) bare, one update per step:  {bare_steps:>6} steps in {bare_seconds:6.1f} s = "
          f"{bare_rate:6.1f} steps/s")
    for name, h in zip(("before", "after"), halves, strict=True):
        print(f"      {name} the import:          {h['steps']:>6} steps in {h['seconds']:6.1f} s = "
              f"{h['steps_per_s']:6.1f} steps/s   (p50 {h['p50_ms']:.1f} ms; {h['workflows']} "
              f"workflows started beforehand in {h['start_workflows_seconds']:.1f} s)")
    print(f"  (b) housing-chain import:       {count:>6} cmds  in {import_wall:6.1f} s = "
          f"{rate:6.1f} commands/s   (subprocess, end to end)")
    print(f"      of which CLI start-up:      {startup:6.2f} s (import of an empty file)")
    print(f"      excluding start-up:         {rate_net:6.1f} commands/s")
    print(f"      worker activities run:      {updates} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(activities.items()))}); "
          f"{count / max(updates, 1):.1f} lines per update on average")
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"  ratio (b)/(a) = {rate:.1f} / {bare_rate:.1f} = {ratio:.2f}×  "
          f"(target ≥ {TARGET}×: {verdict}); excluding start-up {rate_net / bare_rate:.2f}×")
    others = {k: v for k, v in halves[1]["worker_activities"].items() if k != "bare_step"}
    print("  our worker's activities during the second bare half: "
          + (", ".join(f"{k} {v}" for k, v in others.items()) or "none"))
    print(f"  import refused {len(result.get('refused', []))} lines, accepted {result.get('accepted')}")
    if cpu["import"]["others_pct_of_core"] is not None:
        print("  CPU, % of one core (2 cores = 200 %), this benchmark / other processes: " + "; ".join(
            f"{k.replace('_', ' ')} {v['ours_pct_of_core']} / {v['others_pct_of_core']}"
            for k, v in cpu.items()))
        if max(v["others_pct_of_core"] for v in cpu.values()) > 25:
            print("  note: other processes loaded the machine during a phase; the halves' rates "
                  "show how much the baseline moved")
    return {
        "benchmark": "import_rate",
        "lines": count,
        "cases": args.cases,
        "parallel": args.parallel,
        "target_ratio_min": TARGET,
        "ratio": round(ratio, 3),
        "ratio_excluding_startup": round(rate_net / bare_rate, 3),
        "target_met": ratio >= TARGET,
        "cpu": cpu,
        "bare": {
            "steps": bare_steps,
            "seconds": round(bare_seconds, 3),
            "steps_per_s": round(bare_rate, 2),
            "before_import": halves[0],
            "after_import": halves[1],
        },
        "import": {
            "seconds": round(import_wall, 3),
            "commands_per_s": round(rate, 2),
            "cli_startup_seconds": round(startup, 3),
            "commands_per_s_excluding_startup": round(rate_net, 2),
            "accepted": result.get("accepted"),
            "refused": len(result.get("refused", [])),
            "activities": activities,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=DEMO_CASES)
    parser.add_argument("--parallel", type=int, default=16, help="as `import --parallel`")
    parser.add_argument("--workflows", type=int, default=300, help="bare workflows")
    parser.add_argument("--bare-steps", type=int, default=4_000,
                        help="bare steps, half before the import and half after it")
    parser.add_argument("--warmup-cases", type=int, default=3)
    args = parser.parse_args()
    run_main(lambda: run(args))


if __name__ == "__main__":
    main()
