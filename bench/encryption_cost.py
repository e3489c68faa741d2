"""What encryption costs: the step-latency and import-rate benchmarks with and without it, in
one run.

"With" is the installation as shipped: every Temporal payload through the AES-GCM codec
(application/codec.py) and free text and identities encrypted with the client's data key
(application/keys.py). "Without" is the same benchmark under `HOUSING_CHAIN_CODEC=off`, the
benchmark-only switch that turns both off. Each benchmark runs as its own subprocess (its own
stack, its own data directory), the variants alternating (without, with, without, with, ... for
`--rounds`), so a slow spell of the machine hits both. Each benchmark measures a bare Temporal
baseline beside ours in the same process; the cost is given both as the plain ratio with/without
and normalised by that baseline (which takes out how busy the machine was in each run).

Target: encryption costs at most 10 %: step p50 with/without ≤ 1.10, import rate with/without
≥ 1/1.10. Prints the figures; writes bench/results/encryption_cost.json. No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TARGET = 1.10


def run_bench(script: str, args: list[str], codec: str) -> dict[str, Any]:
    env = {**os.environ, "HOUSING_CHAIN_CODEC": codec}
    name = script.removesuffix(".py")
    print(f"  {name} with HOUSING_CHAIN_CODEC={codec} …", flush=True)
    done = subprocess.run([sys.executable, str(HERE / script), *args], env=env, cwd=HERE.parent,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} ({codec}) failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


def step_figures(result: dict[str, Any]) -> dict[str, float]:
    return {"p50_ms": result["ours"]["p50_ms"], "p90_ms": result["ours"]["p90_ms"],
            "bare_p50_ms": result["bare"]["p50_ms"], "p50_vs_bare": result["p50_ratio"]}


def import_figures(result: dict[str, Any]) -> dict[str, float]:
    return {"commands_per_s": result["import"]["commands_per_s_excluding_startup"],
            "bare_steps_per_s": result["bare"]["steps_per_s"],
            "rate_vs_bare": result["ratio_excluding_startup"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="without/with pairs per benchmark")
    parser.add_argument("--step-cases", type=int, default=30, help="step_latency --cases")
    parser.add_argument("--import-cases", type=int, default=200, help="import_rate --cases")
    parser.add_argument("--bare-steps", type=int, default=4_000, help="import_rate --bare-steps")
    args = parser.parse_args()

    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        "step_latency": {"off": [], "on": []}, "import_rate": {"off": [], "on": []}}
    for n in range(args.rounds):
        print(f"round {n + 1} of {args.rounds}", flush=True)
        for codec in ("off", "on"):
            runs["step_latency"][codec].append(step_figures(run_bench(
                "step_latency.py", ["--cases", str(args.step_cases)], codec)))
        for codec in ("off", "on"):
            runs["import_rate"][codec].append(import_figures(run_bench(
                "import_rate.py", ["--cases", str(args.import_cases),
                                   "--bare-steps", str(args.bare_steps)], codec)))

    def median(bench: str, codec: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[bench][codec])

    step_cost = median("step_latency", "on", "p50_ms") / median("step_latency", "off", "p50_ms")
    step_norm = (median("step_latency", "on", "p50_vs_bare")
                 / median("step_latency", "off", "p50_vs_bare"))
    import_cost = (median("import_rate", "off", "commands_per_s")
                   / median("import_rate", "on", "commands_per_s"))
    import_norm = (median("import_rate", "off", "rate_vs_bare")
                   / median("import_rate", "on", "rate_vs_bare"))
    print(f"\nencryption cost ({args.rounds} round(s); with / without, 1.00 = free; "
          f"target ≤ {TARGET:.2f})")
    print(f"  step latency p50: {median('step_latency', 'on', 'p50_ms'):.1f} ms with, "
          f"{median('step_latency', 'off', 'p50_ms'):.1f} ms without = {step_cost:.3f}×; "
          f"normalised by the bare baseline {step_norm:.3f}×")
    print(f"  import rate: {median('import_rate', 'on', 'commands_per_s'):.1f} commands/s with, "
          f"{median('import_rate', 'off', 'commands_per_s'):.1f} without = cost "
          f"{import_cost:.3f}×; normalised by the bare baseline {import_norm:.3f}×")
    worst = max(step_cost, step_norm, import_cost, import_norm)
    print(f"  worst {worst:.3f}×: target {'met' if worst <= TARGET else 'NOT met'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "encryption_cost.json"
    out.write_text(json.dumps({
        "benchmark": "encryption_cost", "rounds": args.rounds, "target_max": TARGET,
        "step_latency_cost": round(step_cost, 3), "step_latency_cost_vs_bare": round(step_norm, 3),
        "import_rate_cost": round(import_cost, 3), "import_rate_cost_vs_bare": round(import_norm, 3),
        "target_met": worst <= TARGET, "args": vars(args), "runs": runs,
    }, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
