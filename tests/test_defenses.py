"""Baseline defenses: DP-SGD accounting and clipping, keyed output noise, top-k release, the trade-off plot."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from FL_model_generation.fedavg import initial_state
from FL_model_generation.models import build_model
from FL_model_generation.training import FLSettings
from other_attack_and_defend import dp_sgd
from other_attack_and_defend.release_defenses import OutputNoiseTarget, TopKTarget
from other_attack_and_defend.targets import Target
from tests.helpers import script_settings
from toolkit.errors import P2Error

ARCH = {"kind": "mlp", "sizes": [4, 8, 3]}
CLIENT_SIZE = 64
BATCH = 4  # sample rate 1/16: Opacus' RDP bisection is much slower at large sample rates


pytestmark = pytest.mark.usefixtures("one_thread")


def client_data(seed: int, size: int = CLIENT_SIZE):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, 4, generator=generator), torch.randint(0, 3, (size,), generator=generator)


def fl_settings(**changes) -> FLSettings:
    values = dict(architecture=ARCH, rounds=2, local_epochs=2, lr=0.1, lr_decay=1.0, momentum=0.0, batch_size=BATCH)
    values.update(changes)
    return FLSettings(**values)


def independent_epsilon(noise_multiplier: float, rate: float, steps: int, delta: float) -> float:
    """eps of the subsampled Gaussian mechanism from Opacus' RDP analysis functions, not its accountant class."""
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    orders = list(dp_sgd.ALPHAS)
    rdp = compute_rdp(q=rate, noise_multiplier=noise_multiplier, steps=steps, orders=orders)
    return float(get_privacy_spent(orders=orders, rdp=rdp, delta=delta)[0])


def dp_settings(**changes) -> dp_sgd.DPSettings:
    values = dict(target_eps=1.0, delta_factor=10.0, max_grad_norm=1.0, lr=None)
    values.update(changes)
    return dp_sgd.DPSettings(**values)


def train_dp(target_eps: float, fl: FLSettings, clients: int = 2, seed: int = 0):
    dp = dp_settings(target_eps=target_eps)
    sigma = dp_sgd.noise_multiplier_for(dp, fl, CLIENT_SIZE)
    updates = [dp_sgd.DPClient(dp, sigma, CLIENT_SIZE, fl.batch_size) for _ in range(clients)]
    state = dp_sgd.dp_federated_training([client_data(i) for i in range(clients)], fl, seed, updates)
    return state, updates, dp


# --- DP-SGD -------------------------------------------------------------------------------------------

def test_reported_eps_matches_the_accountant_for_the_steps_taken_and_falls_as_noise_grows():
    fl = fl_settings()
    steps = fl.rounds * fl.local_epochs * round(CLIENT_SIZE / fl.batch_size)
    reports = {}
    for target_eps in (1.0, 4.0):
        _, clients, dp = train_dp(target_eps, fl)
        for client in clients:
            spent = client.spent()
            assert spent["steps"] == steps == dp_sgd.total_steps(fl, CLIENT_SIZE)
            assert client.accountant.history == [(spent["noise_multiplier"], fl.batch_size / CLIENT_SIZE, steps)]
            assert spent["delta"] == pytest.approx(1 / (10 * CLIENT_SIZE)) and spent["delta"] < 1 / CLIENT_SIZE
            expected = independent_epsilon(spent["noise_multiplier"], fl.batch_size / CLIENT_SIZE, steps, spent["delta"])
            assert spent["eps"] == pytest.approx(expected, rel=1e-9)
            assert target_eps - 0.02 <= spent["eps"] <= target_eps + 1e-9  # the budget is spent, not exceeded
        reports[target_eps] = clients[0].spent()
    assert reports[1.0]["noise_multiplier"] > reports[4.0]["noise_multiplier"]
    rate, delta = fl.batch_size / CLIENT_SIZE, 1 / (10 * CLIENT_SIZE)
    eps_by_noise = [independent_epsilon(sigma, rate, steps, delta) for sigma in (0.6, 0.8, 1.2, 2.0, 4.0)]
    assert all(a > b for a, b in zip(eps_by_noise, eps_by_noise[1:]))
    assert [dp_sgd.spent_epsilon(sigma, rate, steps, delta) for sigma in (0.6, 2.0)] == \
        pytest.approx([eps_by_noise[0], eps_by_noise[3]])


def test_a_clients_accountant_is_kept_across_rounds():
    fl = fl_settings(rounds=3, local_epochs=1)
    dp = dp_settings(target_eps=2.0)
    client = dp_sgd.DPClient(dp, dp_sgd.noise_multiplier_for(dp, fl, CLIENT_SIZE), CLIENT_SIZE, fl.batch_size)
    accountant = client.accountant
    state = initial_state(ARCH, 0)
    data = [client_data(0)]
    seen = []
    for round_index in range(1, 3):
        state = dp_sgd.local_round(state, data, [client], fl, [torch.Generator().manual_seed(round_index)])[0]
        seen.append(client.spent())
    assert client.accountant is accountant
    assert [s["rounds"] for s in seen] == [1, 2]
    assert seen[1]["steps"] == 2 * seen[0]["steps"] == 2 * round(CLIENT_SIZE / fl.batch_size)
    assert 0 < seen[0]["eps"] < seen[1]["eps"] < dp.target_eps


def test_dp_update_is_the_mean_of_clipped_per_example_gradients_without_noise():
    """Sample rate 1 and noise 0: one step moves the weights by -lr x sum_i clip(g_i) / batch."""
    features, labels = client_data(3, size=16)
    fl = fl_settings(rounds=1, local_epochs=1, lr=0.5, batch_size=16)
    dp = dp_settings(target_eps=1.0, max_grad_norm=0.05)
    client = dp_sgd.DPClient(dp, noise_multiplier=0.0, client_size=16, batch_size=16)
    start = initial_state(ARCH, 1)
    after = dp_sgd.local_round(start, [(features, labels)], [client], fl, [torch.Generator().manual_seed(0)])[0]

    model = build_model(ARCH)
    model.load_state_dict(start)
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss(weights, x, y):
        return nn.functional.cross_entropy(functional_call(model, weights, (x[None],)), y[None])

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))(params, features, labels)
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_example.values()))
    assert (norms > dp.max_grad_norm).any()  # clipping matters in this test
    factors = (dp.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
    for name, gradients in per_example.items():
        clipped_mean = (gradients * factors.view(-1, *[1] * (gradients.dim() - 1))).sum(0) / 16
        assert torch.allclose(after[name], start[name] - fl.lr * clipped_mean, atol=1e-6), name


SMALL_CNN = {"kind": "cnn", "in_channels": 2, "num_classes": 3, "image_size": 10, "channels": [3, 4], "hidden": [6],
             "kernel_size": 3, "padding": 1}


def per_example_norms(architecture: dict, state: dict, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    model = build_model(architecture)
    model.load_state_dict(state)
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss(weights, x, y):
        return nn.functional.cross_entropy(functional_call(model, weights, (x[None],)), y[None])

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))(params, features, labels)
    return torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_example.values()))


def assert_same_updates_as_opacus(architecture: dict, example_shape: tuple, sizes: list[int], batched, **changes):
    """local_round against Opacus client by client: the same weights after the round (to float rounding,
    relative to the size of the update) and the same accountant records, for the same seeds."""
    fl = fl_settings(architecture=architecture, rounds=1, **changes)
    dp = dp_settings(max_grad_norm=0.2)
    generator = torch.Generator().manual_seed(7)
    data = [(torch.randn(size, *example_shape, generator=generator),
             torch.randint(0, 3, (size,), generator=generator)) for size in sizes]
    start = initial_state(architecture, 3)
    assert (per_example_norms(architecture, start, *data[0]) > dp.max_grad_norm).any()  # clipping matters
    seeds = [11 + client for client in range(len(sizes))]
    noise = [0.8 - 0.2 * client for client in range(len(sizes))]  # per client, as clients of different sizes have
    ours = [dp_sgd.DPClient(dp, sigma, size, fl.batch_size) for sigma, size in zip(noise, sizes)]
    theirs = [dp_sgd.DPClient(dp, sigma, size, fl.batch_size) for sigma, size in zip(noise, sizes)]
    updated = dp_sgd.local_round(start, data, ours, fl, [torch.Generator().manual_seed(seed) for seed in seeds],
                                 batched=batched)
    for client, (mine, reference, (features, labels), seed) in enumerate(zip(ours, theirs, data, seeds)):
        expected = dp_sgd.opacus_local_update(reference, start, features, labels, fl,
                                              torch.Generator().manual_seed(seed))
        scale = max((expected[name] - start[name]).abs().max().item() for name in start)
        for name in start:
            assert torch.allclose(updated[client][name], expected[name], rtol=0, atol=1e-5 * scale), (client, name)
        assert mine.accountant.history == reference.accountant.history
        assert (mine.steps, mine.rounds) == (reference.steps, reference.rounds)


@pytest.mark.parametrize("batched", [None, True, False], ids=["default", "batched", "loop"])
@pytest.mark.parametrize("architecture, example_shape", [(ARCH, (4,)), (SMALL_CNN, (2, 10, 10))], ids=["mlp", "cnn"])
def test_dp_sgd_gives_opacus_updates_for_the_same_seed(architecture, example_shape, batched):
    """Two clients of different sizes (so different sample rates, step counts and noise multipliers), momentum,
    and the learning rate decaying over two local epochs."""
    assert_same_updates_as_opacus(architecture, example_shape, [40, 64], batched, batch_size=8, momentum=0.9,
                                  lr_decay=0.5, local_epochs=2)


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "loop"])
def test_empty_poisson_batches_are_noise_only_steps_as_in_opacus(batched):
    sizes = [12, 20]  # batch 1: sample rates 1/12 and 1/20, so many batches are empty
    for client, size in enumerate(sizes):  # the batch sizes Opacus' sampler draws in the epoch
        generator = torch.Generator().manual_seed(11 + client)
        assert 0 in [int((torch.rand(size, generator=generator) < 1 / size).sum()) for _ in range(size)]
    assert_same_updates_as_opacus(ARCH, (4,), sizes, batched, batch_size=1, momentum=0.5, local_epochs=1)


def test_architectures_dp_sgd_cannot_train_are_refused_by_layer_name():
    from collections import OrderedDict

    with pytest.raises(P2Error, match="norm"):
        dp_sgd.check_compatible(nn.Sequential(OrderedDict(fc1=nn.Linear(4, 3), norm=nn.BatchNorm1d(3))))
    with pytest.raises(P2Error, match="conv1"):
        dp_sgd.check_compatible(nn.Sequential(OrderedDict(conv1=nn.Conv2d(4, 4, 3, groups=2))))
    dp_sgd.check_compatible(build_model(SMALL_CNN))


def test_dp_training_is_deterministic_under_the_seed():
    fl = fl_settings(rounds=1)
    first, _, _ = train_dp(4.0, fl, seed=5)
    second, _, _ = train_dp(4.0, fl, seed=5)
    other, _, _ = train_dp(4.0, fl, seed=6)
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not torch.equal(first["fc1.weight"], other["fc1.weight"])


def test_impossible_dp_constants_are_rejected():
    with pytest.raises(P2Error, match="DP_DELTA_FACTOR"):
        script_settings("baselines", dp_delta_factor=1.0)
    with pytest.raises(P2Error, match="DP_TARGET_EPS"):
        script_settings("baselines", dp_target_eps=(0.0,))
    with pytest.raises(P2Error, match="OUTPUT_NOISE_EPS"):
        script_settings("baselines", output_noise_eps=0.0)
    assert script_settings("baselines", dp_target_eps=(8, 1, 4)).quick().dp_target_eps == (1, 8)


# --- output noise ---------------------------------------------------------------------------------------

def noise_target(seed: int = 0, name: str = "output_noise", sigma: float = 1 / 0.3) -> OutputNoiseTarget:
    return OutputNoiseTarget(name, checkpoint=None, sigma=sigma, seed=seed)


def test_output_noise_is_keyed_by_seed_target_and_row_only():
    features = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
    logits = torch.randn(300, 4, generator=torch.Generator().manual_seed(1))
    state = torch.random.get_rng_state()
    first = noise_target().noisy_logits(logits, features)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is never touched
    torch.manual_seed(1234)
    assert torch.equal(first, noise_target().noisy_logits(logits, features))
    assert torch.equal(first[100:140], noise_target().noisy_logits(logits[100:140], features[100:140]))
    assert not torch.allclose(first, noise_target(seed=1).noisy_logits(logits, features))
    assert not torch.allclose(first, noise_target(name="other").noisy_logits(logits, features))
    assert not torch.allclose(first[:1], noise_target().noisy_logits(logits[:1], features[1:2]))


def test_output_noise_has_the_requested_sigma_on_logits_and_gradients():
    sigma = 1 / 0.3
    target = noise_target(sigma=sigma)
    features = torch.randn(20000, 6, generator=torch.Generator().manual_seed(2))
    noise = target.noisy_logits(torch.zeros(20000, 2), features)
    assert noise.std().item() == pytest.approx(sigma, rel=0.02)
    assert noise.mean().abs().item() < 0.05 * sigma
    assert abs(torch.corrcoef(noise.T)[0, 1].item()) < 0.03
    gradients = {"fc1.weight": torch.ones(2000, 7, 5), "fc2.weight": torch.zeros(2000, 3)}
    noisy = target.perturb_gradients(gradients, features=features[:2000])
    for name, values in noisy.items():
        assert values.shape == gradients[name].shape
        assert (values - gradients[name]).std().item() == pytest.approx(sigma, rel=0.02)
    assert not torch.allclose(noisy["fc1.weight"][:, 0, :3] - 1, noisy["fc2.weight"])  # streams differ per layer
    assert Target("fl", None).perturb_gradients(gradients) is gradients


def test_output_noise_released_losses_are_those_of_the_noisy_logits():
    model = build_model(ARCH)
    features, labels = client_data(4)
    target = noise_target(sigma=0.5)
    losses = target.perturb_losses(torch.zeros(CLIENT_SIZE), model, features, labels)
    noisy = target.noisy_logits(model(features).detach(), features)
    assert torch.allclose(losses, nn.functional.cross_entropy(noisy, labels, reduction="none"), atol=1e-6)
    assert torch.allclose(target.posteriors(model, features), noisy.softmax(1), atol=1e-6)


# --- top-k release --------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3])
def test_top_k_releases_exactly_the_k_largest_probabilities(k):
    logits = torch.randn(500, 10, generator=torch.Generator().manual_seed(k))
    released = TopKTarget(f"top{k}", None, k=k).release(logits)
    probs = logits.softmax(1)
    assert ((released != 0).sum(1) == k).all()
    kept = released.topk(k, 1)
    expected = probs.topk(k, 1)
    assert torch.equal(kept.indices, expected.indices)
    assert torch.allclose(kept.values, expected.values)
    assert torch.equal(released.argmax(1), probs.argmax(1))
    assert not TopKTarget("top1", None).whitebox


def test_top_k_that_would_release_everything_is_rejected():
    with pytest.raises(P2Error, match="releases everything"):
        TopKTarget("top3", None, k=3).release(torch.randn(4, 3))


# --- trade-off plot -------------------------------------------------------------------------------------

def test_tradeoff_plot_takes_the_strongest_attack_per_model(tmp_path):
    from reporting.tradeoff_plot import tradeoff_points, write_tradeoff_plot

    metrics = lambda auc, tpr: {"auc": auc, "tpr_at_1pct_fpr": tpr}  # noqa: E731
    summary = {"dataset": "toy", "seed": [0, 1], "preset": "quick",
               "models": {"fl": {"train_acc": 0.9, "test_acc": 0.8}, "top1": {"train_acc": 0.9, "test_acc": 0.8},
                          "dp_eps8": {"train_acc": 0.8, "test_acc": 0.75, "eps": 8.0},
                          "dp_eps1": {"train_acc": 0.7, "test_acc": 0.7, "eps": 1.0}},
               "attacks": {"gradient": {"fl": metrics(0.6, 0.05), "dp_eps1": metrics(0.52, 0.01),
                                        "dp_eps8": metrics(0.55, 0.02)},
                           "shadow": {"fl": metrics(0.58, 0.09), "top1": metrics(0.55, 0.0)}},
               "std": {"models": {"fl": {"test_acc": 0.01}}}}
    points = {p["model"]: p for p in tradeoff_points(summary)}
    assert points["fl"]["auc"][::2] == (0.6, "gradient") and points["fl"]["tpr_at_1pct_fpr"][::2] == (0.09, "shadow")
    assert points["fl"]["test_acc_std"] == 0.01 and points["dp_eps1"]["eps"] == 1.0
    path = write_tradeoff_plot(summary, tmp_path / "tradeoff.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
