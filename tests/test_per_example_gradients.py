"""Vectorised per-example gradients, materialised or as the factors of a Linear weight's gradient, equal a
loop that zeroes the gradient for every example."""
import pytest
import torch
from torch import nn

from FL_model_generation.models import build_model
from menif_attack import per_example_gradients as module
from menif_attack.per_example_gradients import (couples_examples, linear_factors, linear_weight_names,
                                                per_example_gradients)
from menif_attack.whitebox_attack import RankOne, attack_features
from toolkit.errors import P2Error


def loop_gradients(model, layers, features, labels):
    named = dict(model.named_parameters())
    gradients, losses = {name: [] for name in layers}, []
    for x, y in zip(features, labels):
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(x[None]), y[None])
        loss.backward()
        losses.append(loss.detach())
        for name in layers:
            gradients[name].append(named[name].grad.clone())
    return {name: torch.stack(values) for name, values in gradients.items()}, torch.stack(losses)


def test_mlp_gradients_match_a_loop_in_several_chunks(monkeypatch):
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [7, 12, 9, 4]}).eval()
    features, labels = torch.randn(25, 7), torch.randint(0, 4, (25,))
    layers = ["fc1.weight", "fc2.weight", "fc3.bias"]
    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 2000)  # forces several chunks
    fast, fast_losses = per_example_gradients(model, layers, features, labels)
    slow, slow_losses = loop_gradients(model, layers, features, labels)
    assert torch.allclose(fast_losses, slow_losses, atol=1e-6)
    for name in layers:
        assert fast[name].shape == slow[name].shape
        assert torch.allclose(fast[name], slow[name], atol=1e-6)


def test_conv_gradients_match_a_loop():
    torch.manual_seed(0)
    model = build_model({"kind": "lenet", "in_channels": 3, "num_classes": 10}).eval()
    features, labels = torch.randn(5, 3, 32, 32), torch.randint(0, 10, (5,))
    layers = ["conv1.weight", "fc3.weight"]
    fast, _ = per_example_gradients(model, layers, features, labels)
    slow, _ = loop_gradients(model, layers, features, labels)
    for name in layers:
        assert torch.allclose(fast[name], slow[name], atol=1e-5)


def test_gradients_are_not_accumulated_across_examples():
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [3, 4, 2]}).eval()
    features, labels = torch.randn(2, 3), torch.tensor([0, 1])
    both, _ = per_example_gradients(model, ["fc1.weight"], features, labels)
    second, _ = per_example_gradients(model, ["fc1.weight"], features[1:], labels[1:])
    assert torch.allclose(both["fc1.weight"][1], second["fc1.weight"][0], atol=1e-7)


def test_linear_factors_give_the_gradients_of_a_loop_in_several_chunks(monkeypatch):
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [7, 12, 9, 4]}).eval()
    features, labels = torch.randn(25, 7), torch.randint(0, 4, (25,))
    layers = ["fc1.weight", "fc2.weight", "fc3.weight"]
    monkeypatch.setattr(module, "FACTOR_CHUNK", 10)  # forces several chunks
    factors, losses = linear_factors(model, layers, features, labels)
    slow, slow_losses = loop_gradients(model, layers, features, labels)
    assert torch.allclose(losses, slow_losses, atol=1e-6)
    for name in layers:
        errors, inputs = factors[name]
        assert torch.allclose(errors[:, :, None] * inputs[:, None, :], slow[name], atol=1e-6)


def test_only_weights_of_plain_linear_layers_are_factorisation_candidates():
    model = build_model({"kind": "lenet", "in_channels": 3, "num_classes": 10})
    assert linear_weight_names(model, ["conv1.weight", "fc1.weight", "fc2.bias", "fc3.weight"]) == \
        ["fc1.weight", "fc3.weight"]
    model.add_module("norm", nn.BatchNorm1d(10, track_running_stats=False))  # batch statistics in eval mode
    assert couples_examples(model) and linear_weight_names(model, ["fc1.weight"]) == []
    with pytest.raises(P2Error, match="batch statistics"):
        linear_factors(model, ["fc1.weight"], torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    with pytest.raises(P2Error, match="not the weight of one nn.Linear"):
        linear_factors(build_model({"kind": "lenet"}), ["conv1.weight"], torch.randn(2, 3, 32, 32),
                       torch.tensor([0, 1]))


class Reused(nn.Module):
    """`shared` is applied twice, and `tokens` to a (N, 3, 4) input: neither gradient is one outer product."""

    def __init__(self):
        super().__init__()
        self.shared, self.tokens, self.out = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.tokens(self.shared(self.shared(x)).unsqueeze(1).expand(-1, 3, -1)).sum(1))


def test_a_linear_layer_called_twice_or_on_a_sequence_is_left_to_the_materialised_path():
    torch.manual_seed(0)
    model = Reused().eval()
    features, labels = torch.randn(6, 4), torch.randint(0, 2, (6,))
    layers = ["shared.weight", "tokens.weight", "out.weight"]
    factors, losses = linear_factors(model, layers, features, labels)
    assert list(factors) == ["out.weight"]
    slow, slow_losses = loop_gradients(model, layers, features, labels)
    assert torch.allclose(losses, slow_losses, atol=1e-6)
    features_ = attack_features(model, tuple(layers), features, labels, 2)
    assert [type(g).__name__ for g in features_.gradients] == ["Tensor", "Tensor", "RankOne"]
    for name, gradients in zip(layers, features_.gradients):
        dense = gradients.dense() if isinstance(gradients, RankOne) else gradients
        assert torch.allclose(dense, slow[name], atol=1e-6)
