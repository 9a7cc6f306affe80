"""The long-form table of a dataset's results (results/<dataset>/metrics.csv): one row per dataset, seed,
model, attack, metric and value, for analysis with the usual tools. It is the one source of the
combined summary, the trade-off plot and the cross-dataset table.

What the rows hold:
- a model's utility: attack "utility" (metric train_acc, test_acc, eps, ...);
- what a released model shows (reporting/diagnostics.py): attack "diagnostics", metric "<side>.<quantity>";
- an attack's metrics against a model: attack = its name;
- the FL server's attacks, per client: model "client<NNN>", attack "server:<name>".
"""
import numpy as np
import pandas as pd

COLUMNS = ["dataset", "seed", "model", "attack", "metric", "value"]
UTILITY, SERVER = "utility", "server:"
MODEL_SECTIONS = ("diagnostics",)


def _leaves(tree: dict, prefix: tuple = ()):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + (key,))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield prefix + (key,), value


def long_form(summary: dict) -> pd.DataFrame:
    """The rows of one run's summary."""
    dataset, seed = summary["dataset"], summary["seed"]
    rows = []
    for model, values in summary["models"].items():
        for path, value in _leaves(values):
            attack, metric = (UTILITY, path[0]) if len(path) == 1 else (path[0], ".".join(path[1:]))
            rows.append((dataset, seed, model, attack, metric, value))
    for attack, per_model in summary["attacks"].items():
        for model, values in per_model.items():
            rows += [(dataset, seed, model, attack, metric, value) for metric, value in values.items()]
    for attack, result in summary.get("server_attacks", {}).items():
        for client, values in enumerate(result["per_client"]):
            rows += [(dataset, seed, f"client{client:03d}", SERVER + attack, metric, value)
                     for metric, value in values.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order (seed, then the order attacks, models and metrics first appear), so the file is
    the same whenever the numbers are."""
    frame = frame.astype({"seed": int, "value": float})
    order = {column: {name: i for i, name in enumerate(dict.fromkeys(frame[column]))}
             for column in ("model", "attack", "metric")}
    keys = frame[["model", "attack", "metric"]].apply(lambda column: column.map(order[column.name]))
    return frame.assign(_m=keys["model"], _a=keys["attack"], _k=keys["metric"]).sort_values(
        ["seed", "_a", "_m", "_k"], kind="stable").drop(columns=["_m", "_a", "_k"]).reset_index(drop=True)


def save(frame: pd.DataFrame, path) -> None:
    from toolkit.checkpoints import save_text

    save_text(path, tidy(frame).to_csv(index=False, lineterminator="\n"))


def load(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"dataset": str, "model": str, "attack": str, "metric": str})


def _put(tree: dict, keys: list[str], value) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def combine(frame: pd.DataFrame) -> dict:
    """{"models", "attacks", "server_attacks", "std"}: means over seeds (and for the server's attacks over
    clients too) with the standard deviations over seeds (ddof 0), nested as in a run's summary."""
    combined = {"models": {}, "attacks": {}}
    spread = {"models": {}, "attacks": {}}
    per_model = frame[~frame["attack"].str.startswith(SERVER)]
    for (model, attack, metric), values in per_model.groupby(["model", "attack", "metric"], sort=False)["value"]:
        mean, std = float(np.mean(values)), float(np.std(values))
        if attack == UTILITY:
            keys, section = [model, metric], "models"
        elif attack in MODEL_SECTIONS:
            keys, section = [model, attack, *metric.split(".")], "models"
        else:
            keys, section = [attack, model, metric], "attacks"
        _put(combined[section], keys, mean)
        _put(spread[section], keys, std)
    server = frame[frame["attack"].str.startswith(SERVER)]
    if len(server):
        combined["server_attacks"], spread["server_attacks"] = {}, {}
        for attack, rows in server.groupby("attack", sort=False):
            name = attack[len(SERVER):]
            means = rows.groupby(["seed", "metric"], sort=False)["value"].mean().unstack()   # per seed, over clients
            clients = rows.groupby(["seed", "metric"], sort=False)["value"].std(ddof=0).unstack()
            per_client = rows.groupby(["model", "metric"], sort=False)["value"].mean().unstack()
            combined["server_attacks"][name] = {
                **{metric: float(means[metric].mean()) for metric in means.columns},
                "std_over_clients": {metric: float(clients[metric].mean()) for metric in clients.columns},
                "per_client": [{metric: float(per_client.loc[model, metric]) for metric in per_client.columns}
                               for model in per_client.index]}
            spread["server_attacks"][name] = {metric: float(np.std(means[metric])) for metric in means.columns}
    return {**combined, "std": spread}
