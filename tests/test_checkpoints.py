"""Checkpoints: atomic writes, clear errors for corrupt or mismatched files."""
import pytest
import torch

from FL_model_generation.models import build_model, load_state
from toolkit.checkpoints import load_checkpoint, save_checkpoint
from toolkit.errors import P2Error


def test_round_trip_keeps_weights_and_meta_and_leaves_no_temp_file(tmp_path):
    model = build_model({"kind": "mlp", "sizes": [3, 4, 2]})
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, model.state_dict(), {"dataset": "adult", "architecture": {"kind": "mlp"}, "round": 2})
    state, meta = load_checkpoint(path, expect={"dataset": "adult", "round": 2})
    assert all(torch.equal(state[name], value) for name, value in model.state_dict().items())
    assert meta["round"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]


def test_mismatched_meta_names_the_file_and_the_value(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, {}, {"dataset": "mnist"})
    with pytest.raises(P2Error, match=r"model\.pt has dataset='mnist'.*expects dataset='adult'"):
        load_checkpoint(path, expect={"dataset": "adult"})


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(P2Error, match="cannot be read"):
        load_checkpoint(path)


def test_missing_checkpoint_says_which_stage_to_run(tmp_path):
    with pytest.raises(P2Error, match="run the stage"):
        load_checkpoint(tmp_path / "absent.pt")


def test_weights_of_another_architecture_are_rejected_clearly():
    small = build_model({"kind": "mlp", "sizes": [3, 4, 2]})
    with pytest.raises(P2Error, match="fl/final.pt does not fit the expected architecture"):
        load_state(build_model({"kind": "mlp", "sizes": [3, 8, 2]}), small.state_dict(), "fl/final.pt")


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"w": torch.ones(2)}, {"round": 1})

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"w": torch.zeros(2)}, {"round": 2})
    state, meta = load_checkpoint(path)
    assert meta["round"] == 1 and torch.equal(state["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
