"""FedAvg and the P2 round in this process and on a local Flower federation, side by side: the wall time of
each stage (from the stage runner) and how far the two engines' models lie apart.

    python benchmarks/bench_flower_engine.py --dataset adult --threads 2         # the full preset
    python benchmarks/bench_flower_engine.py --dataset adult --quick

Each engine writes into its own model folder under --out (default benchmarks/flower_engine/), so the two runs
never share a file; both start from the same partition (the same seed). Writes <out>/<dataset>_<run>.json.
"""
import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch


def run_engine(engine_name: str, args, out: Path) -> dict:
    import pipeline
    from flower_federation.engine import FlowerEngine
    from toolkit import stages as runner
    from toolkit.run import Run

    os.environ["P2_MODEL_DIR"] = str(out / engine_name)
    experiment = pipeline.load_experiment(Run(args.dataset, args.seed, args.quick, args.data_dir))
    engine = FlowerEngine(threads=args.threads) if engine_name == "flower" else None
    chosen = [stage for stage in pipeline.stages(experiment, attacks=(), engine=engine)
              if stage.group in ("partition", "fl", "p2")]
    started = time.perf_counter()
    try:
        timings = runner.run(chosen, force=True, threads=args.threads)
    finally:
        if engine is not None:
            engine.close()
    return {"seconds": round(time.perf_counter() - started, 1), "stages": {k: round(v, 1) for k, v in timings.items()},
            "model_dir": str(experiment.run.model_dir)}


def largest_difference(first: Path, second: Path) -> float:
    a = torch.load(first, weights_only=True)["state_dict"]
    b = torch.load(second, weights_only=True)["state_dict"]
    return max((a[name] - b[name]).abs().max().item() for name in a)


def main() -> None:
    from toolkit import cli

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="adult")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "flower_engine")
    args = parser.parse_args()
    cli.setup_logging()
    threads = cli.apply_threads(args.threads)
    out = args.out.resolve()
    results = {engine: run_engine(engine, args, out) for engine in ("inprocess", "flower")}
    run_name = f"{'quick_' if args.quick else ''}seed{args.seed}"
    differences = {}
    for name in ("fl/final.pt", "p2/global.pt"):
        differences[name] = largest_difference(*(Path(results[engine]["model_dir"]) / name
                                                 for engine in ("inprocess", "flower")))
    inprocess = sum(results["inprocess"]["stages"].get(name, 0.0) for name in results["inprocess"]["stages"]
                    if name != "partition")
    flower = sum(results["flower"]["stages"].get(name, 0.0) for name in results["flower"]["stages"]
                 if name != "partition")
    report = {"dataset": args.dataset, "run": run_name, "threads": threads, "machine": platform.machine(),
              "cpus": os.cpu_count(), "engines": results, "fedavg_and_p2_seconds": {"inprocess": round(inprocess, 1),
                                                                                  "flower": round(flower, 1)},
              "ratio": round(flower / inprocess, 2), "largest_weight_difference": differences,
              "load_average_after": os.getloadavg()}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.dataset}_{run_name}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
