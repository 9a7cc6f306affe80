"""Vectorised per-example gradients equal a loop that zeroes the gradient for every example."""
import torch
from torch import nn

from FL_model_generation.models import build_model
from menif_attack import per_example_gradients as module
from menif_attack.per_example_gradients import per_example_gradients


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
