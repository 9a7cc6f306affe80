"""DP-SGD tuned per target eps, as a reviewer would accept it: each eps's recipe (learning rate, clipping norm,
local epochs, momentum) is chosen on a validation split of the clients' own data, never on evaluation rows,
and the whole search is recorded.

For every eps of DP_TARGET_EPS (baseline_defenses_<dataset>.py):
1. Split: each client's rows are shuffled (seed, "dp-tuning", client) and DP_VALIDATION_FRACTION of them held out
   as its validation rows; the rest are its search-training rows. Only the clients' rows are read (the members:
   no test, evaluation, known, reference or shadow row).
2. Search: every candidate of the grid DP_TUNE_LR x DP_TUNE_MAX_GRAD_NORM x DP_TUNE_LOCAL_EPOCHS x
   DP_TUNE_MOMENTUM trains FedAvg with DP-SGD in every client (dp_sgd.py, the FL recipe otherwise: architecture,
   clients, batch size, initial weights, seeds) on the search-training rows, at the noise multiplier that spends
   the target eps over the candidate's full schedule (ROUNDS x its local epochs x steps per epoch, at the
   search-training size), for the first DP_TUNE_ROUNDS rounds of that schedule (None: all of them); its score is
   the accuracy of the global model on all clients' validation rows, averaged over the last 3 rounds trained (a
   recipe whose noisy model swings from round to round is not chosen for one lucky round; every round's accuracy
   is recorded). Each candidate is one stage: a rerun skips those already done
   (model/<dataset>/<run>/dp_tuning/eps<E>/<candidate>.json).
3. Choice: the candidate with the highest score (ties: the first in grid order).
   results/<dataset>/<run>/dp_tuning/dp_eps<E>.json records every candidate, its validation accuracy, noise
   multiplier, steps and eps spent, the split's sizes, and the choice.
4. The model dp_eps<E>: FedAvg with DP-SGD with the chosen recipe on the clients' full data (ROUNDS rounds, the
   noise multiplier recomputed for the full client size); its checkpoint meta records the recipe and where the
   search is (dp_sgd.py writes the rest: eps and delta spent per client, noise multiplier, steps).

Why this grid (literature in /work/notes/defenses.md §6):
- what moves a clipped step is roughly lr x C (Tramer & Boneh 2021; De et al. 2022), so two clipping norms (one at
  about the size of typical per-example gradients, one well below it, where every gradient is clipped) times two
  learning rates cover a 10-100x range of lr x C;
- local epochs trade steps against noise at a fixed eps: one local epoch needs far less noise per step than the
  FL recipe's (Adult at eps 8: noise multiplier 0.84 at 1 local epoch, 1.30 at 5);
- momentum 0.9 (Tramer & Boneh, HAMP, RelaxLoss) or none (De et al., Opacus' MNIST example): both are used, and
  with momentum 0.9 the effective step is 10x larger.
The batch size stays the FL recipe's (the sampling rate then matches the undefended model's batches).

Departures, and why:
- DP_TUNE_ROUNDS < ROUNDS on the CPU presets: a candidate trains only the first rounds of its full-length
  schedule (noise calibrated for all ROUNDS), a proxy that ranks recipes at a fraction of the cost. On the CPU
  presets the local epochs are fixed at 1 (DP_TUNE_LOCAL_EPOCHS = (1,)), the value that needs the least noise per
  step at a given eps, and the CNNs fix the clipping norm (the learning rate is tuned instead): a grid with
  every dimension would not fit the CPU budget (README: costs). Each dataset's grid is explained next to its
  constants; a wider grid is a change of constants only.
- The privacy cost of the search itself (each candidate reads the clients' data) is not accounted, as is usual
  in the DP-SGD literature; Papernot & Steinke (ICLR 2022) show it is small for a handful of candidates but not
  zero. The validation rows are the clients' own: a deployment would hold them out the same way.
"""
import itertools
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from FL_model_generation.models import accuracy, build_model, load_state
from FL_model_generation.training import FLSettings
from other_attack_and_defend import defended_fedavg, dp_sgd
from toolkit.checkpoints import load_json, save_checkpoint, save_json
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import numpy_rng
from toolkit.stages import label

log = logging.getLogger(__name__)
SCORED_ROUNDS = 3  # a candidate's score: its mean validation accuracy over its last rounds trained


@dataclass(frozen=True)
class Candidate:
    """One DP-SGD recipe of the search grid."""
    lr: float
    max_grad_norm: float
    local_epochs: int
    momentum: float

    @property
    def name(self) -> str:
        return f"lr{self.lr:g}_clip{self.max_grad_norm:g}_ep{self.local_epochs}_mom{self.momentum:g}"

    def as_dict(self) -> dict:
        return {"lr": self.lr, "max_grad_norm": self.max_grad_norm, "local_epochs": self.local_epochs,
                "momentum": self.momentum}

    def fl(self, fl: FLSettings, rounds: int | None = None) -> FLSettings:
        """The FL recipe with this candidate's learning rate, local epochs and momentum (and `rounds`)."""
        return replace(fl, lr=self.lr, local_epochs=self.local_epochs, momentum=self.momentum,
                       rounds=rounds or fl.rounds)

    def dp(self, target_eps: float, delta_factor: float) -> dp_sgd.DPSettings:
        return dp_sgd.DPSettings(target_eps=target_eps, delta_factor=delta_factor, max_grad_norm=self.max_grad_norm,
                                 lr=self.lr)


@dataclass(frozen=True)
class Search:
    """Everything the search of one eps is made from (BaselineDefenseSettings.dp_search)."""
    target_eps: float
    delta_factor: float
    validation_fraction: float
    lrs: tuple[float, ...]
    max_grad_norms: tuple[float, ...]
    local_epochs: tuple[int, ...]
    momenta: tuple[float, ...]
    rounds: int | None

    def grid(self) -> list[Candidate]:
        return [Candidate(*values) for values in itertools.product(self.lrs, self.max_grad_norms, self.local_epochs,
                                                                   self.momenta)]

    def split_constants(self) -> dict:
        return {"target_eps": self.target_eps, "delta_factor": self.delta_factor,
                "validation_fraction": self.validation_fraction, "search_rounds": self.rounds}


def model_name(eps: float) -> str:
    return dp_sgd.target_name(eps)


def candidate_path(run: Run, eps: float, candidate: Candidate) -> Path:
    return run.model_dir / "dp_tuning" / f"eps{eps:g}" / f"{candidate.name}.json"


def search_path(run: Run, eps: float) -> Path:
    return run.results_dir / "dp_tuning" / f"{model_name(eps)}.json"


def validation_split(clients: list[np.ndarray], fraction: float, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(search-training rows, validation rows) of every client: a seeded shuffle of its own rows, the first
    round(fraction x size) (at least 1, at most size - 1) held out."""
    splits = []
    for client, rows in enumerate(clients):
        if len(rows) < 2:
            raise P2Error(f"DP-SGD tuning: client {client} has {len(rows)} row(s), too few to hold out validation rows")
        held = min(len(rows) - 1, max(1, int(round(fraction * len(rows)))))
        order = numpy_rng(seed, "dp-tuning", "validation", client).permutation(len(rows))
        splits.append((rows[order[held:]], rows[order[:held]]))
    return splits


def evaluate_candidate(run: Run, fl: FLSettings, search: Search, candidate: Candidate) -> dict:
    """Train one candidate on the search-training rows, score it on the validation rows, write its record."""
    from data_partitioning import load_partition, tensors
    from data_preprocessing import load_dataset

    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    splits = validation_split(partition.clients, search.validation_fraction, run.seed)
    data = [tensors(dataset, train) for train, _ in splits]
    validation_rows = np.concatenate([held for _, held in splits])
    full = candidate.fl(fl)
    dp = candidate.dp(search.target_eps, search.delta_factor)
    dp_sgd.check_compatible(build_model(fl.architecture))
    sizes = sorted({len(labels) for _, labels in data})
    noise = {size: dp_sgd.noise_multiplier_for(dp, full, size) for size in sizes}
    clients = [dp_sgd.DPClient(dp, noise[len(labels)], len(labels), fl.batch_size) for _, labels in data]
    trained = candidate.fl(fl, min(search.rounds or fl.rounds, fl.rounds))
    validation = tensors(dataset, validation_rows)
    per_round = []

    def score_round(round_index, state, client_states):
        per_round.append(accuracy(load_state(build_model(fl.architecture), state, "a DP-SGD candidate"), *validation))

    dp_sgd.dp_federated_training(data, trained, run.seed, clients, on_round=score_round,
                                 description=f"DP-SGD eps={search.target_eps:g} candidate {candidate.name}")
    score = float(np.mean(per_round[-SCORED_ROUNDS:]))
    spent = [client.spent() for client in clients]
    record = {"candidate": candidate.name, **candidate.as_dict(), "validation_accuracy": score,
              "validation_accuracy_per_round": per_round,
              "rounds_trained": trained.rounds, "rounds_of_schedule": fl.rounds,
              "noise_multiplier": spent[0]["noise_multiplier"], "sample_rate": spent[0]["sample_rate"],
              "steps_per_client": spent[0]["steps"],
              "steps_of_schedule": dp_sgd.total_steps(full, len(data[0][1])),
              "eps_spent_in_search": max(s["eps"] for s in spent), "delta": max(s["delta"] for s in spent),
              "rows": {"search_training": int(sum(len(labels) for _, labels in data)),
                       "validation": int(len(validation_rows))},
              "dataset": run.dataset, "seed": run.seed, "quick": run.quick, "target_eps": search.target_eps}
    save_json(candidate_path(run, search.target_eps, candidate), record)
    log.info("DP-SGD eps=%g candidate %s: validation accuracy %.4f (noise multiplier %.3f, %d of %d steps)",
             search.target_eps, candidate.name, score, record["noise_multiplier"], record["steps_per_client"],
             record["steps_of_schedule"])
    return record


def choose(records: list[dict]) -> dict:
    """The record with the highest validation accuracy; ties go to the first (grid order)."""
    if not records:
        raise P2Error("DP-SGD tuning: no candidate to choose from (the grid is empty)")
    return max(enumerate(records), key=lambda item: (item[1]["validation_accuracy"], -item[0]))[1]


def write_search(run: Run, fl: FLSettings, search: Search) -> dict:
    """results/<dataset>/<run>/dp_tuning/dp_eps<E>.json: every candidate's record and the chosen recipe."""
    records = []
    for candidate in search.grid():
        record = load_json(candidate_path(run, search.target_eps, candidate))
        if record.get("seed") != run.seed or record.get("quick") != run.quick:
            raise P2Error(f"{candidate_path(run, search.target_eps, candidate)} belongs to another run; rerun its stage")
        records.append(record)
    chosen = choose(records)
    result = {"dataset": run.dataset, "seed": run.seed, "quick": run.quick, "model": model_name(search.target_eps),
              "target_eps": search.target_eps, "delta_factor": search.delta_factor,
              "validation_fraction": search.validation_fraction, "search_rounds": search.rounds or fl.rounds,
              "fl_rounds": fl.rounds, "batch_size": fl.batch_size,
              "grid": {"lr": list(search.lrs), "max_grad_norm": list(search.max_grad_norms),
                       "local_epochs": list(search.local_epochs), "momentum": list(search.momenta)},
              "selection": f"highest validation accuracy (mean of the last {SCORED_ROUNDS} rounds trained); ties: first "
                           f"in grid order",
              "chosen": {key: chosen[key] for key in ("candidate", "lr", "max_grad_norm", "local_epochs", "momentum",
                                                      "validation_accuracy")},
              "candidates": records}
    save_json(search_path(run, search.target_eps), result)
    log.info("DP-SGD eps=%g: chose %s (validation accuracy %.4f) out of %d candidates", search.target_eps,
             chosen["candidate"], chosen["validation_accuracy"], len(records))
    return result


def chosen_candidate(record: dict) -> Candidate:
    """The recipe a search record (`write_search`'s file) chose."""
    chosen = record["chosen"]
    return Candidate(float(chosen["lr"]), float(chosen["max_grad_norm"]), int(chosen["local_epochs"]),
                     float(chosen["momentum"]))


def train_tuned(run: Run, fl: FLSettings, search: Search) -> dict:
    """The model dp_eps<E>: FedAvg with DP-SGD with the chosen recipe on the clients' full data."""
    from data_partitioning import load_partition, tensors
    from data_preprocessing import load_dataset

    found = load_json(search_path(run, search.target_eps))
    chosen = chosen_candidate(found)
    recipe, dp = chosen.fl(fl), chosen.dp(search.target_eps, search.delta_factor)
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    data = [tensors(dataset, rows) for rows in partition.clients]
    noise = {size: dp_sgd.noise_multiplier_for(dp, recipe, size) for size in sorted({len(r) for r in partition.clients})}
    clients = [dp_sgd.DPClient(dp, noise[len(rows)], len(rows), recipe.batch_size) for rows in partition.clients]
    log.info("DP-SGD eps=%g with the tuned recipe %s: noise multiplier %.4f, %d steps per client", search.target_eps,
             chosen.name, clients[0].noise_multiplier, dp_sgd.total_steps(recipe, len(partition.clients[0])))
    last_round = defended_fedavg.LastRound(recipe, run.seed)
    state = dp_sgd.dp_federated_training(data, recipe, run.seed, clients, test_data=tensors(dataset, partition.test),
                                         description=f"DP-SGD eps={search.target_eps:g} {run.dataset}",
                                         on_round=last_round)
    meta = dp_sgd.checkpoint_meta(run, recipe, dp, clients)
    meta.update({"recipe": {**chosen.as_dict(), "batch_size": recipe.batch_size, "rounds": recipe.rounds},
                 "search": {"file": label(search_path(run, search.target_eps)),
                            "validation_accuracy": found["chosen"]["validation_accuracy"],
                            "candidates": len(found["candidates"])}})
    save_checkpoint(dp_sgd.model_path(run, search.target_eps), state, meta)
    last_round.save(run, model_name(search.target_eps), meta)
    log.info("DP-SGD model written to %s: spent eps %.3f (target %g), delta %.2e", dp_sgd.model_path(run, search.target_eps),
             meta["eps"], search.target_eps, meta["delta"])
    return meta
