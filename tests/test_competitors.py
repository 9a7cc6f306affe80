"""The competitor defenses, each by its defining property: HAMP's soft labels have the stated entropy and its
output modification keeps every label; MemGuard keeps every label, stays within its L1 budget in expectation
and moves the defender's classifier toward 0.5; RelaxLoss ascends below alpha and flattens as specified, with a
global epoch parity; AdvReg's inference model sees the client's members against the client's own reference rows
and the classifier's loss adds lambda times the gain; DP-FedAvg clips to C and adds noise of the stated sigma,
and its accountant agrees with Opacus; the DP-SGD search reads only the clients' rows and records every
candidate."""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from FL_model_generation.models import build_model
from FL_model_generation.stacked_training import Recipe, train_stacked
from FL_model_generation.training import FLSettings
from other_attack_and_defend import advreg, dp_fedavg, dp_tuning, hamp, memguard, relaxloss
from other_attack_and_defend.defense_suite import family
from toolkit.checkpoints import save_checkpoint

MLP = {"kind": "mlp", "sizes": [6, 16, 4]}


pytestmark = pytest.mark.usefixtures("one_thread")


def fl_settings(**changes) -> FLSettings:
    values = dict(architecture=MLP, rounds=2, local_epochs=1, lr=0.1, lr_decay=1.0, momentum=0.0, batch_size=8)
    values.update(changes)
    return FLSettings(**values)


def toy(rows: int, seed: int, classes: int = 4):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 6, generator=generator), torch.randint(0, classes, (rows,), generator=generator)


# ---------------------------------------------------------------- HAMP

@pytest.mark.parametrize("classes, gamma, official", [(2, 0.8, 0.75), (10, 0.95, 0.26), (30, 0.5, 0.68),
                                                      (100, 0.8, 0.33)])
def test_hamp_soft_labels_have_the_stated_entropy_and_keep_the_label_on_top(classes, gamma, official):
    top1 = hamp.top1_value(classes, gamma)
    assert top1 == pytest.approx(official)  # the values the official get_top1 gives (notes §1a)
    labels = torch.arange(12) % classes
    targets = hamp.soft_labels(labels, classes, top1)
    threshold = gamma * math.log(classes)
    assert torch.allclose(targets.sum(1), torch.ones(12))
    assert (targets.argmax(1) == labels).all() and (targets.max(1).values > targets.min(1).values).all()
    assert (hamp.entropy(targets.double()) >= threshold - 1e-12).all()
    # the search's previous step (0.01 more at the label) is still below the threshold: the first to reach it
    assert float(hamp.entropy(hamp.soft_labels(labels[:1], classes, top1 + 0.01).double())) < threshold


@pytest.mark.filterwarnings("ignore:reduction. .mean. divides")  # the official reduction, on purpose
def test_hamp_loss_is_the_official_mean_reduced_loss_times_k():
    outputs, labels = torch.randn(8, 5), torch.arange(8) % 5
    top1, alpha = hamp.top1_value(5, 0.9), 0.01
    log_p = outputs.log_softmax(1)
    official = F.kl_div(log_p, hamp.soft_labels(labels, 5, top1)) - alpha * hamp.entropy(log_p.exp()).mean()
    assert float(hamp.hamp_loss(outputs, labels, top1, alpha).mean()) == pytest.approx(5 * float(official), rel=1e-5)


def test_hamp_output_modification_keeps_every_label_and_permutes_a_random_inputs_scores():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(100, 5, generator=generator)
    logits[0] = torch.tensor([2.0, 2.0, 0.0, -1.0, 1.0])          # a tie at the top: the label is the first
    logits[1] = torch.tensor([1.0, 2.0, 0.0, -1.0, -2.0])         # label 1, runner-up 0 ...
    random_logits = torch.randn(100, 5, generator=generator)
    random_logits[1] = torch.tensor([3.0, 3.0, 1.0, 0.0, -2.0])   # ... and a random input whose top two tie
    calls = []

    def draw(count):
        calls.append(count)
        return random_logits[:count] if len(calls) == 1 else torch.randn(count, 5, generator=generator)

    released = hamp.release_with(logits, draw)
    assert torch.equal(released.argmax(1), logits.argmax(1))
    assert torch.allclose(released.sum(1), torch.ones(100))
    assert calls[1:2] == [1]  # only row 1, whose label the tie would have moved, got a new random input
    for row in range(2, 100):  # the random input's scores, in the query's rank order
        assert torch.allclose(released[row].sort().values, random_logits[row].softmax(0).sort().values)
        assert torch.equal(released[row].argsort(), logits[row].argsort())
    assert released[0, 0] > released[0, 1]  # the first of the tied entries keeps the top


def test_hamp_target_releases_through_its_own_model_and_keeps_labels(tmp_path):
    torch.manual_seed(0)
    model = build_model(MLP)
    spec = {"kind": "uniform", "low": -1.0, "high": 1.0, "shape": [6]}
    path = tmp_path / "hamp" / "final.pt"
    save_checkpoint(path, model.state_dict(), {"architecture": MLP, "random_input": spec})
    target = hamp.HampTarget("hamp", path, seed=0)
    assert target.whitebox and target.inputs == ()
    features, _ = toy(64, 1)
    with torch.no_grad():
        logits = model(features)
    released = target.release(logits, torch.Generator().manual_seed(5))
    assert torch.equal(released.argmax(1), logits.argmax(1))
    again = hamp.draw_random_inputs(spec, 64, torch.Generator().manual_seed(5))
    assert again.min() >= -1 and again.max() <= 1
    with torch.no_grad():
        expected = model(again).softmax(1).sort(1).values
    assert torch.allclose(released.sort(1).values, expected, atol=1e-6)


# ---------------------------------------------------------------- MemGuard

@pytest.fixture(scope="module")
def guard():
    """A defender classifier that separates confident (member) from flat (non-member) score vectors."""
    generator = torch.Generator().manual_seed(0)
    members = (torch.randn(300, 4, generator=generator) * 3).softmax(1)
    nonmembers = (torch.randn(300, 4, generator=generator) * 0.7).softmax(1)
    inputs = torch.cat([members, nonmembers]).sort(1).values
    classifier = memguard.train_classifier(inputs, torch.arange(600) < 300, epochs=15, lr=0.2, batch_size=32, seed=0)
    for parameter in classifier.parameters():
        parameter.requires_grad_(False)
    queries = torch.randn(120, 4, generator=generator) * 2.5
    return classifier, queries, memguard.phase_one(classifier, queries, max_iterations=60)


def test_memguard_keeps_every_label(guard):
    classifier, queries, noisy = guard
    assert torch.equal(noisy.argmax(1), queries.argmax(1))
    for budget in (0.1, 1.0):
        released = memguard.phase_two(queries.softmax(1), noisy, classifier, budget, torch.Generator().manual_seed(1))
        assert torch.equal(released.argmax(1), queries.argmax(1))


def test_memguard_moves_the_defenders_classifier_toward_one_half(guard):
    classifier, queries, noisy = guard
    original = queries.softmax(1)
    changed = (noisy - original).abs().sum(1) > 1e-6
    assert changed.float().mean() > 0.5
    before = classifier(original.sort(1).values)[changed]
    after = classifier(noisy.sort(1).values)[changed]
    # phase I stops once g (on the perturbed vector in the query's sorted order) has crossed 0.5; re-sorted, as
    # phase II and the attacks see it, nearly every vector is closer to 0.5
    assert ((after - 0.5).abs() < (before - 0.5).abs()).float().mean() > 0.9
    assert (after - 0.5).abs().mean() < 0.5 * (before - 0.5).abs().mean()


def test_memguard_stays_within_its_l1_budget_in_expectation(guard):
    classifier, queries, noisy = guard
    original = queries.softmax(1)
    distortion = (noisy - original).abs().sum(1)
    for budget in (0.05, 0.3, 2.0):
        probability = memguard.release_probability(original, noisy, classifier, budget)
        assert ((probability * distortion) <= budget + 1e-6).all()
        generator = torch.Generator().manual_seed(2)
        draws = torch.stack([(memguard.phase_two(original, noisy, classifier, budget, generator) - original).abs().sum(1)
                             for _ in range(200)])
        assert draws.mean(0).max() <= budget + 4 * distortion.max() / math.sqrt(200)
        assert draws.mean() <= budget + 0.05


def test_memguard_target_declares_its_classifier_and_releases_labels_unchanged(guard, tmp_path):
    classifier, queries, _ = guard
    path = tmp_path / "defense_classifier.pt"
    save_checkpoint(path, classifier.state_dict(), {"num_classes": 4})
    target = memguard.MemGuardTarget("memguard", tmp_path / "fl.pt", classifier=path, budget=1.0, max_iterations=50)
    assert not target.whitebox and target.inputs == (path,)
    released = target.release(queries[:40], torch.Generator().manual_seed(0))
    assert torch.equal(released.argmax(1), queries[:40].argmax(1))
    assert target.describe()["budget"] == 1.0


# ---------------------------------------------------------------- RelaxLoss

def test_relaxloss_ascends_below_alpha_and_descends_above_it_in_even_epochs():
    outputs = torch.randn(1, 16, 4, requires_grad=True)
    labels = torch.randint(0, 4, (1, 16), generator=torch.Generator().manual_seed(0))
    weight = torch.ones(1, 16)
    cross_entropy = F.cross_entropy(outputs[0], labels[0])
    ce_gradient, = torch.autograd.grad(cross_entropy, outputs)
    level = float(cross_entropy.detach())
    for alpha, sign in ((level + 0.5, -1.0), (level - 0.5, 1.0)):
        loss = relaxloss.relaxloss_batch_loss(outputs, labels, weight, 0, alpha, 1.0)
        assert float(loss.detach()) == pytest.approx(abs(level - alpha), rel=1e-5)
        gradient, = torch.autograd.grad(loss.sum(), outputs)
        assert torch.allclose(gradient, sign * ce_gradient, atol=1e-6)   # below alpha: gradient ASCENT


def test_relaxloss_flattens_in_odd_epochs_below_alpha():
    generator = torch.Generator().manual_seed(1)
    outputs, labels = torch.randn(2, 8, 5, generator=generator) * 3, torch.randint(0, 5, (2, 8), generator=generator)
    targets = relaxloss.flattened_targets(outputs, labels, upper=0.3)
    probabilities = outputs.softmax(-1)
    on_label = targets.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(on_label, probabilities.gather(-1, labels.unsqueeze(-1)).squeeze(-1).clamp(max=0.3))
    off_label = targets.masked_fill(F.one_hot(labels, 5).bool(), float("nan"))
    assert torch.allclose(off_label.nanmean(-1), (1 - on_label) / 4) and torch.allclose(targets.sum(-1), torch.ones(2, 8))
    weight = torch.ones(2, 8)
    mean_loss = F.cross_entropy(outputs.flatten(0, 1), labels.flatten(), reduction="none").view(2, 8).mean(1)
    alpha = float(mean_loss.mean())  # one model's batch above alpha, one below (the rule is per model)
    above = mean_loss > alpha
    assert above.any() and (~above).any()
    loss = relaxloss.relaxloss_batch_loss(outputs, labels, weight, 3, alpha, 0.3)
    flattened = -(targets * outputs.log_softmax(-1)).sum(-1).mean(1)
    assert torch.allclose(loss, torch.where(above, mean_loss, flattened))


def test_relaxloss_epoch_parity_counts_local_epochs_across_rounds(monkeypatch):
    seen = []
    real = relaxloss.relaxloss_batch_loss

    def spy(outputs, labels, weight, epoch, alpha, upper):
        seen.append(epoch)
        return real(outputs, labels, weight, epoch, alpha, upper)

    monkeypatch.setattr(relaxloss, "relaxloss_batch_loss", spy)
    fl = fl_settings(local_epochs=1)
    point = relaxloss.RelaxLossPoint("relaxloss", alpha=0.5, upper=1.0)
    start = build_model(MLP).state_dict()
    for round_index in (1, 2, 3):
        relaxloss.local_round(fl, point, round_index, start, [toy(16, 0)], [torch.Generator().manual_seed(0)])
    assert sorted(set(seen)) == [0, 1, 2]  # one local epoch per round still alternates


def test_a_batch_loss_equal_to_the_mean_trains_as_the_per_example_loss():
    data = [toy(20, 0), toy(14, 1)]
    starts = [build_model(MLP).state_dict() for _ in data]
    recipe = Recipe("sgd", lr=0.1, epochs=2, batch_size=8, momentum=0.9)

    def mean_loss(outputs, labels, weight, epoch):
        losses = F.cross_entropy(outputs.flatten(0, 1), labels.flatten(), reduction="none").view_as(weight)
        return (losses * weight).sum(1) / weight.sum(1).clamp_min(1)

    plain = train_stacked(build_model(MLP), starts, [x for x, _ in data], [y for _, y in data], recipe,
                          [torch.Generator().manual_seed(k) for k in range(2)])
    hooked = train_stacked(build_model(MLP), starts, [x for x, _ in data], [y for _, y in data], recipe,
                           [torch.Generator().manual_seed(k) for k in range(2)], batch_loss=mean_loss)
    for first, second in zip(plain, hooked):
        assert all(torch.allclose(first[name], second[name], atol=1e-6) for name in first)


# ---------------------------------------------------------------- AdvReg

def test_advreg_classifier_loss_adds_lambda_times_the_gain():
    torch.manual_seed(0)
    model, inference = build_model(MLP), advreg.InferenceModel(4)
    features, labels = toy(16, 2)
    total, cross_entropy, gain = advreg.classifier_loss(model, inference, features, labels, lam=3.0)
    with torch.no_grad():
        expected_gain = inference(model(features), labels).mean() - 0.5
    total_value, ce_value, gain_value = (float(value.detach()) for value in (total, cross_entropy, gain))
    assert gain_value == pytest.approx(float(expected_gain)) and total_value == pytest.approx(ce_value + 3.0 * gain_value)
    plain, _, _ = advreg.classifier_loss(model, inference, features, labels, lam=0.0)
    with_gain = torch.autograd.grad(total, list(model.parameters()))
    without = torch.autograd.grad(plain, list(model.parameters()))
    assert any(not torch.allclose(a, b) for a, b in zip(with_gain, without))  # the gain reaches the classifier


def test_advreg_inference_model_learns_members_against_the_clients_own_reference_rows(monkeypatch):
    features, labels = toy(40, 3)
    reference = (torch.randn(12, 6) + 100.0, torch.randint(0, 4, (12,)))  # recognisable rows
    point = advreg.AdvRegPoint("advreg", lam=1.0, attack_steps=3, attack_lr=0.01)
    client = advreg.AdvRegClient(point, reference, num_classes=4, seed=0, client=0)
    seen = []
    real = advreg.attack_loss

    def spy(model, inference, members, nonmembers):
        seen.append((members, nonmembers))
        return real(model, inference, members, nonmembers)

    monkeypatch.setattr(advreg, "attack_loss", spy)
    fl = fl_settings(local_epochs=1)
    start = build_model(MLP).state_dict()
    client.local_update(start, features, labels, fl, round_index=2, generator=torch.Generator().manual_seed(0))
    assert len(seen) == 3 * math.ceil(40 / fl.batch_size) == client.attack_steps_taken
    member_rows = {tuple(row.tolist()) for row in features}
    reference_rows = {tuple(row.tolist()) for row in reference[0]}
    for members, nonmembers in seen:
        assert {tuple(row.tolist()) for row in members[0]} <= member_rows
        assert {tuple(row.tolist()) for row in nonmembers[0]} <= reference_rows
    # the warm-up (first local epoch of round 1) trains the classifier alone
    seen.clear()
    client.local_update(start, features, labels, fl, round_index=1, generator=torch.Generator().manual_seed(0))
    assert seen == []


def test_advreg_clients_stacked_equal_the_one_client_loop():
    """Unequal clients (one epoch ends a batch early), a reference set smaller than a batch, two local epochs."""
    data = [toy(20, 4), toy(14, 5), toy(9, 6)]
    references = [toy(5, 7), toy(12, 8), toy(8, 9)]
    point = advreg.AdvRegPoint("advreg", lam=2.0, attack_steps=2, attack_lr=0.01)
    fl = fl_settings(local_epochs=2, momentum=0.9)
    start = build_model(MLP).state_dict()
    stacked = advreg.StackedAdvReg(point, references, num_classes=4, seed=0)
    loop = [advreg.AdvRegClient(point, reference, num_classes=4, seed=0, client=k) for k, reference in enumerate(references)]
    for round_index in (1, 2):
        seeds = [torch.Generator().manual_seed(10 * round_index + k) for k in range(3)]
        together = stacked.local_round(start, data, fl, round_index, seeds)
        seeds = [torch.Generator().manual_seed(10 * round_index + k) for k in range(3)]
        alone = [client.local_update(start, x, y, fl, round_index, generator)
                 for client, (x, y), generator in zip(loop, data, seeds)]
        for first, second in zip(together, alone):
            assert all(torch.allclose(first[name], second[name], atol=1e-5) for name in first)
    for k, client in enumerate(loop):
        assert all(torch.allclose(stacked.client_inference(k).state_dict()[name], value, atol=1e-5)
                   for name, value in client.inference.state_dict().items())


# ---------------------------------------------------------------- DP-FedAvg

def test_dp_fedavg_clips_every_update_to_c():
    generator = torch.Generator().manual_seed(0)
    for scale in (0.01, 1.0, 50.0):
        update = {"a": torch.randn(30, 7, generator=generator) * scale, "b": torch.randn(7, generator=generator) * scale}
        clipped, norm = dp_fedavg.clip_update(update, clip=2.0)
        assert dp_fedavg.flat_norm(clipped) <= 2.0 + 1e-5
        if norm <= 2.0:
            assert all(torch.equal(clipped[name], update[name]) for name in update)
        else:
            assert dp_fedavg.flat_norm(clipped) == pytest.approx(2.0, rel=1e-5)


def test_dp_fedavg_noise_has_the_stated_sigma():
    zero = [{"w": torch.zeros(200, 500), "b": torch.zeros(500)} for _ in range(10)]
    z, clip = 1.3, 0.7
    average, norms = dp_fedavg.noisy_average(zero, clip, z, torch.Generator().manual_seed(4))
    values = torch.cat([tensor.flatten() for tensor in average.values()]).double()
    assert norms == [0.0] * 10
    assert float(values.std()) == pytest.approx(z * clip / 10, rel=0.01) and abs(float(values.mean())) < 1e-3
    again, _ = dp_fedavg.noisy_average(zero, clip, z, torch.Generator().manual_seed(4))
    assert torch.equal(again["w"], average["w"])  # seeded
    same = [{"w": torch.full((3,), 4.0)} for _ in range(10)]
    exact, _ = dp_fedavg.noisy_average(same, clip, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(exact["w"], torch.full((3,), 4.0) * clip / math.sqrt(3 * 16))  # the clipped update


def test_dp_fedavg_accountant_matches_opacus_for_the_same_noise_rate_and_steps():
    from opacus.accountants import RDPAccountant

    delta, rounds = 0.01, 10
    for z in (0.3, 1.0, 4.0):
        accountant = RDPAccountant()
        for _ in range(rounds):
            accountant.step(noise_multiplier=z, sample_rate=1.0)
        assert dp_fedavg.spent_epsilon(z, rounds, delta) == pytest.approx(
            accountant.get_epsilon(delta=delta, alphas=list(dp_fedavg.ALPHAS)), rel=1e-9)
    for target in (8.0, 100.0):
        z = dp_fedavg.noise_multiplier(target, delta, rounds)
        assert target * 0.98 <= dp_fedavg.spent_epsilon(z, rounds, delta) <= target + 1e-6


def test_dp_fedavg_training_records_client_level_privacy(monkeypatch):
    data = [toy(24, k) for k in range(4)]
    state, history = dp_fedavg.dp_fedavg_training(data, fl_settings(), seed=0, z=0.5, clip=0.2)
    assert [h["round"] for h in history] == [1, 2] and all(h["clipped"] <= 4 for h in history)
    assert set(state) == set(build_model(MLP).state_dict())


# ---------------------------------------------------------------- DP-SGD tuning

def test_validation_split_holds_out_part_of_each_clients_own_rows():
    clients = [np.arange(100) + 1000 * k for k in range(3)]
    splits = dp_tuning.validation_split(clients, 0.15, seed=0)
    for rows, (train, held) in zip(clients, splits):
        assert len(held) == 15 and not set(train) & set(held) and set(train) | set(held) == set(rows)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, dp_tuning.validation_split(clients, 0.15, seed=0)))


def test_dp_search_reads_only_the_clients_rows_and_records_every_candidate(tmp_path, monkeypatch):
    import data_partitioning
    from data_partitioning import load_partition, write_partition
    from data_sources.dataset import Dataset
    from tests.helpers import script_settings
    from toolkit.run import Run

    monkeypatch.setenv("P2_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("P2_RESULTS_DIR", str(tmp_path / "results"))
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(700, 6, generator=generator)
    dataset = Dataset("adult", features.numpy(), (features[:, 0] > 0).long().numpy(), 2, fingerprint="synthetic")
    monkeypatch.setattr(data_partitioning, "load_dataset", lambda name, data_dir=None: dataset)
    import data_preprocessing
    monkeypatch.setattr(data_preprocessing, "load_dataset", lambda name, data_dir=None: dataset)
    run = Run("adult", seed=0)
    write_partition(run, script_settings("partition", clients=3, client_size=60, test_size=60, eval_size=40,
                                         known_size=20, defense_reference_size=20, shadow_pool_size=100))
    partition = load_partition(run)
    read = []
    real = data_partitioning.tensors
    monkeypatch.setattr(data_partitioning, "tensors", lambda data, rows: read.append(np.asarray(rows)) or real(data, rows))
    # the accounting is tested in test_defenses.py; Opacus' bisection and RDP orders take seconds per call here
    from other_attack_and_defend import dp_sgd
    monkeypatch.setattr(dp_sgd, "noise_multiplier_for", lambda dp, fl, size: 1.5)
    monkeypatch.setattr(dp_sgd.DPClient, "spent", lambda self: {
        "eps": 7.5, "delta": self.dp.delta(self.client_size), "steps": self.steps, "rounds": self.rounds,
        "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate})
    fl = fl_settings(architecture={"kind": "mlp", "sizes": [6, 8, 2]}, batch_size=10)
    search = dp_tuning.Search(target_eps=8.0, delta_factor=10, validation_fraction=0.2, lrs=(0.1, 0.5),
                              max_grad_norms=(1.0,), local_epochs=(1,), momenta=(0.0,), rounds=1)
    records = [dp_tuning.evaluate_candidate(run, fl, search, candidate) for candidate in search.grid()]
    result = dp_tuning.write_search(run, fl, search)
    assert [c["candidate"] for c in result["candidates"]] == [c.name for c in search.grid()] == ["lr0.1_clip1_ep1_mom0",
                                                                                              "lr0.5_clip1_ep1_mom0"]
    assert result["chosen"]["candidate"] == dp_tuning.choose(records)["candidate"]
    assert all(0 <= c["validation_accuracy"] <= 1 and c["rows"]["validation"] == 36 for c in result["candidates"])
    members = set(partition.members.tolist())
    assert read and all(set(rows.tolist()) <= members for rows in read)  # never a test, evaluation or other row
    meta = dp_tuning.train_tuned(run, fl, search)
    assert meta["recipe"]["lr"] == result["chosen"]["lr"] and meta["dp_level"] == "example"
    assert meta["search"]["file"].endswith("dp_tuning/dp_eps8.json") and meta["settings"]["fl"]["LR"] == meta["recipe"]["lr"]
    assert all(c["noise_multiplier"] == 1.5 and c["steps_per_client"] < c["steps_of_schedule"]
               for c in result["candidates"])  # one of the schedule's two rounds trained


def test_choice_prefers_validation_accuracy_then_grid_order():
    records = [{"validation_accuracy": 0.7, "candidate": "a"}, {"validation_accuracy": 0.8, "candidate": "b"},
               {"validation_accuracy": 0.8, "candidate": "c"}]
    assert dp_tuning.choose(records)["candidate"] == "b"


# ---------------------------------------------------------------- names

def test_model_names_map_back_to_their_defense_and_strength():
    settings = {"hamp": {"HAMP_GAMMA": 0.8}, "relaxloss": {"RELAXLOSS_ALPHA": 0.5}}
    assert family("dp_eps4", settings) == ("dp_sgd", 4.0)
    assert family("dp_fedavg_eps100", settings) == ("dp_fedavg", 100.0)
    assert family("hamp", settings) == ("hamp", 0.8) and family("hamp_g0.95") == ("hamp", 0.95)
    assert family("relaxloss", settings) == ("relaxloss", 0.5) and family("memguard_b0.3") == ("memguard", 0.3)
    assert family("advreg") == ("advreg", None) and family("fl") is None and family("top1") is None


def test_competitor_recipe_changes_only_the_local_epochs():
    from tests.helpers import script_settings

    fl = fl_settings(local_epochs=5)
    assert script_settings("baselines", competitor_local_epochs=None).competitor_recipe(fl) == fl
    assert script_settings("baselines", competitor_local_epochs=1).competitor_recipe(fl) == fl_settings(local_epochs=1)
    assert script_settings("baselines", competitor_local_epochs=9).competitor_recipe(fl) == fl  # never more
    with pytest.raises(Exception, match="COMPETITOR_LOCAL_EPOCHS"):
        script_settings("baselines", competitor_local_epochs=0)
