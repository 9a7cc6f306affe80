"""DP-SGD with Opacus inside every client of FedAvg: sample-level (eps, delta)-DP of each client's data.

The FL recipe is the undefended model's (same architecture, rounds, local epochs, batch size,
learning rate unless DP_LR overrides it, same initial weights); only the local update changes:
- Poisson sampling: each local step takes every client example independently with probability
  q = batch / client size (Opacus' UniformWithReplacementSampler), round(client size / batch)
  steps per local epoch;
- per-example gradients clipped to MAX_GRAD_NORM (Opacus' ghost clipping: per-example gradient
  norms without materialising per-example gradients), then Gaussian noise of std
  noise_multiplier * MAX_GRAD_NORM on their sum (Opacus' DPOptimizer), divided by the expected batch;
- the noise multiplier is computed ONCE for the whole budget: every round x local epoch x step
  (opacus.accountants.utils.get_noise_multiplier, RDP accountant), for delta = 1 / (DELTA_FACTOR x
  client size) < 1 / client size;
- each client keeps one RDPAccountant across rounds (a stateful client object is passed to
  federated_training); the (eps, delta) it actually spent is written into the checkpoint meta.
Deterministic under the seed: the sampler and the noise draw from generators derived from the
seed (Opacus takes them as arguments); nothing reads the global random state after initialisation.
Opacus' secure_mode (a cryptographically secure, unseedable noise source that also resists floating-
point attacks on the noise) is therefore off: fine for experiments, turn it on for a deployment.
Output: model/<dataset>/<run>/dp_eps<E>/final.pt.
"""
import functools
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from FL_model_generation.models import build_model, load_state
from FL_model_generation.training import FLSettings
from toolkit.checkpoints import save_checkpoint
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.seeding import torch_generator

log = logging.getLogger(__name__)
ACCOUNTANT = "rdp"
# RDP orders: Opacus' defaults plus larger ones, so the tightest order is inside the range for small
# budgets over few steps (Opacus warns otherwise); used for the noise multiplier and the reported eps alike.
ALPHAS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 96, 128, 192, 256, 384, 512, 1024])


@dataclass(frozen=True)
class DPSettings:
    """One DP-SGD model (checked where its constants are, in BaselineDefenseSettings): the target eps for
    the whole training, how delta is set, the clipping norm, and the learning rate (None: the FL one)."""
    target_eps: float
    delta_factor: float
    max_grad_norm: float
    lr: float | None

    def as_dict(self) -> dict:
        return asdict(self)

    def delta(self, client_size: int) -> float:
        return 1.0 / (self.delta_factor * client_size)


def target_name(eps: float) -> str:
    """The model's key in summary.json: dp_eps1, dp_eps0.5, ..."""
    return f"dp_eps{eps:g}"


def model_path(run: Run, eps: float) -> Path:
    return run.model_dir / target_name(eps) / "final.pt"


def sample_rate(client_size: int, batch_size: int) -> float:
    return min(1.0, batch_size / client_size)


def steps_per_epoch(client_size: int, batch_size: int) -> int:
    return max(1, round(client_size / batch_size))


def total_steps(fl: FLSettings, client_size: int) -> int:
    """DP-SGD steps one client takes over the whole training."""
    return fl.rounds * fl.local_epochs * steps_per_epoch(client_size, fl.batch_size)


def noise_multiplier_for(dp: DPSettings, fl: FLSettings, client_size: int) -> float:
    """The noise multiplier that spends exactly the target eps (to Opacus' tolerance) over all steps."""
    try:
        return _noise_multiplier(float(dp.target_eps), dp.delta(client_size), sample_rate(client_size, fl.batch_size),
                                 total_steps(fl, client_size))
    except ValueError as error:
        raise P2Error(f"no noise multiplier reaches eps={dp.target_eps} ({error}); raise the eps in DP_TARGET_EPS") from None


@functools.lru_cache(maxsize=64)
def _noise_multiplier(target_eps: float, delta: float, rate: float, steps: int) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=target_eps, target_delta=delta, sample_rate=rate, steps=steps,
                                      accountant=ACCOUNTANT, alphas=list(ALPHAS)))


def spent_epsilon(noise_multiplier: float, rate: float, steps: int, delta: float) -> float:
    """eps of `steps` Poisson-subsampled Gaussian steps, from a fresh RDP accountant (independent check)."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, rate, steps)]
    return float(accountant.get_epsilon(delta=delta, alphas=list(ALPHAS)))


def check_compatible(model: nn.Module) -> None:
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise P2Error(f"DP-SGD cannot train this architecture: {errors}; use a model without such layers")


class DPClient:
    """One client's local DP-SGD update, called once per round by federated_training; keeps its
    privacy accountant (and step count) across rounds."""

    def __init__(self, dp: DPSettings, noise_multiplier: float, client_size: int, batch_size: int):
        from opacus.accountants import RDPAccountant

        self.dp = dp
        self.noise_multiplier = noise_multiplier
        self.client_size = client_size
        self.sample_rate = sample_rate(client_size, batch_size)
        self.expected_batch_size = batch_size
        self.accountant = RDPAccountant()
        self.steps = 0
        self.rounds = 0

    def __call__(self, state_dict: dict, features: torch.Tensor, labels: torch.Tensor, settings: FLSettings,
                 generator: torch.Generator) -> dict:
        from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import \
            GradSampleModuleFastGradientClipping
        from opacus.optimizers.optimizer_fast_gradient_clipping import DPOptimizerFastGradientClipping
        from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler

        if len(labels) != self.client_size:
            raise P2Error(f"DP client built for {self.client_size} examples was given {len(labels)}; "
                          f"build one DPClient per client of this partition")
        if settings.batch_size != self.expected_batch_size:
            raise P2Error(f"DP client built for batch {self.expected_batch_size} was given batch {settings.batch_size}")
        model = load_state(build_model(settings.architecture), state_dict, "the global model")
        check_compatible(model)
        model.train()
        lr = self.dp.lr or settings.lr
        opacus_logger = logging.getLogger("opacus")
        level = opacus_logger.level
        opacus_logger.setLevel(logging.WARNING)  # Opacus logs its clipping mode at INFO for every wrap
        try:
            wrapped = GradSampleModuleFastGradientClipping(model, loss_reduction="mean",
                                                           max_grad_norm=self.dp.max_grad_norm, use_ghost_clipping=True)
        finally:
            opacus_logger.setLevel(level)
        optimizer = DPOptimizerFastGradientClipping(
            torch.optim.SGD(wrapped.parameters(), lr=lr, momentum=settings.momentum),
            noise_multiplier=self.noise_multiplier, max_grad_norm=self.dp.max_grad_norm,
            expected_batch_size=self.expected_batch_size, loss_reduction="mean",
            generator=torch_generator(generator.initial_seed(), "dp-noise"))
        optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate))
        criterion = DPLossFastGradientClipping(wrapped, optimizer, nn.CrossEntropyLoss(), loss_reduction="mean")
        sampler = UniformWithReplacementSampler(num_samples=self.client_size, sample_rate=self.sample_rate,
                                                generator=generator,
                                                steps=steps_per_epoch(self.client_size, settings.batch_size))
        with warnings.catch_warnings():
            # Opacus' backward hooks on the first layer see inputs that need no gradient: harmless
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            for epoch in range(settings.local_epochs):
                for group in optimizer.param_groups:
                    group["lr"] = lr * settings.lr_decay ** epoch
                for batch in sampler:
                    batch = torch.as_tensor(batch, dtype=torch.long)
                    optimizer.zero_grad()
                    criterion(wrapped(features[batch]), labels[batch]).backward()
                    optimizer.step()
                    self.steps += 1
        wrapped.remove_hooks()
        self.rounds += 1
        return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}

    def spent(self) -> dict:
        """(eps, delta) spent so far according to this client's accountant, with what produced it."""
        delta = self.dp.delta(self.client_size)
        eps = float(self.accountant.get_epsilon(delta=delta, alphas=list(ALPHAS))) if self.steps else 0.0
        return {"eps": eps, "delta": delta, "steps": self.steps, "rounds": self.rounds,
                "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate}


def checkpoint_meta(run: Run, fl: FLSettings, dp: DPSettings, clients: list[DPClient]) -> dict:
    spent = [client.spent() for client in clients]
    return {"dataset": run.dataset, "architecture": fl.architecture, "round": fl.rounds, "seed": run.seed,
            "quick": run.quick, "role": target_name(dp.target_eps),
            "settings": {"fl": fl.constants(), "dp": dp.as_dict()},
            "target_eps": dp.target_eps, "accountant": ACCOUNTANT, "alphas": list(ALPHAS),
            "eps": max(s["eps"] for s in spent), "delta": max(s["delta"] for s in spent), "clients": spent}


def train_dp_model(run: Run, fl: FLSettings, dp: DPSettings) -> dict:
    """FedAvg with one DPClient per client; writes the final global model; returns its meta.

    `fl` and `dp` are the settings to use as given (already quick-reduced where wanted)."""
    from data_partitioning import load_partition, tensors
    from data_preprocessing import load_dataset
    from FL_model_generation.fedavg import federated_training

    check_compatible(build_model(fl.architecture))
    dataset = load_dataset(run.dataset, run.data_dir)
    partition = load_partition(run)
    data = [tensors(dataset, rows) for rows in partition.clients]
    noise = {size: noise_multiplier_for(dp, fl, size) for size in sorted({len(rows) for rows in partition.clients})}
    clients = [DPClient(dp, noise[len(rows)], len(rows), fl.batch_size) for rows in partition.clients]
    log.info("DP-SGD eps=%g: noise multiplier %.4f, sample rate %.4f, %d steps per client, delta %.2e",
             dp.target_eps, clients[0].noise_multiplier, clients[0].sample_rate,
             total_steps(fl, len(partition.clients[0])), dp.delta(len(partition.clients[0])))
    final_state = federated_training(data, fl, run.seed, client_updates=clients,
                                     test_data=tensors(dataset, partition.test),
                                     description=f"DP-SGD eps={dp.target_eps:g} {run.dataset}")
    meta = checkpoint_meta(run, fl, dp, clients)
    save_checkpoint(model_path(run, dp.target_eps), final_state, meta)
    log.info("DP-SGD model written to %s: spent eps %.3f (target %g), delta %.2e", model_path(run, dp.target_eps),
             meta["eps"], dp.target_eps, meta["delta"])
    return meta
