"""DP-FedAvg with client-level differential privacy (McMahan, Ramage, Talwar & Zhang, "Learning Differentially
Private Recurrent Language Models", ICLR 2018), as Flower's and TensorFlow Federated's DP-FedAvg implement it
(/work/notes/defenses.md §5).

The unit of privacy is a whole client: (eps, delta) bound what the released models reveal about whether any one
client, with all of its data, took part. This is a different guarantee from DP-SGD's (dp_sgd.py: one example
of one client), so the models are named dp_fedavg_eps<E> and their utility entry says "dp_level": "client".

As implemented, every round t = 1..T (T = the FL recipe's ROUNDS):
1. every client takes part (q = 1) and runs the FL recipe's local SGD from the global model theta_t (the
   undefended model's local update, fedavg.local_updates; COMPETITOR_LOCAL_EPOCHS local epochs where set:
   defended_fedavg.py);
2. its update Delta_k = theta_k - theta_t is clipped to L2 norm at most C = DP_FEDAVG_CLIP over all parameters
   together (McMahan et al.'s FlatClip): Delta_k x min(1, C / ||Delta_k||);
3. the server averages with uniform weights (w_k = 1, W = N clients: the fixed-denominator estimator with
   q W = N) and adds Gaussian noise of standard deviation z C / N to every coordinate:
   theta_{t+1} = theta_t + (1 / N) sum_k clip(Delta_k) + N(0, (z C / N)^2 I).
   Adding or removing one client moves the sum of clipped updates by at most C, so the sum's noise z C is
   the Gaussian mechanism with noise multiplier z; dividing by the public constant N changes nothing.
4. Accounting: T Gaussian mechanisms with sampling rate q = 1, composed with Opacus' RDP accountant
   (RDPAccountant with history [(z, 1.0, T)]; for q = 1 Opacus uses the exact Gaussian RDP alpha / (2 z^2)).
   z is Opacus' get_noise_multiplier for the target eps over those T steps (accountant "rdp", ALPHAS below),
   at delta = 1 / (DP_FEDAVG_DELTA_FACTOR x N).

What q = 1 means: no amplification by sampling. The accountant treats each round as the plain Gaussian
mechanism, so T rounds cost what T releases of a noisy sum cost (exactly mu-GDP with mu = sqrt(T) / z).
Client sampling would not help at N = 10 (/work/notes/defenses.md §5c: q = 0.3 needs z about 2.7 for eps 4 over
50 rounds, and then the noise on the average, z C / (q N), is larger than at q = 1).

Departures, and why:
- Uniform weights w_k = 1 instead of the FL model's sample-count weights: the sensitivity of the average is then
  C / N. With IID clients of equal size (Adult, Location, MNIST, Purchase100, CIFAR-10) the two are the same;
  for Dirichlet or writer partitions the sample-weighted mean would have sensitivity max_k (n_k / n) C.
- No per-user example cap w_hat and no server learning rate or server momentum: the server applies the noisy
  average as FedAvg applies its average.
- The clip is applied once to the finished local update, not projected after every local step (the paper's
  UserUpdate projects; Flower clips the returned update): the same bound on what the server receives.
- delta = 1 / (10 N) = 0.01 for 10 clients: the usual delta < 1 / (number of units) rule, here with units =
  clients. It is large in absolute terms because there are only 10 clients; McMahan et al. had about 763k.
- With 10 clients the noise is huge: the per-coordinate noise on the averaged update is z C / 10, against an
  average of norm at most C; over d parameters its norm is about z C sqrt(d) / 10 (the checkpoint records the
  numbers). DP_FEDAVG_TARGET_EPS therefore holds large eps values, chosen next to the constants.
The server here is trusted: it sees every client's unclipped update before it adds the noise (central DP), so
client-level DP protects the released models, not the clients from the server.
Output: model/<dataset>/<run>/dp_fedavg_eps<E>/final.pt.
"""
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from FL_model_generation.fedavg import initial_state, local_updates
from FL_model_generation.models import accuracy, build_model, load_state
from FL_model_generation.training import FLSettings
from other_attack_and_defend import defended_fedavg
from other_attack_and_defend.dp_sgd import ACCOUNTANT, ALPHAS as SGD_ALPHAS
from toolkit.checkpoints import save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import torch_generator
from toolkit.settings import Settings, require

log = logging.getLogger(__name__)
SAMPLE_RATE = 1.0  # every client in every round
# RDP orders: dp_sgd's plus orders between 1 and 1.1, where the optimum lies for the large eps that client-level
# DP over 10 clients needs (Opacus warns when the optimum is the smallest order it was given).
ALPHAS = tuple([1 + x / 100.0 for x in range(1, 10)] + list(SGD_ALPHAS))


@dataclass(frozen=True)
class DPFedAvgSettings(Settings):
    """DP-FedAvg, from other_attack_and_defend/baseline_defenses_<dataset>.py: one model per client-level target
    eps in DP_FEDAVG_TARGET_EPS ("dp_fedavg_eps<E>"), delta = 1 / (DP_FEDAVG_DELTA_FACTOR x clients), each
    client's update clipped to L2 norm DP_FEDAVG_CLIP."""
    dp_fedavg_target_eps: tuple[float, ...]
    dp_fedavg_delta_factor: float
    dp_fedavg_clip: float

    QUICK: ClassVar[dict] = {"DP_FEDAVG_TARGET_EPS": lambda values: tuple(sorted(values)[-1:])}

    def check(self) -> None:
        require(all(eps > 0 for eps in self.dp_fedavg_target_eps), "DP_FEDAVG_TARGET_EPS", self.dp_fedavg_target_eps,
                "must list positive values")
        require(len(set(self.dp_fedavg_target_eps)) == len(self.dp_fedavg_target_eps), "DP_FEDAVG_TARGET_EPS",
                self.dp_fedavg_target_eps, "lists an eps twice")
        require(self.dp_fedavg_delta_factor > 1, "DP_FEDAVG_DELTA_FACTOR", self.dp_fedavg_delta_factor,
                "must exceed 1 so that delta < 1 / clients")
        require(self.dp_fedavg_clip > 0, "DP_FEDAVG_CLIP", self.dp_fedavg_clip, "must be positive")

    def points(self) -> list["DPFedAvgPoint"]:
        return [DPFedAvgPoint(eps, self.dp_fedavg_delta_factor, self.dp_fedavg_clip)
                for eps in sorted(self.dp_fedavg_target_eps)]


@dataclass(frozen=True)
class DPFedAvgPoint:
    target_eps: float
    delta_factor: float
    clip: float

    @property
    def name(self) -> str:
        return target_name(self.target_eps)

    def constants(self) -> dict:
        return {"DP_FEDAVG_TARGET_EPS": self.target_eps, "DP_FEDAVG_DELTA_FACTOR": self.delta_factor,
                "DP_FEDAVG_CLIP": self.clip}

    def delta(self, clients: int) -> float:
        return 1.0 / (self.delta_factor * clients)


def target_name(eps: float) -> str:
    return f"dp_fedavg_eps{eps:g}"


def model_path(run: Run, eps: float) -> Path:
    return defended_fedavg.model_path(run, target_name(eps))


# ---------------------------------------------------------------- accounting

def noise_multiplier(target_eps: float, delta: float, rounds: int) -> float:
    """z such that `rounds` Gaussian mechanisms at q = 1 spend `target_eps` (Opacus, RDP accountant)."""
    from opacus.accountants.utils import get_noise_multiplier

    try:
        return float(get_noise_multiplier(target_epsilon=target_eps, target_delta=delta, sample_rate=SAMPLE_RATE,
                                          steps=rounds, accountant=ACCOUNTANT, alphas=list(ALPHAS)))
    except ValueError as error:
        raise P2Error(f"DP-FedAvg: no noise multiplier reaches eps={target_eps} over {rounds} rounds ({error}); "
                      f"raise it in DP_FEDAVG_TARGET_EPS") from None


def spent_epsilon(z: float, rounds: int, delta: float) -> float:
    """eps of `rounds` rounds at noise multiplier z and q = 1, from a fresh RDP accountant."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(z, SAMPLE_RATE, rounds)]
    return float(accountant.get_epsilon(delta=delta, alphas=list(ALPHAS)))


# ---------------------------------------------------------------- one round at the server

def flat_norm(update: dict) -> float:
    return math.sqrt(sum(float(tensor.double().pow(2).sum()) for tensor in update.values()))


def clip_update(update: dict, clip: float) -> tuple[dict, float]:
    """(update x min(1, clip / ||update||), ||update||): FlatClip over all parameters together."""
    norm = flat_norm(update)
    factor = min(1.0, clip / norm) if norm > 0 else 1.0
    return {name: tensor * factor for name, tensor in update.items()}, norm


def noisy_average(updates: list[dict], clip: float, z: float, generator: torch.Generator) -> tuple[dict, list[float]]:
    """(1 / N) sum_k clip(update_k) + N(0, (z clip / N)^2) per coordinate, with uniform weights; also returns the
    updates' norms before clipping. Noise is drawn parameter by parameter, in the updates' order, from `generator`."""
    if not updates:
        raise P2Error("DP-FedAvg needs at least one client update")
    count = len(updates)
    clipped, norms = zip(*(clip_update(update, clip) for update in updates))
    std = z * clip / count
    average = {}
    for name, first in clipped[0].items():
        total = sum(update[name] for update in clipped) / count
        noise = torch.normal(0.0, std, size=first.shape, generator=generator, dtype=torch.float32) if std else 0.0
        average[name] = total + noise
    return average, list(norms)


def dp_fedavg_training(data: list[tuple[torch.Tensor, torch.Tensor]], fl: FLSettings, seed: int, z: float,
                       clip: float, test_data=None, description: str = "DP-FedAvg",
                       on_round=None) -> tuple[dict, list[dict]]:
    """(final global state, one record per round: the updates' norms and how many were clipped). Clients use the
    FL model's initial weights and per-round generators; the server's noise comes from ("dp-fedavg", round).
    `on_round(round, global state, client states)` sees every round's models (the clients' before clipping)."""
    global_state = initial_state(fl.architecture, seed)
    history = []
    for round_index in range(1, fl.rounds + 1):
        generators = [torch_generator(seed, "fedavg", round_index, client) for client in range(len(data))]
        states = local_updates(fl, [global_state] * len(data), data, generators)
        updates = [{name: state[name] - global_state[name] for name in global_state} for state in states]
        average, norms = noisy_average(updates, clip, z, torch_generator(seed, "dp-fedavg", round_index))
        global_state = {name: global_state[name] + average[name] for name in global_state}
        if on_round is not None:
            on_round(round_index, global_state, states)
        history.append({"round": round_index, "median_update_norm": float(np.median(norms)),
                        "max_update_norm": float(max(norms)), "clipped": int(sum(norm > clip for norm in norms))})
        if test_data is not None:
            model = load_state(build_model(fl.architecture), global_state, "the global model")
            log.info("%s round %d/%d: median update norm %.3f (clip %g), test accuracy %.4f", description, round_index,
                     fl.rounds, history[-1]["median_update_norm"], clip, accuracy(model, *test_data))
    return global_state, history


def train_dp_fedavg(run: Run, fl: FLSettings, point: DPFedAvgPoint) -> dict:
    """FedAvg with client-level DP at the server; writes the model; returns its meta."""
    _, _, data, test = defended_fedavg.client_data(run)
    clients = len(data)
    delta = point.delta(clients)
    z = noise_multiplier(point.target_eps, delta, fl.rounds)
    parameters = sum(tensor.numel() for tensor in initial_state(fl.architecture, run.seed).values())
    std = z * point.clip / clients
    log.info("DP-FedAvg eps=%g: noise multiplier %.4f over %d rounds (q = 1), delta %.3g; noise std %.4g per "
             "coordinate on the average (norm about %.3g over %d parameters) against an average of norm <= %g",
             point.target_eps, z, fl.rounds, delta, std, std * math.sqrt(parameters), parameters, point.clip)
    last_round = defended_fedavg.LastRound(fl, run.seed)
    state, history = dp_fedavg_training(data, fl, run.seed, z, point.clip, test_data=test,
                                        description=f"DP-FedAvg eps={point.target_eps:g} {run.dataset}",
                                        on_round=last_round)
    eps = spent_epsilon(z, fl.rounds, delta)
    meta = defended_fedavg.checkpoint_meta(run, fl, point.name, {
        "kind": "dp_fedavg", **point.constants(), "noise_multiplier": z, "sample_rate": SAMPLE_RATE,
        "rounds": fl.rounds, "clients": clients, "weights": "uniform (1 / clients)", "noise_std": std,
        "expected_noise_norm": std * math.sqrt(parameters), "parameters": parameters, "history": history})
    meta.update({"eps": eps, "delta": delta, "dp_level": "client", "accountant": ACCOUNTANT,
                 "target_eps": point.target_eps})
    save_checkpoint(model_path(run, point.target_eps), state, meta)
    last_round.save(run, point.name, meta)
    log.info("DP-FedAvg model written to %s: client-level eps %.3f (target %g), delta %.3g",
             model_path(run, point.target_eps), eps, point.target_eps, delta)
    return meta
