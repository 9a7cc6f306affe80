"""A Flower federation on this machine: one SuperLink and one SuperNode per client, each in its own process on
127.0.0.1, in insecure mode (no TLS, no node authentication: loopback only; the log says so).

    python -m flower_federation.local_federation --dataset adult           # partition, FedAvg and P2 on Flower
    python -m flower_federation.local_federation --dataset adult --quick --min-clients 2 --reply-timeout 60

The command runs the run's partition stage, then FedAvg and the P2 round on the federation through the stage
runner (the same stages as `main.py --engine flower`), stops every process it started and keeps their logs in
model/<dataset>/<run>/flower/<time>/logs/ (one file per process, commands.txt, and each run's server log).

`LocalFederation` is the part that starts and stops processes: flower-superlink, then flower-supernode with
--node-config "partition-id=i partition-file=..." for each client, each in its own session; the flwr CLI talks
to the SuperLink through $FLWR_HOME/config.toml (every process has its own FLWR_HOME under the folder). Every
process carries a tag in its environment, so that stop() also ends the processes Flower starts in sessions of
their own (the SuperLink's SuperExec, the ServerApp), by id, and nothing else.
"""
import argparse
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from flower_federation import job as jobs
from toolkit.errors import P2Error

log = logging.getLogger(__name__)
FEDERATION = "local"      # the connection name in the CLI's config.toml
BIN = Path(sys.executable).parent
SUPEREXEC_POLL = "0.1"    # seconds; Flower's default is 1.0 (the SuperNode's own idle poll, 3 s, is fixed)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tee(pipe, path: Path) -> None:
    """Copy a process's output to its log, each line stamped with the wall time (Flower's lines have none)."""
    with open(path, "a", buffering=1) as handle:
        for raw in iter(pipe.readline, b""):
            handle.write(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} "
                         f"{raw.decode(errors='replace')}")


@dataclass
class Outcome:
    """What one `flwr run` came to."""
    run_id: str
    status: str                         # finished:completed, finished:failed, ...
    seconds: float
    result: dict | None = None          # the ServerApp's RESULT line
    error: str | None = None            # the ServerApp's FAILED line
    warnings: list = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return self.status == "finished:completed" and self.result is not None


class Federation:
    """A running SuperLink that the flwr CLI submits runs to (started by someone else: a real federation).
    `root_certificates`: the CA of the SuperLink's TLS certificate; None: insecure. The SuperNodes are asked
    which client they hold (node_ids stays empty)."""

    def __init__(self, folder: Path, address: str | None = None, root_certificates: str | None = None):
        self.folder = Path(folder)
        self.logs = self.folder / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.tag = f"p2flower-{uuid.uuid4().hex[:12]}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.node_ids: dict[int, int] = {}
        self.env = self._base_environment()
        if address is not None:
            self._write_cli_config(address, root_certificates)

    def _base_environment(self) -> dict:
        env = dict(os.environ)
        env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",   # SuperExec starts flwr-* by name
                    "PYTHONUNBUFFERED": "1", "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
                    "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": SUPEREXEC_POLL, "TQDM_DISABLE": "1",
                    "P2_FLOWER_TAG": self.tag})
        env.pop("VIRTUAL_ENV", None)
        for name in ("P2_DATA_DIR", "P2_CACHE_DIR", "P2_MODEL_DIR", "P2_RESULTS_DIR"):
            if env.get(name):   # Flower's processes run in other folders: relative paths would move
                env[name] = str(Path(env[name]).expanduser().resolve())
        return env

    def _write_cli_config(self, address: str, root_certificates: str | None) -> None:
        """The flwr CLI's $FLWR_HOME/config.toml: the SuperLink's address, TLS or insecure."""
        home = self.folder / "homes" / "cli"
        home.mkdir(parents=True, exist_ok=True)
        security = (f"root-certificates = {json.dumps(str(Path(root_certificates).resolve()))}\n"
                    if root_certificates else "insecure = true\n")
        (home / "config.toml").write_text(f'[superlink]\ndefault = "{FEDERATION}"\n\n[superlink.{FEDERATION}]\n'
                                          f'address = "{address}"\n{security}')
        self._note(f"federation {FEDERATION}: SuperLink {address}, "
                   + ("TLS" if root_certificates else "insecure mode: no TLS, no SuperNode authentication"))

    def _note(self, text: str) -> None:
        with open(self.logs / "commands.txt", "a") as handle:
            handle.write(text + "\n")

    def _environment(self, home: str) -> dict:
        return {**self.env, "FLWR_HOME": str(self.folder / "homes" / home)}

    def stop(self, keep_homes: bool = False) -> list[int]:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return []


    # ------------------------------------------------------------------ runs
    def cli(self, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
        self._note("flwr " + " ".join(arguments))
        return subprocess.run([str(BIN / "flwr"), *arguments], env=self._environment("cli"), cwd=self.folder,
                              capture_output=True, text=True, timeout=timeout)

    def run(self, config: dict, name: str, timeout: float) -> Outcome:
        """`flwr run` of the app with this run config, streamed until the run has finished."""
        started = time.perf_counter()
        config_file = self.logs / f"{name}.run_config.toml"
        config_file.write_text(jobs.run_config_toml(config))
        server_log = self.logs / f"{name}.serverapp.log"
        command = [str(BIN / "flwr"), "run", str(jobs.APP_DIR), FEDERATION, "--run-config", str(config_file),
                   "--stream"]
        self._note(" ".join(command))
        with open(server_log, "w") as output:
            streamer = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                        env=self._environment("cli"), cwd=self.folder, start_new_session=True)
            self.processes[f"flwr-run-{name}"] = streamer
            try:
                streamer.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        text = server_log.read_text(errors="replace")
        found = re.search(r"Successfully started run (\d+)", text)
        if found is None:
            if streamer.poll() is None:
                os.killpg(streamer.pid, signal.SIGKILL)
            raise P2Error(f"flwr run did not start the run; see {server_log}")
        run_id = found[1]
        if streamer.poll() is None:
            self.cli("stop", run_id, FEDERATION)
            os.killpg(streamer.pid, signal.SIGKILL)
            streamer.wait()
            return Outcome(run_id, "timeout", time.perf_counter() - started,
                           error=f"the run did not finish within {timeout:.0f} s and was stopped")
        outcome = Outcome(run_id, "finished", time.perf_counter() - started)
        for line in text.splitlines():
            if jobs.MARKER not in line:
                continue
            said = line.split(jobs.MARKER, 1)[1].strip()
            if said.startswith("RESULT "):
                outcome.result = json.loads(said[len("RESULT "):])
            elif said.startswith("FAILED "):
                outcome.error = said[len("FAILED "):]
            elif "failed in" in said or "completes without" in said:
                outcome.warnings.append(said)
        # The ServerApp's last line says how it ended; ask the SuperLink for the run's status too (a ServerApp that
        # completed but whose run Flower marks failed is not taken as complete)
        listing = self.cli("ls", FEDERATION, "--run-id", run_id, "--format", "json")
        try:
            outcome.status = json.loads(listing.stdout[listing.stdout.index("{"):])["runs"][0]["status"]
        except (ValueError, KeyError, IndexError):
            outcome.status = f"unknown ({listing.stdout.strip()[-200:]} {listing.stderr.strip()[-200:]})"
        if outcome.error is None and not outcome.completed:
            outcome.error = f"the run ended with status {outcome.status} and no result line; see {server_log}"
        return outcome

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


class LocalFederation(Federation):
    def __init__(self, folder: Path, partition_files: list[Path], threads_per_node: int | None = None):
        super().__init__(folder)
        self.partition_files = [Path(path).resolve() for path in partition_files]
        self.port = None
        self._reaping = False
        env = self.env
        if threads_per_node:
            env["P2_THREADS"] = str(threads_per_node)
        # All SuperNodes share this machine's cores: a ClientApp whose process takes over 30 s to start (Python,
        # torch, the toolkit) is started again by Flower, which only adds load. Two clients per core at a time.
        self.max_parallel = 2 * len(os.sched_getaffinity(0))

    # ------------------------------------------------------------------ processes

    def _start(self, name: str, command: list[str], home: str) -> subprocess.Popen:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=self._environment(home), cwd=self.folder, start_new_session=True)
        threading.Thread(target=_tee, args=(process.stdout, self.logs / f"{name}.log"), daemon=True).start()
        self.processes[name] = process
        self._note(f"{name} (pid {process.pid}): {' '.join(command)}")
        return process

    def _wait_for(self, name: str, pattern: str, timeout: float) -> re.Match:
        path, process = self.logs / f"{name}.log", self.processes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, path.read_text(errors="replace")) if path.is_file() else None
            if match:
                return match
            if process.poll() is not None:
                raise P2Error(f"{name} exited (status {process.returncode}) while starting; see {path}")
            time.sleep(0.1)
        raise P2Error(f"{name} did not start within {timeout:.0f} s; see {path}")

    def _reap(self) -> None:
        # A SuperNode that was killed must be reaped: while it is a zombie, its SuperExec sees its parent alive
        while self._reaping:
            for process in list(self.processes.values()):
                process.poll()
            time.sleep(0.2)

    def start(self, timeout: float = 120) -> None:
        started = time.perf_counter()
        self._on_sigterm()
        self._reaping = True
        threading.Thread(target=self._reap, daemon=True).start()
        self.port = free_port()
        log.warning("Flower federation in insecure mode (no TLS, no SuperNode authentication) on 127.0.0.1:%d: "
                    "loopback only; README.md says how to run one across machines", self.port)
        self._start("superlink", [str(BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
                                  "--port", str(self.port), "--isolation", "subprocess",
                                  "--disable-runtime-dependency-installation"], "superlink")
        self._write_cli_config(f"127.0.0.1:{self.port}", None)
        self._wait_for("superlink", r"Uvicorn running on|Application startup complete", timeout)
        for client, path in enumerate(self.partition_files):
            self._start(f"supernode{client}", [
                str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{self.port}",
                "--port", str(free_port()), "--isolation", "subprocess",
                "--node-config", f'partition-id={client} partition-file="{path}"'], f"node{client}")
        for client in range(len(self.partition_files)):
            self.node_ids[client] = int(self._wait_for(f"supernode{client}", r"SuperNode ID: (\d+)", timeout)[1])
        log.info("Flower federation up in %.1f s: SuperLink 127.0.0.1:%d, %d SuperNodes; logs in %s",
                 time.perf_counter() - started, self.port, len(self.node_ids), self.logs)

    def _on_sigterm(self) -> None:
        """A SIGTERM to this process (kill, a CI timeout) becomes SystemExit, so that the `finally` that stops
        the federation runs; Python's default would end this process and leave every Flower process behind."""
        self._previous_sigterm = None
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            def stop_on_sigterm(number, _frame):
                raise SystemExit(128 + number)
            self._previous_sigterm = signal.signal(signal.SIGTERM, stop_on_sigterm)

    def kill_node(self, client: int) -> None:
        """SIGKILL a SuperNode with its SuperExec and ClientApp (its process group): a machine that died."""
        process = self.processes[f"supernode{client}"]
        os.killpg(process.pid, signal.SIGKILL)
        self._note(f"killed supernode{client} (process group {process.pid})")

    def stop(self, keep_homes: bool = False) -> list[int]:
        """End every process this federation started; returns those still alive (none, normally)."""
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        self._reaping = False
        left = self._end_tagged()
        if getattr(self, "_previous_sigterm", None) is not None and \
                threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        if not keep_homes:
            shutil.rmtree(self.folder / "homes", ignore_errors=True)   # installed FABs and state; logs stay
        self._note(f"stopped; processes left: {left}")
        return left

    def _end_tagged(self) -> list[int]:
        """Processes started in sessions of their own (the SuperLink's SuperExec and ServerApp) carry our tag."""
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
            pids = self.tagged()
            if not pids:
                return []
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while self.tagged() and time.monotonic() < deadline:
                time.sleep(0.1)
        return self.tagged()

    def tagged(self) -> list[int]:
        needle, pids = f"P2_FLOWER_TAG={self.tag}".encode(), []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        pids.append(int(entry.name))
            except OSError:
                pass
        return pids

def main(argv=None) -> None:
    from flower_federation.engine import FlowerEngine
    from pipeline import load_experiment, stages
    from toolkit import cli
    from toolkit import stages as runner

    parser = cli.parser(__doc__)
    FlowerEngine.add_arguments(parser)
    parser.add_argument("--force", action="store_true", help="rerun the Flower stages even if up to date")
    parser.add_argument("--write-partitions", action="store_true",
                        help="only write the run's partition and each client's file for its SuperNode (a real "
                             "federation: copy file i to the machine of client i), print their paths and stop")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)

    def run(_):
        threads = cli.apply_threads(args.threads, args.device)
        experiment = load_experiment(cli.run_from_args(args))
        with FlowerEngine.from_arguments(args, threads) as engine:
            chosen = [stage for stage in stages(experiment, engine=engine)
                      if stage.name in ("partition", "FedAvg (Flower)", "P2 round (Flower)")]
            if args.write_partitions:
                runner.run(chosen[:1], threads=threads)
                for path in jobs.write_client_partitions(experiment):
                    print(path)
                return
            runner.run(chosen, force=args.force, threads=threads)

    cli.main_guard(run)


if __name__ == "__main__":
    main()
