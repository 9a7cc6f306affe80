"""main.py --quick end to end on synthetic Adult files: outputs, summary keys, determinism, skipping."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.synthetic_adult import write_synthetic_adult

REPO = Path(__file__).resolve().parents[1]
METRICS = {"auc", "balanced_acc", "advantage", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"}


def environment(root: Path, name: str) -> dict:
    env = dict(os.environ, P2_DATA_DIR=str(root / "data"), P2_CACHE_DIR=str(root / "cache"),
               P2_MODEL_DIR=str(root / name / "model"), P2_RESULTS_DIR=str(root / name / "results"),
               P2_VERIFY_CHECKSUMS="0", TQDM_DISABLE="1")
    return env


def run_main(root: Path, name: str, *flags: str) -> subprocess.CompletedProcess:
    """Run main.py from an unrelated working directory, as a user would."""
    return subprocess.run([sys.executable, str(REPO / "main.py"), "--quick", *flags], cwd=root,
                          env=environment(root, name), capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    write_synthetic_adult(root / "data")
    result = run_main(root, "a")
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result


def test_every_stage_writes_its_files(first_run):
    root, _ = first_run
    model = root / "a" / "model" / "adult" / "quick_seed0"
    expected = ["partition.npz", "fl/round001/global.pt", "fl/round002/client002.pt", "fl/final.pt",
                "p2/client000.pt", "p2/client002.pt", "p2/global.pt", "dp_eps1/final.pt", "hamp/final.pt",
                "memguard/defense_classifier.pt", "relaxloss/final.pt", "advreg/final.pt",
                "dp_fedavg_eps100/final.pt"]
    assert [name for name in expected if not (model / name).is_file()] == []
    scores = root / "a" / "results" / "adult" / "quick_seed0" / "scores"
    assert (scores / "gradient__fl.npz").is_file() and (scores / "gradient__p2.npz").is_file()


def test_summary_has_the_documented_keys(first_run):
    root, result = first_run
    summary = json.loads((root / "a" / "results" / "adult" / "quick_seed0" / "summary.json").read_text())
    assert summary["dataset"] == "adult" and summary["seed"] == 0 and summary["preset"] == "quick"
    assert summary["raw_data"] == "unverified (P2_VERIFY_CHECKSUMS=0)"
    assert {"fl", "p2"} <= set(summary["models"])
    for utility in summary["models"].values():
        assert 0 <= utility["train_acc"] <= 1 and 0 <= utility["test_acc"] <= 1
    for target in ("fl", "p2"):
        assert set(summary["attacks"]["gradient"][target]) == METRICS
    assert {"fl", "p2", "gradient"} <= set(summary["settings"])
    assert set(summary["models"]["p2"]["diagnostics"]["members"]) == {"true_prob", "top_prob", "labels_kept",
                                                                      "target_distance"}
    trained = ("dp_eps1", "dp_eps8", "hamp", "relaxloss", "advreg", "dp_fedavg_eps100")  # what the server sees changes
    assert set(summary["server_attacks"]) == {"local_model", "local_model_loss", "p2_model", "p2_model_loss",
                                              "p2_difference", "round_difference"} | {
        f"{attack}@{name}" for attack in ("local_model", "local_model_loss", "round_difference") for name in trained}
    for attack in summary["server_attacks"].values():
        assert len(attack["per_client"]) == 3 and {"auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"} <= set(attack)
    assert summary["timings"]["FedAvg"] > 0 and summary["threads"] >= 1 and summary["engine"] == "inprocess"
    assert "AUC / TPR at 1% FPR" in result.stdout and "\np2 " in result.stdout
    # a quick run never touches the full run's dataset-level summary
    assert not (root / "a" / "results" / "adult" / "summary.json").exists()


def test_every_attack_scores_every_model_it_applies_to(first_run):
    root, _ = first_run
    summary = json.loads((root / "a" / "results" / "adult" / "quick_seed0" / "summary.json").read_text())
    plain = {"gradient", "shokri", "ml_leaks", "loss", "confidence", "entropy", "modified_entropy", "gap", "lira", "rmia"}
    aware = {f"{attack}_p2aware" for attack in plain - {"gradient", "gap"}}
    assert set(summary["attacks"]) == plain | aware
    # every defense under its own name, in the documented order (the quick preset: one model per defense, DP-SGD
    # at the smallest and the largest eps, DP-FedAvg at the largest)
    assert list(summary["models"]) == ["fl", "p2", "output_noise", "top1", "dp_eps1", "dp_eps8", "hamp", "memguard",
                                       "relaxloss", "advreg", "dp_fedavg_eps100"]
    assert summary["models"]["dp_eps1"]["dp_level"] == "example" and "eps" in summary["models"]["dp_eps1"]
    assert summary["models"]["dp_fedavg_eps100"]["dp_level"] == "client"
    assert summary["models"]["dp_fedavg_eps100"]["eps"] == pytest.approx(100, rel=0.02)
    assert summary["models"]["memguard"]["test_acc"] == summary["models"]["fl"]["test_acc"]  # labels kept
    for attack, per_model in summary["attacks"].items():
        if attack in aware:  # attackers who know P2 attack the P2 model
            assert set(per_model) == {"p2"}, attack
            continue
        expected = set(summary["models"]) - ({"top1", "memguard"} if attack == "gradient" else set())
        assert set(per_model) == expected, attack
    search = json.loads((root / "a" / "results" / "adult" / "quick_seed0" / "dp_tuning" / "dp_eps8.json").read_text())
    assert len(search["candidates"]) == 2 and search["chosen"]["candidate"] in [c["candidate"] for c in
                                                                                 search["candidates"]]
    plots = root / "a" / "results" / "adult" / "quick_seed0" / "plots"
    assert (plots / "roc_gradient.png").is_file() and (plots / "roc_strongest.png").is_file()
    assert (plots / "diagnostics.png").is_file()


def test_up_to_date_stages_are_skipped(first_run):
    root, _ = first_run
    final = root / "a" / "model" / "adult" / "quick_seed0" / "fl" / "final.pt"
    figure = root / "a" / "results" / "adult" / "quick_seed0" / "plots" / "roc_strongest.png"
    before = final.stat().st_mtime_ns, figure.stat().st_mtime_ns
    again = run_main(root, "a")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "FedAvg: up to date, skipped" in again.stderr
    assert (final.stat().st_mtime_ns, figure.stat().st_mtime_ns) == before  # same numbers: figures not redrawn


def cli_error(tmp_path: Path, *argv: str, **env_changes: str) -> str:
    env = dict(environment(tmp_path, "x"), **env_changes)
    result = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and "Traceback" not in result.stderr
    return last_line


def test_missing_data_gives_one_clear_error(tmp_path):
    message = cli_error(tmp_path, str(REPO / "data_preprocessing.py"), "--dataset", "femnist")
    assert "femnist" in message and "leaf" in message.lower()


def test_corrupt_data_file_is_named(tmp_path):
    write_synthetic_adult(tmp_path / "data")
    message = cli_error(tmp_path, str(REPO / "data_partitioning.py"), "--quick", P2_VERIFY_CHECKSUMS="1")
    assert "adult.data" in message and "MD5" in message


def test_stage_out_of_order_names_the_missing_file(tmp_path):
    write_synthetic_adult(tmp_path / "data")
    message = cli_error(tmp_path, str(REPO / "defend" / "defend_adult.py"), "--quick")
    assert "fl/final.pt" in message and "run python FL_model_generation/FL_model_for_adult.py --seed 0 --quick" in message


def test_a_replaced_checkpoint_is_never_built_on(first_run, tmp_path):
    import torch

    from toolkit.checkpoints import load_checkpoint, save_checkpoint

    root, _ = first_run
    model = root / "a" / "model"
    copy = tmp_path / "model"
    subprocess.run(["cp", "-r", str(model), str(copy)], check=True)
    final = copy / "adult" / "quick_seed0" / "fl" / "final.pt"
    state, meta = load_checkpoint(final)
    state["fc1.weight"] = torch.zeros(7, 14)
    save_checkpoint(final, state, meta)
    env = {"P2_MODEL_DIR": str(copy), "P2_DATA_DIR": str(root / "data"), "P2_CACHE_DIR": str(root / "cache")}
    message = cli_error(tmp_path, str(REPO / "defend" / "defend_adult.py"), "--quick", "--client", "0", **env)
    assert "fl/final.pt" in message and "was changed since" in message and "FL_model_for_adult.py" in message
