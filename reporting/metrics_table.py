"""The long-form table of a dataset's results (results/<dataset>/metrics.csv): one row per dataset, seed,
model, attack, metric and value, for analysis with the usual tools. It is the one source of the
combined summary, the trade-off plot and the cross-dataset table. A model's utility has attack
"utility"; everything else is an attack's metric against that model.
"""
import numpy as np
import pandas as pd

COLUMNS = ["dataset", "seed", "model", "attack", "metric", "value"]
UTILITY = "utility"


def long_form(summary: dict) -> pd.DataFrame:
    """The rows of one run's summary."""
    rows = [(summary["dataset"], summary["seed"], model, UTILITY, metric, value)
            for model, values in summary["models"].items() for metric, value in values.items()
            if isinstance(value, (int, float))]
    rows += [(summary["dataset"], summary["seed"], model, attack, metric, value)
             for attack, per_model in summary["attacks"].items() for model, values in per_model.items()
             for metric, value in values.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order (seed, then the order models and attacks first appear), so the file is
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


def combine(frame: pd.DataFrame) -> dict:
    """{"models": ..., "attacks": ..., "std": ...}: means over seeds and their standard deviations (ddof 0),
    nested as in a run's summary."""
    combined, spread = {"models": {}, "attacks": {}}, {"models": {}, "attacks": {}}
    grouped = frame.groupby(["model", "attack", "metric"], sort=False)["value"]
    for (model, attack, metric), values in grouped:
        mean, std = float(np.mean(values)), float(np.std(values))
        if attack == UTILITY:
            combined["models"].setdefault(model, {})[metric] = mean
            spread["models"].setdefault(model, {})[metric] = std
        else:
            combined["attacks"].setdefault(attack, {}).setdefault(model, {})[metric] = mean
            spread["attacks"].setdefault(attack, {}).setdefault(model, {})[metric] = std
    return {**combined, "std": spread}
