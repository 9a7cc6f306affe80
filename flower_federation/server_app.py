"""The ServerApp: the strategy. It runs every FedAvg round or every P2 round of one experiment run and writes
the same checkpoints, with the same meta, as the in-process stages (FL_model_generation/fl_stage.py,
defend/p2_stage.py), plus the stage's provenance (`made_from`).

Each round sends every client still taking part its index, the round, the stage and the model; the replies
are averaged with fedavg.fedavg in client order, so the result does not depend on which reply came first.
A client that fails (an error reply, or no reply within reply-timeout: a killed SuperNode never answers, and
the SuperLink only notices after about a minute of missed heartbeats) is named with its round. With fewer than
min-clients left, the run stops with that one line; otherwise the round completes without it (logged) and it is
left out of the later rounds. The driver reads the lines marked [p2-flower] from the run's log.
"""
import json
import os
import time
from logging import ERROR, INFO, WARNING

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from flower_federation import job as jobs
from toolkit.errors import P2Error

app = ServerApp()


def say(level: int, text: str) -> None:
    log(level, "%s %s", jobs.MARKER, text)


@app.main()
def main(grid: Grid, context: Context) -> None:
    started = time.perf_counter()
    try:
        job = jobs.Job.from_run_config(context.run_config)
        if job.model_dir:
            os.environ["P2_MODEL_DIR"] = job.model_dir   # where this run's checkpoints go (toolkit/paths.py)
        result = Server(grid, job).run()
    except BaseException as error:
        say(ERROR, f"FAILED {jobs.one_line(error)}")
        raise
    result["seconds"] = round(time.perf_counter() - started, 2)
    say(INFO, "RESULT " + json.dumps(result))


class Server:
    def __init__(self, grid: Grid, job: jobs.Job):
        from toolkit import cli
        from toolkit.digests import file_digest

        cli.apply_threads(job.threads or None)
        self.grid, self.job = grid, job
        self.experiment = jobs.experiment(job.run, job.settings_changes, job.settings_digest)
        self.clients = self.experiment.partition.clients
        if job.made_from is not None and job.made_from.get("data") != self.experiment.data.fingerprint:
            raise P2Error(f"the ServerApp's {job.run.dataset} data (fingerprint {self.experiment.data.fingerprint}) "
                          f"is not the driver's ({job.made_from.get('data')})")
        self.partition_digest = file_digest(job.run.partition_path)
        self.minimum = job.min_clients or self.clients
        if self.minimum > self.clients:
            raise P2Error(f"min-clients = {job.min_clients} but the run has {self.clients} clients")
        self.dropped: dict[int, dict] = {}
        self.taking_part = list(range(self.clients))
        self.node_of = self._nodes()

    # ------------------------------------------------------------------ the federation
    def _nodes(self) -> dict[int, int]:
        """Client index -> SuperNode id: as the driver was told by the SuperNodes, else asked (one query)."""
        job, deadline = self.job, time.monotonic() + self.job.node_wait_timeout
        wanted = set(job.nodes.values()) if job.nodes else None
        while True:
            connected = set(self.grid.get_node_ids())
            if (wanted is not None and wanted <= connected) or (wanted is None and len(connected) >= self.clients):
                break
            if time.monotonic() > deadline:
                if not job.nodes:
                    raise P2Error(f"{len(connected)} of {self.clients} SuperNodes connected after "
                                  f"{job.node_wait_timeout:g} s (node-wait-timeout)")
                break
            time.sleep(0.5)
        if job.nodes:
            if sorted(job.nodes) != list(range(self.clients)):
                raise P2Error(f"run config nodes names clients {sorted(job.nodes)}; the run has 0..{self.clients - 1}")
            absent = {client: (node, f"not connected to the SuperLink (waited {job.node_wait_timeout:g} s)")
                      for client, node in job.nodes.items() if node not in connected}
            if absent:   # a client whose SuperNode is gone before the run misses its first round
                for client, (node, why) in sorted(absent.items()):
                    say(WARNING, f"client {client} (SuperNode {node}) failed in {job.label} round 1: {why}")
                    self.dropped[client] = {"round": 1, "stage": job.stage, "node": node, "reason": why}
                present = [client for client in job.nodes if client not in absent]
                self.taking_part, line = jobs.settle(job.label, 1, absent, present, self.clients, self.minimum)
                say(WARNING, line)
            return dict(job.nodes)
        messages = [Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type="query",
                            group_id="identify") for node in sorted(connected)]
        replies, failed = self._exchange(messages)
        if failed:
            raise P2Error(f"SuperNodes {sorted(failed)} did not say which client they hold: {failed}")
        node_of = {}
        for node, reply in replies.items():
            client = int(reply.content["info"]["partition-id"])
            if client in node_of:
                raise P2Error(f"SuperNodes {node_of[client]} and {node} both hold client {client} (partition-id)")
            node_of[client] = node
        if sorted(node_of) != list(range(self.clients)):
            raise P2Error(f"the SuperNodes hold clients {sorted(node_of)}; the run has 0..{self.clients - 1}")
        return node_of

    def _exchange(self, messages: list[Message]) -> tuple[dict, dict]:
        """Push (at most max-parallel messages in flight, the next one as a reply comes in), then pull until
        every message has a reply or has waited reply-timeout since it was pushed: ({node: reply},
        {node: why it failed})."""
        job = self.job
        window = job.max_parallel or len(messages)
        waiting, in_flight, ok, failed = list(messages), {}, {}, {}
        while waiting or in_flight:
            free = window - len(in_flight)
            if waiting and free > 0:
                batch, waiting = waiting[:free], waiting[free:]
                pushed_at = time.monotonic()
                for message_id, message in zip(self.grid.push_messages(batch), batch):
                    if message_id is None:
                        failed[message.metadata.dst_node_id] = "the SuperLink did not accept its message"
                    else:
                        in_flight[message_id] = (message.metadata.dst_node_id, pushed_at)
            if not in_flight:
                continue
            for reply in self.grid.pull_messages(list(in_flight)):
                node, _ = in_flight.pop(reply.metadata.reply_to_message_id)
                if reply.has_error():
                    failed[node] = f"error {reply.error.code}: {' '.join(str(reply.error.reason).split())[-400:]}"
                else:
                    ok[node] = reply
            now = time.monotonic()
            for message_id, (node, pushed_at) in list(in_flight.items()):
                if now - pushed_at > job.reply_timeout:
                    failed[node] = f"no reply within reply-timeout = {job.reply_timeout:g} s"
                    del in_flight[message_id]
            if in_flight and not (waiting and window > len(in_flight)):
                time.sleep(job.poll_interval)
        return ok, failed

    def round(self, round_index: int, states: dict[int, dict], rounds: int) -> dict[int, tuple[dict, int, dict]]:
        """One round with every client taking part: {client: (state, rows, info)}."""
        job, label = self.job, self.job.label
        shared = {}
        messages = []
        for client in self.taking_part:
            state = states[client]
            if id(state) not in shared:   # one record for a model sent to several clients
                shared[id(state)] = ArrayRecord(state)
            config = ConfigRecord({"client-idx": client, "round": round_index, "rounds": rounds, "stage": job.stage,
                                   "dataset": job.run.dataset, "seed": job.run.seed, "quick": job.run.quick,
                                   "settings-changes": json.dumps(job.settings_changes, sort_keys=True),
                                   "settings-digest": job.settings_digest, "partition-digest": self.partition_digest})
            messages.append(Message(RecordDict({"arrays": shared[id(state)], "config": config}),
                                    dst_node_id=self.node_of[client], message_type=jobs.MESSAGE_TYPES[job.stage],
                                    group_id=f"{job.stage}-{round_index}"))
        started = time.perf_counter()
        replies, failed = self._exchange(messages)
        client_of = {node: client for client, node in self.node_of.items()}
        results = {}
        for node, reply in replies.items():
            client = client_of[node]
            rows = int(reply.content["metrics"]["num-examples"])
            info = reply.content["info"]
            if int(info["client-idx"]) != client:
                failed[node] = f"replied as client {info['client-idx']}"
            elif rows != self.expected_rows(client):
                failed[node] = f"trained on {rows} rows, its partition has {self.expected_rows(client)}"
            else:
                results[client] = (reply.content["arrays"].to_torch_state_dict(), rows,
                                   json.loads(str(info["stats"])) if str(info["stats"]) else None)
        failures = {client_of[node]: (node, why) for node, why in failed.items()}
        for client, (node, why) in sorted(failures.items()):
            say(WARNING, f"client {client} (SuperNode {node}) failed in {label} round {round_index}: {why}")
            self.dropped[client] = {"round": round_index, "stage": job.stage, "node": node, "reason": why}
        if failures:
            self.taking_part, line = jobs.settle(label, round_index, failures, list(results), self.clients,
                                                 self.minimum)
            say(WARNING, line)
        say(INFO, f"{label} round {round_index}/{rounds}: {len(results)} clients in "
                  f"{time.perf_counter() - started:.1f} s")
        return {client: results[client] for client in sorted(results)}

    def expected_rows(self, client: int) -> int:
        if not hasattr(self, "_rows"):
            from data_partitioning import load_partition
            self._rows = [len(rows) for rows in load_partition(self.job.run).clients]
        return self._rows[client]

    def meta(self, meta: dict) -> dict:
        """A checkpoint's meta as the in-process stage writes it, with the stage's provenance, and the clients
        left out when a round completed without some."""
        extra = {"made_from": self.job.made_from} if self.job.made_from is not None else {}
        if self.dropped:
            extra["missing_clients"] = {str(client): why for client, why in sorted(self.dropped.items())}
        return {**meta, **extra}

    def result(self) -> dict:
        return {"stage": self.job.stage, "clients": self.taking_part,
                "dropped": {str(client): why for client, why in sorted(self.dropped.items())}}

    # ------------------------------------------------------------------ the stages
    def run(self) -> dict:
        say(INFO, f"{self.job.label} of {self.job.run.dataset} seed {self.job.run.seed}"
                  f"{' (quick)' if self.job.run.quick else ''}: {self.clients} clients on SuperNodes {self.node_of}")
        (self.fedavg if self.job.stage == "fedavg" else self.p2)()
        return self.result()

    def fedavg(self) -> None:
        """fl_stage.train_fl_model's rounds: every round's global and client models, then the final model."""
        from data_partitioning import load_partition, tensors
        from FL_model_generation.fedavg import fedavg, initial_state
        from FL_model_generation.fl_stage import checkpoint_meta
        from FL_model_generation.models import accuracy, build_model, load_state
        from toolkit.checkpoints import save_checkpoint

        run, settings = self.job.run, self.experiment.fl
        test = tensors(self.experiment.data, load_partition(run).test)
        state = initial_state(settings.architecture, run.seed)
        for round_index in range(1, settings.rounds + 1):
            results = self.round(round_index, {client: state for client in self.taking_part}, settings.rounds)
            clients = list(results)
            state = fedavg([results[c][0] for c in clients], [results[c][1] for c in clients])
            save_checkpoint(run.fl_global_path(round_index), state,
                            self.meta(checkpoint_meta(run, settings, round_index, "global")))
            for client in clients:
                save_checkpoint(run.fl_client_path(round_index, client), results[client][0],
                                self.meta(checkpoint_meta(run, settings, round_index, f"client{client}")))
            model = load_state(build_model(settings.architecture), state, "the global model")
            say(INFO, f"FedAvg round {round_index}/{settings.rounds}: test accuracy {accuracy(model, *test):.4f}")
        save_checkpoint(run.fl_final_path, state, self.meta(checkpoint_meta(run, settings, settings.rounds, "global")))
        say(INFO, f"final FL model written to {run.fl_final_path}")

    def p2(self) -> None:
        """p2_stage's rounds: each client starts from its P2 start (round 1) or the last average, fine-tunes
        toward the soft targets it keeps, and the server averages; every client's and average's file."""
        from defend import p2_stage
        from FL_model_generation.fedavg import fedavg
        from toolkit.checkpoints import load_checkpoint, save_checkpoint

        run, settings, fl_rounds = self.job.run, self.experiment.p2, self.experiment.fl.rounds
        files = p2_stage.P2Files(run, settings.rounds)
        expect = {"dataset": run.dataset, "seed": run.seed, "quick": run.quick}
        loaded = {}
        starts, start_metas = {}, {}
        for client in self.taking_part:
            path = p2_stage.starting_checkpoint(run, settings, fl_rounds, client)
            if path not in loaded:
                loaded[path] = load_checkpoint(path, expect=expect)
            starts[client], start_metas[client] = loaded[path]
        for round_index in range(1, settings.rounds + 1):
            results = self.round(round_index, starts, settings.rounds)
            clients = list(results)
            metas = []
            for client in clients:
                state, rows, stats = results[client]
                meta = p2_stage.client_meta(run, settings, start_metas[client], client, round_index, rows, stats)
                save_checkpoint(files.client(round_index, client), state, self.meta(meta))
                metas.append(meta)
            average = fedavg([results[c][0] for c in clients], [results[c][1] for c in clients])
            average_meta = p2_stage.global_meta(run, round_index, metas)
            save_checkpoint(files.global_model(round_index), average, self.meta(average_meta))
            say(INFO, f"P2 round {round_index}/{settings.rounds}: average written to {files.global_model(round_index)}")
            starts = {client: average for client in self.taking_part}
            start_metas = {client: average_meta for client in self.taking_part}
