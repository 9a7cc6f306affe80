"""Invariants of the P2 algorithm: soft targets, poison labels, fine-tuning, settings."""
import pytest
import torch
from torch import nn

from defend.p2_protection import fine_tune, poison_labels, protect, soft_targets, split_frozen_prefix
from FL_model_generation.models import build_model
from tests.helpers import script_settings
from toolkit.errors import P2Error


def random_probs(n: int, classes: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, classes, generator=generator) * 3).softmax(1)


@pytest.mark.parametrize("classes", [2, 3, 10])
@pytest.mark.parametrize("eps", [0.01, 0.1, 0.5, 1.0])
def test_soft_targets_keep_argmax_respect_eps_and_lambda_is_maximal(classes, eps):
    probs = random_probs(200, classes, seed=classes)
    poison = torch.randint(0, classes, (200,), generator=torch.Generator().manual_seed(1))
    targets, lambdas = soft_targets(probs, poison, eps)
    assert torch.equal(targets.argmax(1), probs.argmax(1))
    assert ((probs.max(1).values - targets.max(1).values).abs() <= eps + 1e-6).all()
    assert torch.allclose(targets.sum(1), torch.ones(200), atol=1e-6)
    grid = torch.linspace(0, 1, 2001)
    for i in range(len(probs)):
        candidates = (1 - grid).unsqueeze(1) * probs[i]
        candidates[:, poison[i]] += grid
        valid = (candidates.argmax(1) == probs[i].argmax()) & \
                ((probs[i].max() - candidates.max(1).values).abs() <= eps)
        best_on_grid = grid[valid].max()
        assert lambdas[i] >= best_on_grid - 1e-4, (i, lambdas[i].item(), best_on_grid.item())
        assert lambdas[i] <= 1


def test_soft_target_reaches_one_hot_when_allowed():
    probs = torch.tensor([[0.95, 0.05]])
    targets, lambdas = soft_targets(probs, torch.tensor([0]), eps=0.1)
    assert lambdas.item() == pytest.approx(1.0)
    assert torch.allclose(targets, torch.tensor([[1.0, 0.0]]))


def brute_force_poison_labels(model: nn.Module, weight_name: str, features, labels) -> torch.Tensor:
    weight = dict(model.named_parameters())[weight_name]
    chosen = []
    for x, y in zip(features, labels):
        units = []
        for label in range(model(x[None]).shape[1]):
            model.zero_grad()
            nn.functional.cross_entropy(model(x[None]), torch.tensor([label])).backward()
            units.append(weight.grad.flatten() / weight.grad.norm())
        distances = [((u - units[y]) ** 2).sum().item() if j != y else -1.0 for j, u in enumerate(units)]
        chosen.append(max(range(len(distances)), key=distances.__getitem__))
    return torch.tensor(chosen)


@pytest.mark.parametrize("weight_name", ["fc1.weight", "fc2.weight"])
def test_poison_labels_match_a_brute_force_loop(weight_name):
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [6, 16, 5]})
    features, labels = torch.randn(40, 6), torch.randint(0, 5, (40,))
    expected = brute_force_poison_labels(model, weight_name, features, labels)
    assert torch.equal(poison_labels(model, weight_name, features, labels), expected)


def test_binary_poison_label_is_the_other_class():
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [4, 8, 2]})
    labels = torch.randint(0, 2, (30,))
    assert torch.equal(poison_labels(model, "fc1.weight", torch.randn(30, 4), labels), 1 - labels)


def test_poison_labels_on_a_convolution_weight():
    torch.manual_seed(0)
    model = build_model({"kind": "lenet", "in_channels": 1, "num_classes": 4, "image_size": 28})
    features, labels = torch.randn(6, 1, 28, 28), torch.randint(0, 4, (6,))
    expected = brute_force_poison_labels(model, "conv1.weight", features, labels)
    assert torch.equal(poison_labels(model, "conv1.weight", features, labels), expected)


@pytest.mark.parametrize("eps", [0.0, -0.1, 1.5])
def test_eps_outside_unit_interval_is_rejected(eps):
    with pytest.raises(P2Error, match="EPS"):
        script_settings("p2", eps=eps)


def test_unknown_poison_weight_names_the_valid_choices():
    model = build_model({"kind": "mlp", "sizes": [4, 8, 2]})
    with pytest.raises(P2Error, match="fc1.weight"):
        poison_labels(model, "conv1.weight", torch.randn(3, 4), torch.zeros(3, dtype=torch.long))


def test_fine_tune_changes_only_trainable_layers():
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [4, 8, 8, 3]})
    before = {name: p.clone() for name, p in model.named_parameters()}
    features = torch.randn(50, 4)
    targets = torch.full((50, 3), 1 / 3)
    fine_tune(model, features, targets, script_settings("p2", epochs=3, lr=1e-2, trainable=("fc3",)), torch.Generator())
    for name, parameter in model.named_parameters():
        changed = not torch.equal(before[name], parameter)
        assert changed == name.startswith("fc3"), name


def test_fine_tune_with_frozen_convolutions_matches_the_plain_loop():
    """The frozen convolutions run once; the result must equal training the whole model every step."""
    architecture = {"kind": "cnn", "in_channels": 1, "num_classes": 4, "image_size": 12, "channels": [3, 5],
                    "hidden": [8], "kernel_size": 3, "padding": 1}
    torch.manual_seed(0)
    model = build_model(architecture)
    reference = build_model(architecture)
    reference.load_state_dict(model.state_dict())
    features = torch.rand(70, 1, 12, 12)
    targets = torch.softmax(torch.randn(70, 4), 1)
    settings = script_settings("p2", epochs=4, lr=1e-2, batch_size=16, trainable=("fc",))
    fine_tune(model, features, targets, settings, torch.Generator().manual_seed(3))

    trainable = [p for name, p in reference.named_parameters() if name.startswith("fc")]
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    generator = torch.Generator().manual_seed(3)
    for _ in range(settings.epochs):
        for batch in torch.randperm(70, generator=generator).split(16):
            optimizer.zero_grad()
            (reference(features[batch]).softmax(1) - targets[batch]).norm(dim=1).sum().backward()
            optimizer.step()
    for (name, tuned), expected in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(tuned, expected, atol=1e-5), name
    assert all(p.requires_grad for p in model.parameters())
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("fc"))
    tail, inputs = split_frozen_prefix(model, features)
    assert tail[0] is model.fc1 and inputs.shape == (70, 5 * 3 * 3)  # the cached path was the one tested


def test_frozen_prefix_is_not_cached_through_dropout():
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    features = torch.randn(5, 4)
    tail, inputs = split_frozen_prefix(model, features)
    assert tail is model and inputs is features


def test_protect_moves_outputs_toward_targets_and_keeps_labels():
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [5, 32, 3]})
    features = torch.randn(300, 5)
    labels = features[:, :3].argmax(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(features), labels).backward()
        optimizer.step()
    stats = protect(model, features, labels, script_settings("p2", eps=0.1, epochs=30, lr=1e-3, batch_size=64),
                    torch.Generator().manual_seed(0))
    assert stats["labels_kept"] > 0.97
    assert 0 < stats["mean_lambda"] <= 1
    assert stats["mean_top_prob_after"] < stats["mean_top_prob_before"]


@pytest.mark.parametrize("architecture, weight", [
    ({"kind": "mlp", "sizes": [6, 20, 12, 5]}, "fc1.weight"),
    ({"kind": "mlp", "sizes": [6, 20, 12, 5]}, "fc2.weight"),
    ({"kind": "cnn", "in_channels": 1, "num_classes": 5, "image_size": 8, "channels": [3], "hidden": [7],
      "kernel_size": 3, "padding": 1}, "fc1.weight"),
])
def test_a_linear_weight_chooses_the_labels_its_bias_gradient_chooses(architecture, weight):
    """The cheaper path is taken automatically and picks what the full per-label weight gradients pick."""
    from defend.p2_protection import equivalent_gradient

    torch.manual_seed(1)
    model = build_model(architecture)
    features = torch.randn(200, *((6,) if architecture["kind"] == "mlp" else (1, 8, 8)))
    labels = torch.randint(0, 5, (200,))
    assert equivalent_gradient(model, weight) == weight.replace("weight", "bias")
    full = poison_labels(model, weight, features, labels, shortcut=False)
    assert torch.equal(poison_labels(model, weight, features, labels), full)


def test_a_convolution_keeps_its_full_gradients():
    from defend.p2_protection import equivalent_gradient

    model = build_model({"kind": "lenet", "in_channels": 1, "num_classes": 4, "image_size": 28})
    assert equivalent_gradient(model, "conv1.weight") == "conv1.weight"
