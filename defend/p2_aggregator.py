"""Average the protected client models of a run into the P2-protected global model (FedAvg,
weighted by sample count). Run after defend/defend_<dataset>.py --client i for every client."""
import pathlib
import sys
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from defend.p2_stage import aggregate  # noqa: E402
from toolkit import cli  # noqa: E402


def main(argv=None) -> None:
    args = cli.parser(__doc__).parse_args(argv)
    cli.setup_logging(args.verbose)
    aggregate(cli.run_from_args(args))


if __name__ == "__main__":
    cli.main_guard(main)
