"""Every model of the per-dataset scripts: forward/backward on a batch, stable layer names, and the
scripts' layer constants (POISON_WEIGHT, TRAINABLE, LAYERS) naming real parameters of their model."""
import pytest
import torch

from FL_model_generation.models import build_model, check_layer_names, cnn, lenet
from defend.p2_protection import poison_labels
from menif_attack.per_example_gradients import per_example_gradients
from tests.helpers import script_settings
from toolkit.errors import P2Error

DATASETS = ("adult", "purchase100", "location", "mnist", "femnist", "cifar10")


def script_constants(dataset: str) -> dict:
    """The constants of the dataset's three stage scripts."""
    fl, p2, attack = (script_settings(group, dataset) for group in ("fl", "p2", "gradient"))
    return {"architecture": fl.architecture, "fl": fl, "poison_weight": p2.poison_weight,
            "trainable": p2.trainable, "p2": p2, "layers": attack.layers, "attack": attack}


def input_shape(architecture: dict) -> tuple[int, ...]:
    if architecture["kind"] == "mlp":
        return (architecture["sizes"][0],)
    return (architecture.get("in_channels", 3), architecture.get("image_size", 32), architecture.get("image_size", 32))


def num_classes(architecture: dict) -> int:
    return architecture["sizes"][-1] if architecture["kind"] == "mlp" else architecture.get("num_classes", 10)


@pytest.mark.parametrize("dataset", DATASETS)
def test_model_of_each_dataset_runs_forward_and_backward(dataset):
    architecture = script_constants(dataset)["architecture"]
    torch.manual_seed(0)
    model = build_model(architecture)
    features = torch.rand(5, *input_shape(architecture))
    logits = model(features)
    assert logits.shape == (5, num_classes(architecture))
    torch.nn.functional.cross_entropy(logits, torch.arange(5) % num_classes(architecture)).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("dataset", DATASETS)
def test_layer_constants_name_parameters_of_the_scripts_model(dataset):
    constants = script_constants(dataset)
    model = build_model(constants["architecture"])
    names = [name for name, _ in model.named_parameters()]
    check_layer_names(model, [constants["poison_weight"]], f"defend_{dataset}.POISON_WEIGHT")
    check_layer_names(model, list(constants["layers"]), f"membership_attack_{dataset}.LAYERS")
    for prefix in constants["trainable"]:
        assert any(name.startswith(prefix) for name in names), f"defend_{dataset}.TRAINABLE {prefix!r} matches nothing"
    assert constants["p2"].poison_weight == constants["poison_weight"]
    assert tuple(constants["attack"].layers) == tuple(constants["layers"])
    assert constants["fl"].architecture == constants["architecture"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_layer_constants_work_on_a_small_batch(dataset):
    """The P2 poison label and the attack's per-example gradients run with the scripts' layer names."""
    constants = script_constants(dataset)
    torch.manual_seed(0)
    model = build_model(constants["architecture"])
    features = torch.rand(3, *input_shape(constants["architecture"]))
    labels = torch.arange(3) % num_classes(constants["architecture"])
    poison = poison_labels(model, constants["poison_weight"], features, labels)
    assert poison.shape == (3,) and (poison != labels).all()
    gradients, losses = per_example_gradients(model, list(constants["layers"]), features, labels)
    shapes = dict((name, p.shape) for name, p in model.named_parameters())
    assert all(gradients[name].shape == (3, *shapes[name]) for name in constants["layers"])
    assert losses.shape == (3,)


@pytest.mark.parametrize("dataset", ["mnist", "femnist", "cifar10"])
def test_conv_models_fine_tune_only_their_fully_connected_layers(dataset):
    constants = script_constants(dataset)
    assert constants["trainable"] == ("fc",)
    model = build_model(constants["architecture"])
    convolutions = [name for name, _ in model.named_parameters() if name.startswith("conv")]
    assert convolutions and not any(name.startswith(constants["trainable"]) for name in convolutions)


def test_lenet_keeps_its_layer_names_and_shapes():
    model = lenet()
    assert {name: tuple(p.shape) for name, p in model.named_parameters()} == {
        "conv1.weight": (6, 3, 5, 5), "conv1.bias": (6,), "conv2.weight": (16, 6, 5, 5), "conv2.bias": (16,),
        "fc1.weight": (120, 400), "fc1.bias": (120,), "fc2.weight": (84, 120), "fc2.bias": (84,),
        "fc3.weight": (10, 84), "fc3.bias": (10,)}


def test_leaf_cnn_has_leafs_layout():
    model = build_model(script_constants("femnist")["architecture"])
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters() if name.endswith("weight")}
    assert shapes == {"conv1.weight": (32, 1, 5, 5), "conv2.weight": (64, 32, 5, 5),
                      "fc1.weight": (2048, 7 * 7 * 64), "fc2.weight": (62, 2048)}


def test_input_normalisation_is_part_of_the_model():
    torch.manual_seed(0)
    raw = lenet()
    normalised = lenet(input_mean=120.0, input_std=60.0)
    normalised.load_state_dict(raw.state_dict())
    pixels = torch.rand(4, 3, 32, 32) * 255
    assert torch.allclose(normalised(pixels), raw((pixels - 120.0) / 60.0), atol=1e-5)


def test_same_seed_same_initialisation():
    architecture = script_constants("mnist")["architecture"]
    torch.manual_seed(3)
    first = build_model(architecture).state_dict()
    torch.manual_seed(3)
    second = build_model(architecture).state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)


@pytest.mark.parametrize("arguments, problem", [
    ({"image_size": 8, "channels": [4, 4, 4]}, "shrink to nothing"),
    ({"channels": []}, "at least one convolution"),
    ({"hidden": [0]}, "must be positive"),
])
def test_impossible_cnn_is_refused(arguments, problem):
    with pytest.raises(P2Error, match=problem):
        cnn(**arguments)


def test_unknown_architecture_argument_is_refused():
    with pytest.raises(P2Error, match="does not fit the cnn builder"):
        build_model({"kind": "cnn", "width": 3})


def test_last_layer_bias_gives_the_same_poison_label_as_its_weight():
    """Why defend_purchase100/femnist may name fc*.bias: for the output layer, the normalised
    per-label gradients of the weight are those of the bias times a fixed unit vector."""
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [12, 16, 9, 7], "activation": "tanh"})
    features, labels = torch.randn(60, 12), torch.randint(0, 7, (60,))
    assert torch.equal(poison_labels(model, "fc3.bias", features, labels),
                       poison_labels(model, "fc3.weight", features, labels))
    conv = cnn(in_channels=1, num_classes=6, image_size=12, channels=[3], hidden=[10])
    images, classes = torch.randn(20, 1, 12, 12), torch.randint(0, 6, (20,))
    assert torch.equal(poison_labels(conv, "fc2.bias", images, classes),
                       poison_labels(conv, "fc2.weight", images, classes))
