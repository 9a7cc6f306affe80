"""The black-box attack suite: every attack leaks membership of an overfit model and sits at chance
on an untrained one; LiRA, RMIA and the metric signals against hand-computed values; shadow and
reference rows disjoint from members and evaluation non-members; the stages end to end."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from data_partitioning import split_roles
from data_sources.dataset import Dataset
from FL_model_generation.models import build_model
import pipeline
from other_attack_and_defend import reference_attacks, shadow_attacks
from other_attack_and_defend.attack_common import fit_attack_mlps, train_classifier
from other_attack_and_defend.metric_attacks import (METRICS, gap_signal, log_true_probability, metric_signal,
                                                    modified_entropy)
from other_attack_and_defend.reference_attacks import (lira_offline, metric_thresholds, offline_marginal,
                                                       reference_membership, rmia_offline, shifted_scores,
                                                       simulated_lira, simulated_rmia)
from other_attack_and_defend.shadow_attacks import (ml_leaks_fit, ml_leaks_scores, ml_leaks_shadow_rows, shokri_fit,
                                                    shokri_scores, shokri_shadow_rows)
from other_attack_and_defend.targets import Target
from tests.helpers import experiment, script_settings
from toolkit import stages as runner
from toolkit.checkpoints import load_arrays
from toolkit.scoring import membership_metrics

COLUMNS = 30
ARCH = {"kind": "mlp", "sizes": [COLUMNS, 256, 2]}
RECIPE = dict(optimizer="adam", lr=0.01, epochs=60, batch_size=50)
TARGET = Target("plain", Path("unused.pt"))  # softmax release


def noisy_data(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian features and labels nearly independent of them: a model can only memorise."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(rows, COLUMNS, generator=generator)
    labels = (features[:, 0] + 20 * torch.randn(rows, generator=generator) > 0).long()
    return features, labels


def fit(features, labels, *names) -> torch.nn.Module:
    return train_classifier(ARCH, features, labels, RECIPE["optimizer"], RECIPE["lr"], RECIPE["epochs"],
                            RECIPE["batch_size"], 0, *names)


class World:
    """An overfit target (150 members), an untrained one, and the attacker's shadow/reference models
    trained the same way on a disjoint pool."""

    def __init__(self):
        self.x, self.y = noisy_data(3000, seed=0)
        self.members, self.nonmembers = np.arange(0, 150), np.arange(150, 300)
        self.null_members, self.null_nonmembers = np.arange(300, 1300), np.arange(1300, 2300)
        self.pool = np.arange(2300, 2600)
        self.overfit = fit(self.x[self.members], self.y[self.members], "target")
        torch.manual_seed(1)
        self.untrained = build_model(ARCH).eval()
        self.in_mask = reference_membership(self.pool, 4, seed=0)          # halves of 150 rows, like the target
        self.references = [fit(self.x[self.pool[m]], self.y[self.pool[m]], "reference", k)
                           for k, m in enumerate(self.in_mask)]
        self.shokri = script_settings("shokri", num_shadows=4, shadow_size=300, top_k=2, attack_epochs=60)
        self.shokri_rows = shokri_shadow_rows(self.pool, self.shokri, seed=0)
        self.shokri_models = [fit(self.x[r[:150]], self.y[r[:150]], "shadow", i)
                              for i, r in enumerate(self.shokri_rows)]
        self.ml_leaks = script_settings("ml_leaks", shadow_in=150, shadow_out=150)
        self.ml_rows = ml_leaks_shadow_rows(self.pool, self.ml_leaks, seed=0)
        self.ml_model = fit(self.x[self.ml_rows[0]], self.y[self.ml_rows[0]], "ml_leaks")

    def posteriors(self, model, rows):
        return TARGET.posteriors(model, self.x[rows])


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(one_thread):
    return World()


# ---------------------------------------------------------------- each attack as a function of (model, rows)

def shokri_attack(world: World, model, rows, per_class=False):
    settings = replace(world.shokri, per_class=per_class)
    inputs = []
    for shadow, r in zip(world.shokri_models, world.shokri_rows):
        posteriors = world.posteriors(shadow, r)
        inputs.append((posteriors.sort(1, descending=True).values[:, :2], torch.arange(len(r)) < 150, world.y[r]))
    models, thresholds, valid = shokri_fit(inputs, 2, settings, torch.Generator().manual_seed(0))
    return shokri_scores(models, thresholds, valid, world.posteriors(model, rows), world.y[rows], settings, 2)


def ml_leaks_attack(world: World, model, rows):
    r = np.concatenate(world.ml_rows)
    inputs = world.posteriors(world.ml_model, r).sort(1, descending=True).values[:, :2]
    models, _ = ml_leaks_fit(inputs, torch.arange(len(r)) < 150, world.ml_leaks, torch.Generator().manual_seed(0))
    return ml_leaks_scores(models, world.posteriors(model, rows), world.ml_leaks)


def reference_outputs(world: World, rows):
    return [world.posteriors(m, rows) for m in world.references]


def metric_attack(world: World, model, rows, metric):
    pool = reference_outputs(world, world.pool)
    signal = np.concatenate([metric_signal(p, world.y[world.pool], metric) for p in pool])
    labels = np.tile(world.y[world.pool].numpy(), len(pool))
    thresholds = metric_thresholds(signal, world.in_mask.ravel(), labels, 2, per_class=True)
    return shifted_scores(metric_signal(world.posteriors(model, rows), world.y[rows], metric), world.y[rows].numpy(),
                          thresholds)


def lira_attack(world: World, model, rows):
    from other_attack_and_defend.metric_attacks import logit_confidence
    references = np.stack([logit_confidence(p, world.y[rows]) for p in reference_outputs(world, rows)], 1)
    return lira_offline(logit_confidence(world.posteriors(model, rows), world.y[rows]), references,
                        np.ones_like(references, dtype=bool), fixed_variance=True)


def rmia_attack(world: World, model, rows):
    def probability(posteriors, labels):
        return posteriors[torch.arange(len(labels)), labels].double().numpy()
    reference_x = np.stack([probability(p, world.y[rows]) for p in reference_outputs(world, rows)], 1)
    reference_z = np.stack([probability(p, world.y[world.pool]) for p in reference_outputs(world, world.pool)], 1)
    return rmia_offline(probability(world.posteriors(model, rows), world.y[rows]), reference_x,
                        np.ones_like(reference_x, dtype=bool), probability(world.posteriors(model, world.pool),
                                                                           world.y[world.pool]),
                        reference_z, ~world.in_mask.T, a=0.3)


ATTACK_FUNCTIONS = {
    "shokri": shokri_attack,
    "shokri_per_class": lambda w, m, r: shokri_attack(w, m, r, per_class=True),
    "ml_leaks": ml_leaks_attack,
    **{metric: (lambda w, m, r, metric=metric: metric_attack(w, m, r, metric)) for metric in METRICS},
    "gap": lambda w, m, r: gap_signal(w.posteriors(m, r), w.y[r]),
    "lira": lira_attack,
    "rmia": rmia_attack,
}


def auc(world: World, attack, model, members, nonmembers) -> float:
    rows = np.concatenate([members, nonmembers])
    scores = ATTACK_FUNCTIONS[attack](world, model, rows)
    assert np.isfinite(scores).all()
    return roc_auc_score(np.arange(len(rows)) < len(members), scores)


def test_the_synthetic_target_overfits(world):
    def accuracy(rows):
        return (world.posteriors(world.overfit, rows).argmax(1) == world.y[rows]).float().mean().item()
    assert accuracy(world.members) > 0.95
    assert accuracy(world.nonmembers) < 0.7


@pytest.mark.parametrize("attack", list(ATTACK_FUNCTIONS))
def test_attack_detects_members_of_an_overfit_model(world, attack):
    assert auc(world, attack, world.overfit, world.members, world.nonmembers) > 0.7


@pytest.mark.parametrize("attack", list(ATTACK_FUNCTIONS))
def test_attack_is_at_chance_on_an_untrained_model(world, attack):
    # 1,000 + 1,000 examples: the AUC's standard deviation under the null is about 0.013
    value = auc(world, attack, world.untrained, world.null_members, world.null_nonmembers)
    assert abs(value - 0.5) < 0.05


def test_gap_attack_auc_is_half_the_accuracy_gap(world):
    rows = np.concatenate([world.members, world.nonmembers])
    correct = gap_signal(world.posteriors(world.overfit, rows), world.y[rows])
    is_member = np.arange(len(rows)) < len(world.members)
    expected = 0.5 + (correct[is_member].mean() - correct[~is_member].mean()) / 2
    assert roc_auc_score(is_member, correct) == pytest.approx(expected)


# ---------------------------------------------------------------- hand-computed values

def test_lira_statistic_by_hand():
    target = np.array([3.0, 0.0, 5.0])
    references = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0], [4.0, 9.0, 6.0]])
    out = np.array([[1, 1, 1], [1, 1, 1], [1, 0, 1]], dtype=bool)     # row 3: only 4 and 6 are OUT
    # per example, ddof 1: means 2, 0, 5; std 1, 1, sqrt(2)
    per_example = lira_offline(target, references, out, fixed_variance=False)
    assert per_example == pytest.approx([1.0, 0.0, 0.0])
    # pooled: squares 2 + 2 + 2 over 2 + 2 + 1 degrees of freedom -> std sqrt(6 / 5)
    pooled = lira_offline(np.array([3.0, 1.0, 7.0]), references, out, fixed_variance=True)
    assert pooled == pytest.approx(np.array([1.0, 1.0, 2.0]) / np.sqrt(6 / 5))
    # no OUT signal: undefined
    assert np.isnan(lira_offline(np.array([1.0]), np.array([[1.0]]), np.array([[False]]), True)).all()


def test_offline_marginal_and_rmia_by_hand():
    reference_x = np.array([[0.5, 0.7], [0.5, 0.1]])
    out_x = np.array([[True, False], [True, True]])                   # row 1 only uses 0.5; row 2 mean 0.3
    assert offline_marginal(reference_x, out_x, a=0.0) == pytest.approx([0.75, 0.65])
    assert offline_marginal(reference_x, out_x, a=1.0) == pytest.approx([0.5, 0.3])
    target_x = np.array([0.9, 0.5])
    target_z = np.array([0.6, 0.8, 0.3])
    reference_z = np.array([[0.5], [0.6], [0.2]])
    out_z = np.ones((3, 1), dtype=bool)
    # a = 0: Pr(x) = 0.75, 0.65 -> ratios 1.2, 0.769; Pr(z) = 0.75, 0.8, 0.6 -> ratios 0.8, 1.0, 0.5
    scores = rmia_offline(target_x, reference_x, out_x, target_z, reference_z, out_z, a=0.0)
    assert scores == pytest.approx([1.0, 1 / 3])
    # a = 1: ratios x 1.8, 1.667; z 1.2, 1.333, 1.5
    assert rmia_offline(target_x, reference_x, out_x, target_z, reference_z, out_z, a=1.0) == pytest.approx([1, 1])
    # gamma = 1.3: 1.8 / z-ratios (1.5, 1.35, 1.2) -> two above; 1.667 / ... (1.39, 1.25, 1.11) -> one above
    gamma = rmia_offline(target_x, reference_x, out_x, target_z, reference_z, out_z, a=1.0, gamma=1.3)
    assert gamma == pytest.approx([2 / 3, 1 / 3])


def test_rmia_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    target_x, target_z = rng.random(50), rng.random(80)
    reference_x, reference_z = rng.random((50, 4)), rng.random((80, 4))
    out_x, out_z = rng.random((50, 4)) < 0.7, rng.random((80, 4)) < 0.5
    out_x[:, 0] = out_z[:, 0] = True
    a, gamma = 0.4, 1.1
    scores = rmia_offline(target_x, reference_x, out_x, target_z, reference_z, out_z, a, gamma)
    ratio_x = target_x / (((1 + a) * (reference_x * out_x).sum(1) / out_x.sum(1) + 1 - a) / 2)
    ratio_z = target_z / (((1 + a) * (reference_z * out_z).sum(1) / out_z.sum(1) + 1 - a) / 2)
    assert scores == pytest.approx((ratio_x[:, None] / ratio_z[None, :] > gamma).mean(1))


def test_metric_signals_by_hand():
    p = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    labels = torch.tensor([0, 1])
    assert metric_signal(p, labels, "loss") == pytest.approx(np.log([0.9, 0.1]))
    assert metric_signal(p, labels, "entropy") == pytest.approx([0.9 * np.log(0.9) + 0.1 * np.log(0.1)] * 2)
    # Mentr = -(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)
    assert modified_entropy(p, labels) == pytest.approx([-0.2 * np.log(0.9), -1.8 * np.log(0.1)])
    three = torch.tensor([[0.2, 0.5, 0.3]])
    expected = -(0.8 * np.log(0.2)) - 0.5 * np.log(0.5) - 0.3 * np.log(0.7)
    assert modified_entropy(three, torch.tensor([0])) == pytest.approx([expected])
    assert metric_signal(three, torch.tensor([1]), "confidence") == pytest.approx([0.0], abs=1e-6)  # logit(0.5)
    assert gap_signal(torch.cat([three, three]), torch.tensor([1, 0])).tolist() == [1.0, 0.0]


def test_signals_keep_resolution_for_saturated_float32_probabilities():
    logits = torch.tensor([[30.0, 0.0], [50.0, 0.0]])
    p = logits.softmax(1)
    assert p[0, 0].item() == p[1, 0].item() == 1.0                      # float32 cannot tell them apart
    labels = torch.tensor([0, 0])
    for metric in METRICS:
        values = metric_signal(p, labels, metric)
        assert np.isfinite(values).all() and values[1] > values[0], metric
    assert log_true_probability(p, labels) == pytest.approx([-np.exp(-30.0), -np.exp(-50.0)], rel=1e-4)


def test_signals_stay_finite_on_truncated_releases():
    top1 = torch.tensor([[0.0, 0.8, 0.0], [0.6, 0.0, 0.0]])           # e.g. a top-1 release
    labels = torch.tensor([0, 0])
    for metric in METRICS:
        assert np.isfinite(metric_signal(top1, labels, metric)).all(), metric


def test_class_thresholds_shift_scores_to_zero():
    signal = np.array([5.0, 4.0, 1.0, 0.0, 10.0, 9.0, 3.0, 2.0])
    members = np.array([1, 1, 0, 0, 1, 1, 0, 0], dtype=bool)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    thresholds = metric_thresholds(signal, members, labels, 2, per_class=True)
    assert 1.0 < thresholds[0] <= 4.0 and 3.0 < thresholds[1] <= 9.0
    shifted = shifted_scores(signal, labels, thresholds)
    assert ((shifted >= 0) == members).all()
    assert membership_metrics(shifted, members, 0.0)["balanced_acc"] == 1.0


def test_attack_mlps_train_independently_with_unequal_data():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(3, 200, 2, generator=generator)
    members = torch.stack([inputs[0, :, 0] > 0.5, inputs[1, :, 1] > 0.3, inputs[2, :, 0] < 0.5])
    weights = torch.ones(3, 200)
    weights[2, 40:] = 0                                                  # model 2 sees only 40 examples
    models, thresholds = fit_attack_mlps(inputs, members, weights, hidden=5, optimizer="adam", lr=0.05, epochs=60,
                                         batch_size=32, generator=generator)
    predicted = models.member_probability(inputs) >= thresholds.unsqueeze(1)
    accuracy = ((predicted == members).float() * weights).sum(1) / weights.sum(1)
    assert (accuracy > 0.9).all(), accuracy


def test_simulations_use_each_reference_as_target(world):
    pool_signal = np.stack([np.random.default_rng(k).random(len(world.pool)) for k in range(4)])
    pool_signal[0, world.in_mask[0]] += 10                                   # model 0 leaks its members completely
    scores, members = simulated_lira(pool_signal, world.in_mask, fixed_variance=True)
    assert len(scores) == 4 * len(world.pool)                                # every row has an OUT reference
    first = slice(0, len(world.pool))
    assert roc_auc_score(members[first], scores[first]) == 1.0
    probability = 1 / (1 + np.exp(-pool_signal))
    scores, members = simulated_rmia(probability, world.in_mask, np.arange(len(world.pool)), a=0.5, gamma=1.0)
    assert roc_auc_score(members[first], scores[first]) > 0.99


# ---------------------------------------------------------------- data roles

def test_shadow_and_reference_rows_come_from_the_pool_only():
    sizes = script_settings("partition", clients=3, client_size=200, test_size=100, eval_size=150, known_size=100,
                            defense_reference_size=50, shadow_pool_size=1500)
    partition = split_roles(3000, sizes, seed=4)
    forbidden = set(partition.members) | set(partition.eval_nonmembers) | set(partition.all_defense_reference)
    pool = set(partition.shadow_pool)
    shokri = shokri_shadow_rows(partition.shadow_pool, script_settings("shokri", num_shadows=9, shadow_size=1000), 4)
    rows_in, rows_out = ml_leaks_shadow_rows(partition.shadow_pool,
                                          script_settings("ml_leaks", shadow_in=700, shadow_out=700), 4)
    in_mask = reference_membership(partition.shadow_pool, 8, seed=4)
    used = [set(shokri.ravel()), set(rows_in), set(rows_out)] + [set(partition.shadow_pool[m]) for m in in_mask]
    for rows in used:
        assert rows <= pool and not rows & forbidden
    assert not set(rows_in) & set(rows_out)
    assert all(len(set(r[:500]) & set(r[500:])) == 0 for r in shokri)       # a shadow's in and out are disjoint
    assert (in_mask.sum(0) == 4).all()                                       # each pool row is in half the models
    assert (in_mask[0] ^ in_mask[1]).all()


def test_too_small_a_pool_is_a_clear_error():
    from toolkit.errors import P2Error
    with pytest.raises(P2Error, match="SHADOW_SIZE"):
        shokri_shadow_rows(np.arange(100), script_settings("shokri", shadow_size=200), seed=0)
    with pytest.raises(P2Error, match="SHADOW_IN"):
        ml_leaks_shadow_rows(np.arange(100), script_settings("ml_leaks", shadow_in=60, shadow_out=60), seed=0)
    with pytest.raises(P2Error, match="NUM_REFERENCE = 3: must be at least 4"):
        script_settings("reference", num_reference=3)


# ---------------------------------------------------------------- the stages end to end

E2E_PARTITION = dict(clients=3, client_size=60, test_size=60, eval_size=90, known_size=30, defense_reference_size=20,
                     shadow_pool_size=360)


@pytest.fixture
def e2e(tmp_path, monkeypatch):
    """A full (non-quick) run of a synthetic "adult" whose FL model overfits, with small constants; the
    partition, the FL model and an untrained "p2" model are written directly."""
    from FL_model_generation.fedavg import federated_training
    from toolkit.checkpoints import save_checkpoint
    from toolkit.run import Run

    monkeypatch.setenv("P2_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("P2_RESULTS_DIR", str(tmp_path / "results"))
    features, labels = noisy_data(800, seed=3)
    dataset = Dataset("adult", features.numpy(), labels.numpy(), 2, fingerprint="synthetic")
    for module in (shadow_attacks, reference_attacks, __import__("data_partitioning")):
        monkeypatch.setattr(module, "load_dataset", lambda name, data_dir=None: dataset)
    run = Run("adult", seed=0, quick=False)
    fl = script_settings("fl", architecture=ARCH, rounds=10, local_epochs=10, lr=0.3, momentum=0.0, batch_size=30)
    world = experiment(
        run, dataset, partition=script_settings("partition", **E2E_PARTITION), fl=fl,
        # Shokri's shadows trained like the target, on as many rows as it had; ML-Leaks' centrally
        shokri=script_settings("shokri", num_shadows=3, shadow_size=360, training="fl", attack_epochs=40,
                               p2_aware=False),
        ml_leaks=script_settings("ml_leaks", shadow_in=60, shadow_out=60, shadow_epochs=60, shadow_batch_size=30,
                                 shadow_lr=0.01, attack_epochs=40, p2_aware=False),
        reference=script_settings("reference", num_reference=4, p2_aware=False))
    from data_partitioning import load_partition, write_partition
    write_partition(run, world.partition)
    partition = load_partition(run)
    clients = [(features[rows], labels[rows]) for rows in partition.clients]
    meta = {"dataset": "adult", "seed": 0, "quick": False, "architecture": fl.architecture, "round": fl.rounds}
    save_checkpoint(run.fl_final_path, federated_training(clients, fl, seed=0), meta)
    torch.manual_seed(0)
    save_checkpoint(run.p2_global_path, build_model(fl.architecture).state_dict(), meta)  # an untrained "p2"
    return world, partition


def attack_stages(world, attacks=pipeline.ATTACKS[1:], targets=("fl", "p2")):
    """The attack suite's stages (shadow and reference models, then scores) against these targets."""
    return [stage for stage in pipeline.stages(world, tuple(attacks))
            if stage.group in ("shokri", "ml_leaks", "reference") and stage.target in (None, *targets)
            and not stage.name.startswith("server attacks")]  # the server's, on P2 and on the trained defenses


def test_stages_write_every_score_file_and_detect_the_leak(e2e):
    from reporting.summary import attack_metrics
    world, partition = e2e
    run = world.run
    stages = attack_stages(world)
    names = [stage.name for stage in stages]
    assert names[0] == "shokri shadow models" and names[3] == "ml_leaks shadow models"
    assert names[6:11] == ["reference membership"] + [f"reference model {k}" for k in range(4)]
    assert all(runner.staleness(stage) == "not made yet" for stage in stages)
    runner.run(stages)
    assert all(runner.staleness(stage) is None for stage in attack_stages(world))
    rows = np.concatenate([partition.eval_members, partition.eval_nonmembers])
    for attack in pipeline.ATTACKS[1:]:
        for target in ("fl", "p2"):
            arrays, meta = load_arrays(run.score_path(attack, target))
            assert {"attack", "target", "dataset", "seed", "quick", "settings", "threshold"} <= meta.keys()
            assert (arrays["rows"] == rows).all() and arrays["is_member"].sum() == len(partition.eval_members)
        leak, chance = attack_metrics(run, attack, "fl")["auc"], attack_metrics(run, attack, "p2")["auc"]
        assert leak > 0.62, (attack, leak)                                   # label-free attacks: about 0.7
        assert abs(chance - 0.5) < 0.15, (attack, chance)                    # 90 + 90 examples: loose bound


def test_cached_shadow_and_reference_rows_avoid_members_and_evaluation(e2e):
    world, partition = e2e
    run = world.run
    runner.run(attack_stages(world, ["shokri", "ml_leaks", "lira"], targets=("fl",)))
    forbidden = set(partition.members) | set(partition.eval_nonmembers) | set(partition.eval_members)
    pool = set(partition.shadow_pool)
    shokri, _ = load_arrays(shadow_attacks.rows_path(run, "shokri"))
    ml_leaks, _ = load_arrays(shadow_attacks.rows_path(run, "ml_leaks"))
    reference, _ = load_arrays(reference_attacks.membership_path(run))
    for rows in (shokri["rows"], ml_leaks["rows_in"], ml_leaks["rows_out"], reference["pool"]):
        assert set(rows.ravel()) <= pool and not set(rows.ravel()) & forbidden


def test_changing_a_constant_reruns_only_what_depends_on_it(e2e):
    from dataclasses import replace as changed

    world, _ = e2e
    run = world.run
    selected = ["shokri", "loss", "lira"]

    def stale(world):
        return {stage.name: runner.staleness(stage) is not None
                for stage in attack_stages(world, selected, targets=("fl",))}

    runner.run(attack_stages(world, selected, targets=("fl",)))
    world = changed(world, shokri=changed(world.shokri, attack_lr=0.02))               # attack models only
    assert stale(world) == {"shokri shadow models": False, "reference membership": False,
                            **{f"reference model {k}": False for k in range(4)}, "shokri attack on fl": True,
                            "loss attack on fl": False, "lira attack on fl": False}
    world = changed(world, reference=changed(world.reference, lira_fixed_variance=False))
    assert [name for name, value in stale(world).items() if value] == ["shokri attack on fl", "lira attack on fl"]
    kept = [reference_attacks.reference_path(run, k).stat().st_mtime_ns for k in range(4)]
    world = changed(world, reference=changed(world.reference, num_reference=6))
    assert [name for name, value in stale(world).items() if value] == [
        "shokri attack on fl", "reference membership", "reference model 4", "reference model 5", "loss attack on fl",
        "lira attack on fl"]
    runner.run(attack_stages(world, ["loss"], targets=("fl",)))  # two more models: the four already trained are kept
    assert [reference_attacks.reference_path(run, k).stat().st_mtime_ns for k in range(4)] == kept
    assert reference_attacks.reference_path(run, 5).is_file()
    assert all(runner.staleness(stage) is None for stage in attack_stages(world, ["loss"], targets=("fl",)))


def test_unknown_attack_is_a_clear_error(e2e):
    from toolkit.errors import P2Error
    world, _ = e2e
    with pytest.raises(P2Error, match="unknown attack"):
        pipeline.stages(world, ("shokri", "nope"))


def test_defended_releases_are_attacked_through_their_release(e2e):
    from reporting.summary import attack_metrics
    world, _ = e2e
    run = world.run
    runner.run(attack_stages(world, targets=("fl", "output_noise", "top1")))
    for attack in pipeline.ATTACKS[1:]:
        for name in ("output_noise", "top1"):
            arrays, meta = load_arrays(run.score_path(attack, name))
            assert np.isfinite(arrays["scores"]).all() and meta["defense"]["kind"] in ("output_noise", "top_k")
            assert 0 <= attack_metrics(run, attack, name)["auc"] <= 1
    # a top-1 release keeps every label: the label-only attack sees exactly what it saw before
    gap_fl, _ = load_arrays(run.score_path("gap", "fl"))
    gap_top1, _ = load_arrays(run.score_path("gap", "top1"))
    assert (gap_fl["scores"] == gap_top1["scores"]).all()
    # the loss attack still reads the released top probability of correctly classified examples
    assert attack_metrics(run, "loss", "top1")["auc"] > 0.55
