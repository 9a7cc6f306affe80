"""The white-box attack with nn.Linear weight gradients kept as rank-one factors gives what it gives
on the materialised gradients: the same network outputs, feature scales, training and AUC."""
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from FL_model_generation.models import build_model
from menif_attack.gradient_attack_stage import released_features
from menif_attack.whitebox_attack import (AttackFeatures, RankOne, WhiteboxAttackModel, WhiteboxSettings,
                                          attack_features, feature_scales, predict, train_attack)
from other_attack_and_defend.release_defenses import OutputNoiseTarget
from other_attack_and_defend.targets import Target

MLP_LAYERS = ("fc1.weight", "fc2.weight", "fc3.weight")
CNN_LAYERS = ("conv2.weight", "fc1.weight", "fc3.weight")


def mlp_case():
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [7, 12, 9, 4]}).eval()
    return model, MLP_LAYERS, torch.randn(40, 7), torch.randint(0, 4, (40,))


def cnn_case():
    torch.manual_seed(0)
    model = build_model({"kind": "lenet", "in_channels": 3, "num_classes": 4}).eval()
    return model, CNN_LAYERS, torch.randn(12, 3, 32, 32), torch.randint(0, 4, (12,))


def both_paths(model, layers, features, labels):
    factorised = attack_features(model, layers, features, labels, 4)
    materialised = attack_features(model, layers, features, labels, 4, factorise=False)
    return factorised, materialised


def attack_network(inputs: AttackFeatures, seed: int = 1) -> WhiteboxAttackModel:
    torch.manual_seed(seed)
    return WhiteboxAttackModel([tuple(g.shape[1:]) for g in inputs.gradients], 4, 5, feature_scales(inputs))


@pytest.mark.parametrize("case, forms", [(mlp_case, ["factors"] * 3), (cnn_case, ["dense", "factors", "factors"])])
def test_linear_weights_are_factorised_and_equal_the_materialised_gradients(case, forms):
    factorised, materialised = both_paths(*case())
    assert ["factors" if isinstance(g, RankOne) else "dense" for g in factorised.gradients] == forms
    assert all(isinstance(g, torch.Tensor) for g in materialised.gradients)
    for fast, reference in zip(factorised.gradients, materialised.gradients):
        assert fast.shape == reference.shape
        dense = fast.dense() if isinstance(fast, RankOne) else fast
        assert torch.allclose(dense, reference, atol=1e-6)
    assert torch.allclose(factorised.losses, materialised.losses, atol=1e-6)
    assert torch.equal(factorised.labels, materialised.labels)


@pytest.mark.parametrize("case", [mlp_case, cnn_case])
def test_feature_scales_agree(case):
    factorised, materialised = both_paths(*case())
    rows = torch.tensor([0, 3, 5, 8, 11])
    assert torch.allclose(feature_scales(factorised), feature_scales(materialised), rtol=1e-5)
    assert torch.allclose(feature_scales(factorised, rows), feature_scales(materialised, rows), rtol=1e-5)
    root_mean_squares = [g.pow(2).mean().sqrt() for g in materialised[rows].gradients]
    assert torch.allclose(feature_scales(factorised, rows)[:-1], torch.stack(root_mean_squares), rtol=1e-5)


@pytest.mark.parametrize("case", [mlp_case, cnn_case])
def test_same_network_gives_the_same_outputs_and_weight_gradients_on_both_paths(case):
    factorised, materialised = both_paths(*case())
    network = attack_network(materialised).eval()
    assert torch.allclose(network(factorised), network(materialised), atol=1e-6)
    gradients = []
    for inputs in (factorised, materialised):
        network.train()
        network.zero_grad()
        torch.manual_seed(2)  # the same dropout masks on both paths
        network(inputs).sum().backward()
        gradients.append([p.grad.clone() for p in network.parameters()])
    for fast, reference in zip(*gradients):
        assert torch.allclose(fast, reference, atol=1e-5, rtol=1e-4)


def overfit_target():
    """A small MLP that memorises 120 random examples with random labels, and 120 examples it never saw."""
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "sizes": [8, 64, 32, 2]})
    members, outsiders = torch.randn(120, 8), torch.randn(120, 8)
    member_labels, outsider_labels = torch.randint(0, 2, (120,)), torch.randint(0, 2, (120,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(members), member_labels).backward()
        optimizer.step()
    return model.eval(), members, member_labels, outsiders, outsider_labels


def test_trained_attack_gives_the_same_auc_on_both_paths():
    model, members, member_labels, outsiders, outsider_labels = overfit_target()
    settings = WhiteboxSettings(layers=("fc1.weight", "fc2.weight", "fc3.weight"), conv_channels=4, optimizer="adam",
                                lr=1e-3, lr_decay=0.95, epochs=4, batch_size=16, val_fraction=0.25)
    known_x, known_y = torch.cat([members[:60], outsiders[:60]]), torch.cat([member_labels[:60], outsider_labels[:60]])
    eval_x, eval_y = torch.cat([members[60:], outsiders[60:]]), torch.cat([member_labels[60:], outsider_labels[60:]])
    is_member = torch.arange(120) < 60
    results = []
    for factorise in (True, False):
        known = attack_features(model, settings.layers, known_x, known_y, 2, factorise=factorise)
        torch.manual_seed(5)
        attack, threshold, history = train_attack(known, is_member, settings, torch.Generator().manual_seed(5))
        scores = predict(attack, attack_features(model, settings.layers, eval_x, eval_y, 2, factorise=factorise))
        results.append((scores, roc_auc_score(is_member.numpy(), scores), threshold, history))
    (fast, fast_auc, fast_threshold, fast_history), (slow, slow_auc, slow_threshold, slow_history) = results
    assert slow_auc > 0.6  # the case has a membership signal to find
    # float noise can swap two (near-)tied scores, which moves an AUC by 1 / (members x non-members)
    assert np.allclose(fast, slow, atol=1e-4)
    assert fast_auc == pytest.approx(slow_auc, abs=3 / 60 ** 2)
    assert fast_threshold == pytest.approx(slow_threshold, abs=1e-4)
    assert fast_history["best_epoch"] == slow_history["best_epoch"]
    assert np.allclose(fast_history["val_auc_per_epoch"], slow_history["val_auc_per_epoch"], atol=2 / 15 ** 2)


def test_exact_targets_release_factors_and_noisy_targets_noisy_materialised_gradients():
    model, layers, features, labels = mlp_case()
    exact, noisy_target = Target("fl", None), OutputNoiseTarget("dp", None, sigma=0.5, seed=3)
    assert exact.exact_gradients and not noisy_target.exact_gradients
    released = released_features(exact, model, layers, features, labels, 4)
    assert all(isinstance(g, RankOne) for g in released.gradients)
    noisy = released_features(noisy_target, model, layers, features, labels, 4)
    materialised = attack_features(model, layers, features, labels, 4, factorise=False)
    expected = noisy_target.perturb_gradients(dict(zip(layers, materialised.gradients)), features=features)
    for name, gradients in zip(layers, noisy.gradients):
        assert isinstance(gradients, torch.Tensor) and torch.equal(gradients, expected[name])


def test_a_subclass_that_perturbs_gradients_is_not_treated_as_exact():
    class Rounded(Target):
        def perturb_gradients(self, gradients, generator=None, features=None):
            return {name: values.round(decimals=2) for name, values in gradients.items()}

    assert not Rounded("rounded", None).exact_gradients
