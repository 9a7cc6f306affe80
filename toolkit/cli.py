"""Command-line plumbing shared by every script: common flags, logging, threads, and clean error exits."""
import argparse
import logging
import os
import sys

from toolkit.errors import P2Error
from toolkit.run import Run


def parser(description: str | None, dataset: str | None = None) -> argparse.ArgumentParser:
    """A parser with the flags every stage takes; `dataset` fixed for per-dataset scripts."""
    result = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if dataset is None:
        result.add_argument("--dataset", default="adult", help="dataset name (default: adult)")
    result.add_argument("--seed", type=int, default=0, help="the one seed behind every random choice (default: 0)")
    result.add_argument("--quick", action="store_true", help="reduced preset for smoke runs (separate output folders)")
    result.add_argument("--data-dir", default=None, help="raw data folder (default: $P2_DATA_DIR or dataset/)")
    add_threads(result)
    result.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    result.set_defaults(fixed_dataset=dataset)
    return result


def add_threads(result: argparse.ArgumentParser) -> None:
    """--threads and --device, which every script that trains or attacks takes."""
    result.add_argument("--threads", type=int, default=None,
                        help="CPU threads torch uses (default: $P2_THREADS, else every core); 1 when several "
                             "runs share the machine, one per core")
    result.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"),
                        help="where models train (default: $P2_DEVICE, else cpu); auto: CUDA when torch sees one")


def apply_threads(requested: int | None, device: str | None = None) -> int:
    """Set torch's thread count from --threads, else $P2_THREADS, else leave torch's default (every core);
    and the device from --device, else $P2_DEVICE."""
    import torch

    from toolkit import device as devices

    devices.choose(device)
    value = requested if requested is not None else os.environ.get("P2_THREADS")
    if value is not None:
        try:
            threads = int(value)
        except ValueError:
            raise P2Error(f"P2_THREADS={value!r} must be a whole number of threads") from None
        if threads < 1:
            raise P2Error(f"--threads / P2_THREADS = {threads} must be at least 1")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def run_from_args(args: argparse.Namespace) -> Run:
    dataset = args.fixed_dataset or args.dataset
    return Run(dataset=dataset, seed=args.seed, quick=args.quick, data_dir=args.data_dir)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def main_guard(main, argv=None) -> None:
    """Run `main(argv)`; a P2Error becomes one line on stderr and exit status 2."""
    try:
        main(argv)
    except P2Error as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
