"""FedAvg: the sample-weighted mean, and deterministic local training."""
import pytest
import torch

from FL_model_generation.fedavg import fedavg, federated_training
from FL_model_generation.training import FLSettings, sgd_client_update
from toolkit.errors import P2Error

ARCH = {"kind": "mlp", "sizes": [3, 5, 2]}


def test_fedavg_is_the_sample_weighted_mean():
    states = [{"w": torch.tensor([1.0, 2.0]), "steps": torch.tensor(7)},
              {"w": torch.tensor([3.0, 6.0]), "steps": torch.tensor(7)}]
    averaged = fedavg(states, [1, 3])
    assert torch.allclose(averaged["w"], torch.tensor([2.5, 5.0]))
    assert averaged["steps"].item() == 7


def test_client_update_is_deterministic_under_its_generator_and_changes_weights():
    settings = FLSettings(architecture=ARCH, rounds=1, local_epochs=2, lr=0.1, lr_decay=1.0, momentum=0.0, batch_size=4)
    state = federated_training([(torch.randn(8, 3), torch.randint(0, 2, (8,)))], settings, seed=0)
    features, labels = torch.randn(20, 3), torch.randint(0, 2, (20,))
    first = sgd_client_update(state, features, labels, settings, torch.Generator().manual_seed(5))
    second = sgd_client_update(state, features, labels, settings, torch.Generator().manual_seed(5))
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not torch.equal(first["fc1.weight"], state["fc1.weight"])


def test_federated_training_with_one_client_equals_its_local_training():
    settings = FLSettings(architecture=ARCH, rounds=2, local_epochs=1, lr=0.1, lr_decay=1.0, momentum=0.0, batch_size=4)
    data = (torch.randn(12, 3), torch.randint(0, 2, (12,)))
    seen = []
    final = federated_training([data, data], settings, seed=3, on_round=lambda r, g, c: seen.append((r, g, c)))
    assert [r for r, _, _ in seen] == [1, 2]
    for _, global_state, (a, b) in seen:  # identical clients with different shuffles: average of the two
        assert torch.allclose(global_state["fc1.weight"], (a["fc1.weight"] + b["fc1.weight"]) / 2)
    assert torch.equal(final["fc1.weight"], seen[-1][1]["fc1.weight"])


@pytest.mark.parametrize("field", ["rounds", "local_epochs", "batch_size"])
def test_impossible_fl_constants_are_rejected(field):
    values = dict(architecture=ARCH, rounds=1, local_epochs=1, lr=0.1, lr_decay=1.0, momentum=0.0, batch_size=4)
    values[field] = 0
    with pytest.raises(P2Error, match=field.upper()):
        FLSettings(**values)
