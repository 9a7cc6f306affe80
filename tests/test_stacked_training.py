"""Many models trained at once equal the same models trained one after another (float tolerance), for an
MLP and a CNN, with SGD + momentum + lr decay and with Adam, unequal dataset sizes, frozen layers and a
summed loss; FedAvg over stacked clients equals the per-client loop."""
import pytest
import torch
from torch import nn

from FL_model_generation.fedavg import federated_training
from FL_model_generation.models import build_model
from FL_model_generation.stacked_training import Recipe, train_stacked
from FL_model_generation.training import FLSettings, minibatches, sgd_client_update

MLP = {"kind": "mlp", "sizes": [6, 16, 8, 3]}
CNN = {"kind": "cnn", "in_channels": 1, "num_classes": 3, "image_size": 8, "channels": [2, 3], "hidden": [5],
       "kernel_size": 3, "padding": 1}


pytestmark = pytest.mark.usefixtures("one_thread")


def data(architecture, sizes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = (6,) if architecture["kind"] == "mlp" else (1, 8, 8)
    return [(torch.randn(size, *shape, generator=generator), torch.randint(0, 3, (size,), generator=generator))
            for size in sizes]


def one_at_a_time(architecture, state, x, y, recipe, generator, loss=None, trainable=lambda name: True):
    """The reference: torch.optim on one model, minibatches as training.minibatches draws them."""
    model = build_model(architecture)
    model.load_state_dict(state)
    chosen = [p for name, p in model.named_parameters() if trainable(name)]
    optimizer = (torch.optim.SGD(chosen, lr=recipe.lr, momentum=recipe.momentum) if recipe.optimizer == "sgd"
                 else torch.optim.Adam(chosen, lr=recipe.lr))
    for epoch in range(recipe.epochs):
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * recipe.lr_decay ** epoch
        for batch in minibatches(len(y), recipe.batch_size, generator):
            optimizer.zero_grad()
            outputs = model(x[batch])
            value = nn.functional.cross_entropy(outputs, y[batch]) if loss is None else loss(outputs, y[batch]).sum()
            value.backward()
            optimizer.step()
    return model.state_dict()


def starts(architecture, count):
    result = []
    for m in range(count):
        torch.manual_seed(m)
        result.append(build_model(architecture).state_dict())
    return result


def assert_close(first: dict, second: dict) -> None:
    for name in first:
        assert torch.allclose(first[name], second[name], atol=2e-5, rtol=1e-4), name


@pytest.mark.parametrize("architecture", [MLP, CNN], ids=["mlp", "cnn"])
@pytest.mark.parametrize("recipe", [
    Recipe("sgd", lr=0.1, epochs=3, batch_size=8, momentum=0.9, lr_decay=0.9),
    Recipe("adam", lr=0.01, epochs=3, batch_size=8),
], ids=["sgd-momentum-decay", "adam"])
def test_stacked_training_equals_the_loop(architecture, recipe):
    datasets = data(architecture, [40, 27, 33])  # unequal sizes: models take different numbers of steps
    states = starts(architecture, 3)
    stacked = train_stacked(build_model(architecture), states, [x for x, _ in datasets], [y for _, y in datasets],
                            recipe, [torch.Generator().manual_seed(10 + m) for m in range(3)])
    for m, (x, y) in enumerate(datasets):
        expected = one_at_a_time(architecture, states[m], x, y, recipe, torch.Generator().manual_seed(10 + m))
        assert_close(stacked[m], expected)
        assert not torch.equal(stacked[m]["fc1.weight"], states[m]["fc1.weight"])


def test_frozen_layers_and_a_summed_soft_target_loss():
    """P2's fine-tuning: only fc2 and fc3 move, loss sum ||softmax - t||."""
    def l2(outputs, targets):
        return (outputs.softmax(1) - targets).norm(dim=1)

    recipe = Recipe("adam", lr=0.01, epochs=2, batch_size=16, reduction="sum")
    generator = torch.Generator().manual_seed(3)
    inputs = [torch.randn(50, 6, generator=generator) for _ in range(2)]
    targets = [torch.softmax(torch.randn(50, 3, generator=generator), 1) for _ in range(2)]
    states = starts(MLP, 2)
    trainable = lambda name: not name.startswith("fc1")  # noqa: E731
    stacked = train_stacked(build_model(MLP), states, inputs, targets, recipe,
                            [torch.Generator().manual_seed(m) for m in range(2)], per_example_loss=l2,
                            trainable=trainable)
    for m in range(2):
        expected = one_at_a_time(MLP, states[m], inputs[m], targets[m], recipe, torch.Generator().manual_seed(m),
                                 loss=l2, trainable=trainable)
        assert_close(stacked[m], expected)
        assert torch.equal(stacked[m]["fc1.weight"], states[m]["fc1.weight"])


def test_fedavg_of_stacked_clients_equals_the_per_client_loop():
    settings = FLSettings(architecture=MLP, rounds=2, local_epochs=2, lr=0.1, lr_decay=0.95, momentum=0.9,
                          batch_size=8)
    clients = data(MLP, [30, 30, 21])
    stacked = federated_training(clients, settings, seed=4)
    looped = federated_training(clients, settings, seed=4, client_updates=[sgd_client_update] * 3)
    assert_close(stacked, looped)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_optimizer_update_in_slices_gives_the_same_bits(monkeypatch, optimizer):
    """The update runs in cache-sized slices of each stack; elementwise, it must equal the whole-tensor update
    exactly, for stacks whose size is not a multiple of the slice and for transposed (strided) gradients."""
    from FL_model_generation import stacked_training

    recipe = Recipe(optimizer, lr=0.01, epochs=1, batch_size=1, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 70, 33), (3, 70)]
    start = [torch.randn(shape, generator=generator) for shape in shapes]
    gradients = [[torch.randn(shape, generator=generator) for shape in shapes] for _ in range(3)]

    def trained(slice_size: int, transposed: bool) -> list[torch.Tensor]:
        monkeypatch.setattr(stacked_training, "UPDATE_SLICE", slice_size)
        parameters = [tensor.clone() for tensor in start]
        optimizer_ = stacked_training.StackedOptimizer(recipe, parameters, count=3)
        for step_gradients in gradients:
            if transposed:  # the memory layout a vmapped Linear's weight gradient comes back in
                step_gradients = [g.transpose(1, 2).contiguous().transpose(1, 2) if g.dim() == 3 else g
                                  for g in step_gradients]
            optimizer_.step(tuple(step_gradients), 0.01, torch.ones(3, dtype=torch.bool))
        return parameters

    whole = trained(1 << 62, transposed=False)
    for sliced in (trained(64, transposed=False), trained(64, transposed=True)):
        assert all(torch.equal(a, b) for a, b in zip(whole, sliced))
