"""The FL server as the attacker. It holds the global model of every round, each client's local model of
every round, and the model each client returns from the P2 round, so it can attack each client apart:
members are that client's training rows, non-members the evaluation non-members.

- local_model: offline LiRA (reference-calibrated, Carlini et al. 2022) on each client's local model of
  the last FedAvg round; local_model_loss: the loss attack on the same model;
- p2_model, p2_model_loss: the same on each client's P2 model (the one it returned in the first P2 round);
- p2_difference: the global model the server sent into the P2 round against the P2 model the client
  returned: P2 pulls its members' outputs toward soft targets that lower their confidence, so the score is
  the rise of each example's loss;
- round_difference: the same difference for the last FedAvg round (global sent against local model
  returned), where local training lowers the members' loss: the score is the fall of the loss.

Each attack is scored per client without any threshold (AUC, TPR at 1% and 0.1% FPR), and reported as the
mean and standard deviation over clients with the per-client list. Output:
results/<dataset>/<run>/server_attacks.json.

The trained defenses (HAMP, RelaxLoss, AdvReg, DP-SGD, DP-FedAvg) change what the server receives, so the
server attacks their clients too: local_model, local_model_loss and round_difference on each client's model
of the defended training's last round (model/<dataset>/<run>/<name>/last_round/), written to
results/<dataset>/<run>/server_attacks/<name>.json and reported as "<attack>@<name>". The release-time defenses
(output noise, top-k, MemGuard, HAMP's output modification) leave the server the FL model's view. Under
DP-FedAvg the server is trusted: it receives each client's update before clipping and noise, so its view is
not protected by the client-level guarantee.
"""
import logging

import numpy as np
import torch

from data_partitioning import load_partition, tensors
from data_preprocessing import load_dataset
from defend.p2_stage import P2Files, starting_checkpoint
from FL_model_generation.fl_stage import load_model
from FL_model_generation.models import predict_logits
from other_attack_and_defend.metric_attacks import log_true_probability, logit_confidence
from other_attack_and_defend.reference_attacks import lira_offline, reference_path
from toolkit.checkpoints import save_checkpoint, save_json
from toolkit.run import Run
from toolkit.scoring import threshold_free_metrics

log = logging.getLogger(__name__)

ATTACKS = ("local_model", "local_model_loss", "p2_model", "p2_model_loss", "p2_difference", "round_difference")
DEFENSE_ATTACKS = ("local_model", "local_model_loss", "round_difference")


def output_path(run: Run):
    return run.results_dir / "server_attacks.json"


def input_files(run: Run, files: P2Files, p2_start: str, fl_rounds: int, clients: int, num_reference: int) -> list:
    """Every model the server attacks read: the last FedAvg round, the first P2 round, the references."""
    last = [run.fl_global_path(fl_rounds - 1)] if fl_rounds > 1 else []
    models = last + [run.fl_client_path(fl_rounds, client) for client in range(clients)]
    models += [files.client(1, client) for client in range(clients)]
    models += [run.fl_final_path] if p2_start == "global" else []
    return models + [reference_path(run, k) for k in range(num_reference)]


def _probabilities(model, features: torch.Tensor) -> np.ndarray:
    return predict_logits(model, features).softmax(1).double().numpy()


def _client_views(run: Run, num_reference: int):
    """Per client: (features and labels of its members followed by the evaluation non-members, which rows are
    members, the reference models' signal on them): what every server attack scores."""
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    references = [load_model(reference_path(run, k), run)[0] for k in range(num_reference)]
    outsiders = tensors(dataset, partition.eval_nonmembers)
    for rows in partition.clients:
        members = tensors(dataset, rows)
        features = torch.cat([members[0], outsiders[0]])
        labels = torch.cat([members[1], outsiders[1]])
        is_member = np.arange(len(labels)) < len(rows)
        reference_signal = np.stack([logit_confidence(_probabilities(m, features), labels) for m in references], 1)
        yield features, labels, is_member, reference_signal


def _over_clients(per_client: dict[str, list[dict]], label: str) -> dict:
    """Each attack's metrics: mean and std over the clients, and every client's."""
    result = {}
    for attack, values in per_client.items():
        if not values:
            continue
        metrics = values[0].keys()
        result[attack] = {**{metric: float(np.mean([v[metric] for v in values])) for metric in metrics},
                          "std_over_clients": {metric: float(np.std([v[metric] for v in values])) for metric in metrics},
                          "per_client": values}
        log.info("server attack %s%s: AUC %.4f ± %.4f over %d clients, TPR@1%%FPR %.4f", attack, label,
                 result[attack]["auc"], result[attack]["std_over_clients"]["auc"], len(values),
                 result[attack]["tpr_at_1pct_fpr"])
    return result


def attack_clients(run: Run, files: P2Files, p2_settings, fl_rounds: int, num_reference: int) -> dict:
    """Every server attack against every client; returns what server_attacks.json holds."""
    per_client = {attack: [] for attack in ATTACKS}
    for client, (features, labels, is_member, reference_signal) in enumerate(_client_views(run, num_reference)):
        local, _ = load_model(run.fl_client_path(fl_rounds, client), run)
        returned, _ = load_model(files.client(1, client), run)
        sent, _ = load_model(starting_checkpoint(run, p2_settings, fl_rounds, client), run)
        local_p, returned_p, sent_p = (_probabilities(m, features) for m in (local, returned, sent))
        scores = {
            "local_model": _lira(local_p, labels, reference_signal),
            "local_model_loss": log_true_probability(local_p, labels),
            "p2_model": _lira(returned_p, labels, reference_signal),
            "p2_model_loss": log_true_probability(returned_p, labels),
            "p2_difference": log_true_probability(sent_p, labels) - log_true_probability(returned_p, labels),
        }
        if fl_rounds > 1:
            before, _ = load_model(run.fl_global_path(fl_rounds - 1), run)
            scores["round_difference"] = (log_true_probability(local_p, labels)
                                          - log_true_probability(_probabilities(before, features), labels))
        for attack, values in scores.items():
            per_client[attack].append(threshold_free_metrics(values, is_member))
    return _over_clients(per_client, "")


def _lira(probabilities: np.ndarray, labels: torch.Tensor, reference_signal: np.ndarray) -> np.ndarray:
    """Offline LiRA: every reference model is OUT for every row here (none trained on members or
    evaluation rows)."""
    return lira_offline(logit_confidence(probabilities, labels), reference_signal,
                        np.ones_like(reference_signal, dtype=bool), fixed_variance=True)


def write(run: Run, files: P2Files, p2_settings, fl_rounds: int, num_reference: int) -> None:
    save_json(output_path(run), attack_clients(run, files, p2_settings, fl_rounds, num_reference))


# ---------------------------------------------------------------- the trained defenses' last round

def last_round_folder(run: Run, name: str):
    return run.model_dir / name / "last_round"


def last_round_paths(run: Run, name: str, clients: int) -> list:
    """The global model the last round started from, then every client's model of that round."""
    folder = last_round_folder(run, name)
    return [folder / "global_before.pt"] + [folder / f"client{client:03d}.pt" for client in range(clients)]


def save_last_round(run: Run, name: str, global_before: dict, client_states: list[dict], meta: dict) -> None:
    """What the server received in a defended training's last round."""
    paths = last_round_paths(run, name, len(client_states))
    save_checkpoint(paths[0], global_before, {**meta, "role": f"{name} global before the last round"})
    for client, (path, state) in enumerate(zip(paths[1:], client_states)):
        save_checkpoint(path, state, {**meta, "role": f"{name} client{client} last round"})


def defense_output_path(run: Run, name: str):
    return run.results_dir / "server_attacks" / f"{name}.json"


def attack_defense_clients(run: Run, name: str, num_reference: int) -> dict:
    """local_model, local_model_loss and round_difference against every client of the defended training `name`."""
    paths = last_round_paths(run, name, len(load_partition(run).clients))
    before, _ = load_model(paths[0], run)
    per_client = {attack: [] for attack in DEFENSE_ATTACKS}
    for client, (features, labels, is_member, reference_signal) in enumerate(_client_views(run, num_reference)):
        local_p = _probabilities(load_model(paths[1 + client], run)[0], features)
        scores = {"local_model": _lira(local_p, labels, reference_signal),
                  "local_model_loss": log_true_probability(local_p, labels),
                  "round_difference": (log_true_probability(local_p, labels)
                                       - log_true_probability(_probabilities(before, features), labels))}
        for attack, values in scores.items():
            per_client[attack].append(threshold_free_metrics(values, is_member))
    return _over_clients(per_client, f" on {name}")


def write_defense(run: Run, name: str, num_reference: int) -> None:
    save_json(defense_output_path(run, name), attack_defense_clients(run, name, num_reference))


def with_defenses(run: Run, server: dict | None, names: list[str]) -> dict | None:
    """The run's server attacks plus, as "<attack>@<name>", those on every defended training that has them."""
    from toolkit.checkpoints import load_json

    merged = dict(server or {})
    for name in names:
        path = defense_output_path(run, name)
        if path.is_file():
            merged.update({f"{attack}@{name}": result for attack, result in load_json(path).items()})
    return merged or None

