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


@pytest.mark.parametrize("margin", [1e-5, 0.05, 0.2])
def test_soft_targets_keep_the_label_margin_and_lambda_is_maximal(margin):
    probs = random_probs(300, 4, seed=7)
    poison = torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(2))
    eps = 0.3
    targets, lambdas = soft_targets(probs, poison, eps, margin)
    rows, top = torch.arange(300), probs.argmax(1)
    assert torch.equal(targets.argmax(1), top) and torch.allclose(targets.sum(1), torch.ones(300), atol=1e-6)
    assert ((targets.max(1).values - probs.max(1).values).abs() <= eps + 1e-6).all()
    others = targets.clone()
    others[rows, top] = -1
    lead = targets[rows, top] - others.max(1).values
    # every target leads by the margin, unless restoring it would move the top probability by more than eps
    assert ((lead >= margin - 1e-5) | ((targets[rows, top] - probs[rows, top]) >= eps - 1e-5)).all()
    other = poison != top
    grid = torch.linspace(0, 1, 2001)
    for i in range(0, 300, 7):  # lambda is the largest that keeps the label ahead of the poison label by the margin
        if not other[i] or probs[i, top[i]] - probs[i, poison[i]] < margin:
            continue
        candidates = (1 - grid).unsqueeze(1) * probs[i]
        candidates[:, poison[i]] += grid
        valid = (candidates[:, top[i]] - candidates[:, poison[i]] >= margin) & \
                ((probs[i].max() - candidates.max(1).values).abs() <= eps)
        assert lambdas[i] >= grid[valid].max() - 1e-3


def test_a_boundary_example_gets_its_lead_restored_within_eps():
    probs = torch.tensor([[0.51, 0.49], [0.9, 0.1]])
    targets, _ = soft_targets(probs, torch.tensor([1, 1]), eps=0.1, margin=0.2)
    assert targets[0].tolist() == pytest.approx([0.6, 0.4])          # lead 0.02 -> 0.2, top moved 0.09 <= eps
    assert targets[1, 0] - targets[1, 1] >= 0.2 - 1e-6 and targets[1, 0] == pytest.approx(0.8)  # P2 as usual
    squeezed, _ = soft_targets(probs[:1], torch.tensor([1]), eps=0.05, margin=0.2)
    assert squeezed[0, 0].item() == pytest.approx(0.56)              # eps caps the restoration


def test_p2_in_rounds_equals_the_in_memory_federation_and_writes_every_round(tmp_path, monkeypatch):
    """ROUNDS = 2: the stages' files (targets, each round's clients and average) give the same final model as
    protect_federations, which P2-aware attackers use."""
    from dataclasses import replace

    import pipeline
    from data_partitioning import load_partition, tensors
    from data_preprocessing import load_dataset
    from defend.p2_protection import protect_federations
    from defend.p2_stage import P2Files
    from FL_model_generation.fl_stage import load_model
    from tests.synthetic_adult import write_synthetic_adult
    from toolkit import stages as runner
    from toolkit.run import Run
    from toolkit.seeding import torch_generator

    for variable, name in (("P2_DATA_DIR", "data"), ("P2_CACHE_DIR", "cache"), ("P2_MODEL_DIR", "model"),
                           ("P2_RESULTS_DIR", "results")):
        monkeypatch.setenv(variable, str(tmp_path / name))
    monkeypatch.setenv("P2_VERIFY_CHECKSUMS", "0")
    write_synthetic_adult(tmp_path / "data", train_rows=1500, test_rows=700)
    experiment = pipeline.load_experiment(Run("adult", seed=0, quick=True))
    experiment = replace(experiment, p2=replace(experiment.p2, epochs=4, rounds=2))
    chosen = [stage for stage in pipeline.stages(experiment, ()) if stage.group in ("partition", "fl", "p2")]
    assert [stage.name for stage in chosen if stage.group == "p2"][-3:] == [
        "P2 round 2 client 1", "P2 round 2 client 2", "P2 round 2 aggregation"]
    runner.run(chosen)
    run, files = experiment.run, P2Files(experiment.run, 2)
    assert files.global_model(1).is_file() and files.client(1, 0).parent.name == "round001"
    assert files.final == run.p2_global_path and run.p2_client_path(2).is_file()
    dataset, partition = load_dataset("adult"), load_partition(run)
    fl_model, _ = load_model(run.fl_final_path, run)
    [expected] = protect_federations(experiment.fl.architecture, [fl_model.state_dict()],
                                     [[tensors(dataset, rows) for rows in partition.clients]], experiment.p2,
                                     lambda f, r, client: torch_generator(run.seed, "p2", client, "round", r))
    released, _ = load_model(run.p2_global_path, run)
    for name, value in released.state_dict().items():
        assert torch.allclose(value, expected[name], atol=1e-6), name
