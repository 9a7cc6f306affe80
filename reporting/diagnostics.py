"""What each released model shows on the evaluation rows, members and non-members apart: the mean
probability of the true label, the mean top probability, the share of labels it keeps from the FL model,
and for P2 models the mean distance of the released scores to P2's soft targets.

These are checks of the model that is released (the average of the clients' models), not of a client's
own P2 model: averaging can undo most of what each client did. The soft targets of the evaluation rows are
made as P2 makes them, from the FL model with the run's P2 constants (non-members get the targets they
would have had).
"""
import numpy as np
import torch

from data_partitioning import load_partition, tensors
from data_preprocessing import load_dataset
from defend.p2_protection import P2Settings, client_targets
from FL_model_generation.fl_stage import load_model
from other_attack_and_defend.targets import Target
from toolkit.run import Run

SIDES = ("members", "nonmembers")


def evaluation_data(run: Run) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    dataset, partition = load_dataset(run.dataset, run.data_dir), load_partition(run)
    return {"members": tensors(dataset, partition.eval_members),
            "nonmembers": tensors(dataset, partition.eval_nonmembers)}


def p2_targets(run: Run, settings: P2Settings, rows: dict) -> dict[str, torch.Tensor]:
    """P2's soft targets for the evaluation rows, made from the FL model."""
    fl_model, _ = load_model(run.fl_final_path, run)
    return {side: client_targets(fl_model, features, labels, settings)["targets"]
            for side, (features, labels) in rows.items()}


def diagnostics(run: Run, target: Target, rows: dict, fl_labels: dict[str, torch.Tensor],
                targets: dict[str, torch.Tensor] | None) -> dict:
    """{side: {true_prob, top_prob, labels_kept[, target_distance]}} for one released model."""
    model, _ = load_model(target.checkpoint, run)
    return {side: side_diagnostics(target.posteriors(model, features), labels, fl_labels[side],
                                   None if targets is None else targets[side])
            for side, (features, labels) in rows.items()}


def side_diagnostics(released: torch.Tensor, labels: torch.Tensor, fl_labels: torch.Tensor,
                     targets: torch.Tensor | None = None) -> dict:
    """{true_prob, top_prob, labels_kept[, target_distance]} of released posteriors on one side's rows:
    means over the rows; labels kept against the FL model's labels `fl_labels`."""
    released = released.double()
    values = {"true_prob": float(released[torch.arange(len(labels)), labels].mean()),
              "top_prob": float(released.max(1).values.mean()),
              "labels_kept": float((released.argmax(1) == fl_labels).double().mean())}
    if targets is not None:
        values["target_distance"] = float((released - targets.double()).norm(dim=1).mean())
    return values


def all_diagnostics(run: Run, targets: list[Target], p2_settings: P2Settings, p2_models: set[str]) -> dict:
    """Diagnostics of every target; the P2 models (names in `p2_models`) also against the soft targets."""
    rows = evaluation_data(run)
    fl_model, _ = load_model(run.fl_final_path, run)
    fl_labels = {side: Target("fl", run.fl_final_path).posteriors(fl_model, features).argmax(1)
                 for side, (features, _) in rows.items()}
    soft = p2_targets(run, p2_settings, rows)
    return {target.name: diagnostics(run, target, rows, fl_labels, soft if target.name in p2_models else None)
            for target in targets}


def describe(name: str, values: dict) -> str:
    """One log line: members / non-members per quantity."""
    parts = [f"{key} {values['members'][key]:.3f} / {values['nonmembers'][key]:.3f}" for key in values["members"]]
    return f"{name} (members / non-members): " + ", ".join(parts)


def write_plot(summary: dict, path) -> None:
    """Members' and non-members' mean true-label and top probability per model, side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from toolkit.checkpoints import save_figure

    models = [name for name, values in summary["models"].items() if "diagnostics" in values]
    if not models:
        return
    figure = Figure(figsize=(max(6.0, 1.3 * len(models) + 2), 4.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    positions = np.arange(len(models))
    for axis, key, title in zip(axes, ("true_prob", "top_prob"), ("mean probability of the true label",
                                                                  "mean top probability")):
        for offset, side, colour in ((-0.2, "members", "tab:red"), (0.2, "nonmembers", "tab:blue")):
            values = [summary["models"][model]["diagnostics"][side][key] for model in models]
            axis.bar(positions + offset, values, width=0.4, color=colour, alpha=0.7,
                     label="members" if side == "members" else "non-members")
        axis.set_xticks(positions, models, rotation=30, ha="right", fontsize=8)
        axis.set_ylim(0, 1)
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{summary['dataset']}: released models on the evaluation rows (the gap is what attacks read)",
                    fontsize=10)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.28, top=0.85, wspace=0.25)
    save_figure(figure, path)
