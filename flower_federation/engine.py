"""The Flower engine of the pipeline (main.py --engine flower, or P2_ENGINE=flower): the stages "FedAvg
(Flower)" and "P2 round (Flower)" (pipeline.flower_stages) run as Flower runs on a local federation, started
when the first of them runs and stopped after the last.

Before a run, the stage's manifest and every file it writes are removed, so that nothing of an earlier run
can pass for this one's; the stage runner writes the manifest only once the run has completed and every file
is there. A run that stopped (a client failed with fewer than min-clients left) or that completed without a
client (the round files of that client are missing) is reported as one line (P2Error) naming the client and
the round; its stage is then not complete, and the next run of main.py makes it again.
"""
import logging
import time
from pathlib import Path

from flower_federation import job as jobs
from toolkit.errors import P2Error

log = logging.getLogger(__name__)
ENGINES = ("inprocess", "flower")


class FlowerEngine:
    name = "flower"

    def __init__(self, min_clients: int | None = None, reply_timeout: float | None = None,
                 threads: int | None = None, run_timeout: float = 24 * 3600, keep_running: bool = False,
                 superlink: str | None = None, root_certificates: str | None = None):
        """`superlink` (host:port; default $P2_FLOWER_SUPERLINK): a SuperLink already running with its SuperNodes
        (a real federation, README.md), TLS with `root_certificates` (default $P2_FLOWER_ROOT_CERTIFICATES),
        else insecure; without it, a local federation is started on 127.0.0.1."""
        import os

        defaults = jobs.app_config()
        self.superlink = superlink or os.environ.get("P2_FLOWER_SUPERLINK") or None
        self.root_certificates = root_certificates or os.environ.get("P2_FLOWER_ROOT_CERTIFICATES") or None
        self.min_clients = int(defaults["min-clients"] if min_clients is None else min_clients)
        self.reply_timeout = float(defaults["reply-timeout"] if reply_timeout is None else reply_timeout)
        self.threads, self.run_timeout = threads, run_timeout
        self.keep_running = keep_running  # keep the federation after the P2 stage, until close() (tests)
        self.federation = None
        self._key = None
        self.outcomes: list = []

    # ------------------------------------------------------------------ command line
    @staticmethod
    def add_arguments(parser) -> None:
        defaults = jobs.app_config()
        parser.add_argument("--min-clients", type=int, default=None,
                            help="Flower: the fewest clients a round may average (default from "
                                 f"flower_federation/pyproject.toml: {defaults['min-clients']}, 0 = every client)")
        parser.add_argument("--reply-timeout", type=float, default=None,
                            help=f"Flower: seconds a round waits for replies (default {defaults['reply-timeout']:g})")
        parser.add_argument("--superlink", default=None, metavar="HOST:PORT",
                            help="Flower: use this running SuperLink and its SuperNodes instead of starting a local "
                                 "federation (default: $P2_FLOWER_SUPERLINK)")
        parser.add_argument("--root-certificates", default=None, metavar="CA.crt",
                            help="Flower: the CA of that SuperLink's TLS certificate (default: "
                                 "$P2_FLOWER_ROOT_CERTIFICATES; none: insecure)")

    @classmethod
    def from_arguments(cls, args, threads: int | None) -> "FlowerEngine":
        return cls(min_clients=args.min_clients, reply_timeout=args.reply_timeout, threads=threads,
                   superlink=args.superlink, root_certificates=args.root_certificates)

    # ------------------------------------------------------------------ the federation
    def federation_for(self, experiment):
        from flower_federation.local_federation import Federation, LocalFederation

        run, clients = experiment.run, experiment.partition.clients
        key = (run, clients)
        if self.federation is not None and self._key == key:
            return self.federation
        self.close()
        files = jobs.write_client_partitions(experiment)
        folder = run.model_dir / "flower" / time.strftime("%Y%m%d-%H%M%S")
        if self.superlink:
            log.info("Flower: SuperLink %s (%s); each SuperNode i must hold the file %s with i = its partition-id",
                     self.superlink, "TLS" if self.root_certificates else "insecure mode: no TLS",
                     jobs.partition_file(run, 0).with_name("clientNNN.npz"))
            self.federation, self._key = Federation(folder, self.superlink, self.root_certificates), key
            return self.federation
        per_node = max(1, (self.threads or 1) // clients)
        federation = LocalFederation(folder, files, threads_per_node=per_node)
        try:
            federation.start()
        except BaseException:
            federation.stop()
            raise
        self.federation, self._key = federation, key
        return federation

    def close(self) -> None:
        if self.federation is not None:
            left = self.federation.stop()
            if left:
                log.warning("Flower processes still alive after stopping: %s", left)
            log.info("Flower federation stopped; logs in %s", self.federation.logs)
            self.federation, self._key = None, None

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    # ------------------------------------------------------------------ one stage
    def run_stage(self, experiment, stage: str, outputs: list[Path]) -> None:
        import pipeline
        from toolkit import paths
        from toolkit import stages as runner

        made_from = runner.provenance_for(outputs[0])
        first = Path(outputs[0])
        for path in [first.with_name(f".{first.name}.made.json"), *outputs]:
            Path(path).unlink(missing_ok=True)
        federation = self.federation_for(experiment)
        job = jobs.Job(stage=stage, run=experiment.run, model_dir=str(paths.model_root()),
                       settings_changes=pipeline.changed_constants(experiment),
                       settings_digest=pipeline.settings_digest(experiment), made_from=made_from,
                       nodes=federation.node_ids, min_clients=self.min_clients,
                       max_parallel=getattr(federation, "max_parallel", 0), reply_timeout=self.reply_timeout,
                       threads=self.threads or 0)
        label = f"{job.label} (Flower)"
        outcome = federation.run(job.to_run_config(), stage, self.run_timeout)
        self.outcomes.append(outcome)
        for warning in outcome.warnings:
            log.warning("%s: %s", label, warning)
        if not outcome.completed:
            raise P2Error(f"{label} stopped: {outcome.error or outcome.status}; run {outcome.run_id}, logs in "
                          f"{federation.logs}")
        log.info("%s: Flower run %s completed in %.1f s", label, outcome.run_id, outcome.seconds)
        dropped = outcome.result.get("dropped") or {}
        if dropped:
            which = "; ".join(f"client {client} in round {why['round']} ({why['reason']})"
                              for client, why in dropped.items())
            raise P2Error(f"{label} completed without {which}, as min-clients = {self.min_clients} allows; its "
                          f"averages are written (their meta lists the missing clients) but not that client's "
                          f"files, so the stage is not complete and no later stage uses it; logs in {federation.logs}")
        if stage == "p2" and not self.keep_running:
            self.close()   # the last Flower stage of a run: free the processes before the attacks


def engine_from(name: str | None, **options):
    """None for the in-process engine, else a FlowerEngine; `name` from --engine, else $P2_ENGINE."""
    import os

    name = name or os.environ.get("P2_ENGINE") or "inprocess"
    if name not in ENGINES:
        raise P2Error(f"--engine / P2_ENGINE = {name!r}: choose one of {', '.join(ENGINES)}")
    return FlowerEngine(**options) if name == "flower" else None
