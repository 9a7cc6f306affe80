"""The cross-dataset table of results/README.md: cells, notes on unofficial data, and the text around it."""
import json

from reporting import overview


def metrics(auc: float, tpr: float) -> dict:
    return {"auc": auc, "tpr_at_1pct_fpr": tpr}


def write_summary(root, dataset: str, summary: dict) -> None:
    (root / dataset).mkdir(parents=True)
    (root / dataset / "summary.json").write_text(json.dumps({"dataset": dataset, **summary}))


SEEDS_2 = {"seed": [0, 1], "preset": "full", "raw_data": overview.OFFICIAL,
           "models": {"fl": {"train_acc": 0.9, "test_acc": 0.8}, "top1": {"train_acc": 0.9, "test_acc": 0.8}},
           "attacks": {"gradient": {"fl": metrics(0.61, 0.05)},
                       "lira": {"fl": metrics(0.65, 0.02), "top1": metrics(0.6, 0.08)}},
           "std": {"models": {"fl": {"test_acc": 0.01}, "top1": {"test_acc": 0.01}},
                   "attacks": {"gradient": {"fl": {"auc": 0.02, "tpr_at_1pct_fpr": 0.0}},
                               "lira": {"fl": {"auc": 0.03, "tpr_at_1pct_fpr": 0.01},
                                        "top1": {"auc": 0.0, "tpr_at_1pct_fpr": 0.0}}}}}
ONE_SEED_APPROXIMATE = {"seed": 0, "preset": "full", "raw_data": "NOT the official archive (MD5 differs)",
                        "models": {"p2": {"train_acc": 0.5, "test_acc": 0.4}},
                        "attacks": {"gradient": {"p2": metrics(0.55, 0.01)}, "shokri": {"p2": metrics(0.57, 0.0)}}}


def test_table_rows_take_the_strongest_attack_and_flag_unofficial_data(tmp_path):
    write_summary(tmp_path, "cifar10", ONE_SEED_APPROXIMATE)
    write_summary(tmp_path, "location", SEEDS_2)  # listed before cifar10: the paper's order, not the alphabet's
    write_summary(tmp_path, "mnist", {**SEEDS_2, "preset": "quick"})  # quick runs are not results
    lines = overview.table(overview.summaries(tmp_path)).splitlines()
    assert lines[2] == ("| location | 2 | fl | 0.800 ± 0.010 | 0.650 ± 0.030 (lira) | 0.050 ± 0.000 (gradient) "
                        "| 0.610 ± 0.020 / 0.050 ± 0.000 |")
    assert lines[3] == "| location | 2 | top1 | 0.800 ± 0.010 | 0.600 ± 0.000 (lira) | 0.080 ± 0.000 (lira) | – |"
    assert lines[4] == "| cifar10* | 1 | p2 | 0.400 | 0.570 (shokri) | 0.010 (gradient) | 0.550 / 0.010 |"
    assert lines[-1] == "cifar10*: raw data: NOT the official archive (MD5 differs)."
    assert not any("mnist" in line for line in lines)


def test_refresh_replaces_only_the_table_and_keeps_the_text_around_it(tmp_path):
    write_summary(tmp_path, "adult", SEEDS_2)
    readme = overview.refresh(tmp_path)
    assert readme.read_text().startswith("# Results\n\n" + overview.BEGIN)
    readme.write_text("intro\n\n" + overview.BEGIN + "\nold table\n" + overview.END + "\n\nclosing words\n")
    overview.refresh(tmp_path)
    text = readme.read_text()
    assert text.startswith("intro\n\n" + overview.BEGIN + "\n| dataset |") and text.endswith(overview.END + "\n\nclosing words\n")
    assert "old table" not in text and text.count(overview.BEGIN) == 1
    assert list(tmp_path.glob(".README.md.*")) == []  # written through a temporary file, nothing left behind


def test_text_without_markers_gets_the_table_appended():
    assert overview.with_table("notes\n", "T") == f"notes\n\n{overview.BEGIN}\nT\n{overview.END}\n"


def test_a_summary_lacking_keys_is_an_error_not_a_missing_row(tmp_path):
    import pytest

    from toolkit.errors import P2Error

    write_summary(tmp_path, "adult", SEEDS_2)
    write_summary(tmp_path, "location", {"seed": [0], "preset": "full"})  # models, attacks, raw_data lost
    with pytest.raises(P2Error, match=r"location/summary\.json lacks raw_data, models, attacks: rerun python main\.py "
                                      r"--dataset location"):
        overview.refresh(tmp_path)


def test_frontier_names_the_most_private_defense_within_each_budget(tmp_path):
    from reporting import frontier

    summary = {"seed": [0], "preset": "full", "raw_data": overview.OFFICIAL,
               "models": {"fl": {"test_acc": 0.80}, "p2": {"test_acc": 0.795}, "dp_eps8": {"test_acc": 0.77},
                          "top1": {"test_acc": 0.80}},
               "attacks": {"lira": {"fl": metrics(0.7, 0.10), "p2": metrics(0.68, 0.09), "dp_eps8": metrics(0.5, 0.01),
                                    "top1": metrics(0.69, 0.08)}}}
    write_summary(tmp_path, "toy", summary)
    sweep = {"points": [{"model": "p2_eps0.5_r5", "eps": 0.5, "rounds": 5, "test_acc": 0.79,
                         "strongest_tpr_at_1pct_fpr": 0.05}]}
    (tmp_path / "toy" / "p2_sweep.json").write_text(json.dumps(sweep))
    text = frontier.table(tmp_path)
    one, five = text.splitlines()[2:4]
    assert "| at most 1 point | p2 (EPS=0.5, ROUNDS=5): 0.050 at test acc 0.790 | p2 (EPS=0.5, ROUNDS=5)" in one
    assert "| at most 5 points | dp_eps8: 0.010 at test acc 0.770 | p2 (EPS=0.5, ROUNDS=5): 0.050" in five
    assert five.endswith("| 0.100 at 0.800 |")
