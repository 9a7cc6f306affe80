"""DP-SGD inside every client of FedAvg: sample-level (eps, delta)-DP of each client's data.

The FL recipe is the undefended model's (same architecture, rounds, batch size, same initial weights); the
learning rate, clipping norm, local epochs and momentum are tuned per target eps on a validation split of the
clients' data (dp_tuning.py); only the local update changes. Each
local step is the step Opacus (DPOptimizer, loss_reduction="mean") and torch.optim.SGD take, with the
same random draws for the same seed (tests/test_defenses.py compares the two):
- Poisson sampling: each local step takes every client example independently with probability
  q = batch / client size, drawn from the client's generator exactly as Opacus'
  UniformWithReplacementSampler draws it; round(client size / batch) steps per local epoch; an empty
  batch is a step of noise alone, as in Opacus;
- per-example gradients clipped to MAX_GRAD_NORM jointly over all parameters, summed, plus Gaussian
  noise of std noise_multiplier * MAX_GRAD_NORM drawn parameter by parameter as Opacus' DPOptimizer
  draws it, divided by the expected batch size; then the SGD (+ momentum) step, the learning rate
  decaying per local epoch;
- the noise multiplier is computed ONCE for the whole budget: every round x local epoch x step
  (opacus.accountants.utils.get_noise_multiplier, RDP accountant), for delta = 1 / (DELTA_FACTOR x
  client size) < 1 / client size;
- each client keeps one Opacus RDPAccountant across rounds (a DPClient); the (eps, delta) it actually
  spent is written into the checkpoint meta.
Per-example gradients of Linear layers are never materialised: example i's gradient of a Linear weight is
the outer product of the layer's output gradient d_i and input a_i, so its norm is ||d_i|| ||a_i|| and
the clipped sum is (c * d)^T a; one forward and one backward pass (torch.func.vjp, layer output by layer
output) give every d_i, where Opacus' ghost clipping takes a second backward pass. Convolutions get their
(small) per-example gradients from unfolded inputs.
All clients of a round step together, each with its own generators and accountant: batched over clients
with torch.func.vmap, or one client after another where that is faster (CNNs; batched_over_clients).
Deterministic under the seed: the sampler and the noise draw from generators derived from the seed;
nothing reads the global random state after initialisation. Opacus' secure_mode (a cryptographically
secure, unseedable noise source that also resists floating-point attacks on the noise) is therefore not
reproduced: fine for experiments, not for a deployment.
Output: model/<dataset>/<run>/dp_eps<E>/final.pt.
"""
import functools
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.func import vjp, vmap
from torch.nn import functional as F

from FL_model_generation.models import build_model, load_state
from FL_model_generation.training import FLSettings
from other_attack_and_defend.defended_fedavg import federated_training
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
    """One DP-SGD model: the target eps for the whole training, how delta is set, the clipping norm, and the
    learning rate (None: the FL one). dp_tuning.Candidate makes them from a tuned recipe."""
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
    """Refuse, by layer name, what the per-example gradients below do not cover: they handle an nn.Sequential
    (what build_model makes) whose only parameters sit in Linear and plain Conv2d layers."""
    if not isinstance(model, nn.Sequential):
        raise P2Error(f"DP-SGD cannot train a {type(model).__name__}: it trains nn.Sequential models as "
                      f"build_model makes")
    problems = []
    for name, module in model.named_children():
        if isinstance(module, nn.Conv2d):
            if (module.groups != 1 or module.dilation != (1, 1) or module.padding_mode != "zeros"
                    or isinstance(module.padding, str)):
                problems.append(f"{name} (only zero-padded, undilated convolutions with groups=1 and numeric padding)")
        elif not isinstance(module, nn.Linear) and (list(module.parameters()) or list(module.buffers())):
            problems.append(f"{name} ({type(module).__name__} has parameters or buffers)")
    if problems:
        raise P2Error(f"DP-SGD cannot train this architecture: {', '.join(problems)}; "
                      f"use a model whose only parameters are in Linear and Conv2d layers")


class ClippedGradientSum:
    """For one client's batch: the sum of the per-example gradients of all parameters, each example's clipped
    to norm max_grad_norm over all parameters jointly, as Opacus clips (factor min(1, max_grad_norm /
    (norm + 1e-6)), the norm taken over the per-parameter norms). Rows of weight 0 (padding) add nothing.

    One forward pass, then one backward pass for the gradients with respect to every layer's output (a chain
    of torch.func.vjp calls, one per Linear/Conv2d layer, so it also runs under vmap over clients); the
    weights' gradients follow from those: a Linear layer's per-example weight gradient d a^T is never
    formed (its norm is ||d|| ||a||, the clipped sum is (c * d)^T a), a convolution's is formed from the
    unfolded input. `channels_last` keeps images in that layout, in which max-pooling is much faster on the
    CPU (not available under vmap)."""

    def __init__(self, architecture: dict, example_shape: tuple[int, ...], max_grad_norm: float,
                 channels_last: bool = False):
        model = build_model(architecture)
        check_compatible(model)
        self.names = [name for name, _ in model.named_parameters()]  # Opacus draws noise in this order
        self.max_grad_norm = max_grad_norm
        self.channels_last = channels_last
        self.stages, operations = [], []  # stage: (parameterless modules, then one (name, Linear/Conv2d))
        for name, module in model.named_children():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                self.stages.append((self._pool_first(operations), name, module))
                operations = []
            else:
                operations.append(module)
        self.head = operations
        with torch.no_grad():
            x = torch.zeros(1, *example_shape)
            for operations, name, module in self.stages:
                x = self._apply(operations, x)
                if isinstance(module, nn.Linear) and x.dim() != 2:
                    raise P2Error(f"DP-SGD: {name} sees inputs of shape {tuple(x.shape[1:])}; per-example gradients "
                                  f"are computed for flat Linear inputs only")
                x = module(x)

    @staticmethod
    def _pool_first(operations: list[nn.Module]) -> list[nn.Module]:
        """ReLU then max-pooling as max-pooling then ReLU, so that the ReLU and its gradient handle a quarter of
        the values: the same outputs and the same gradients, ties included (where the window's maximum is
        positive, both route the gradient to its first maximum; where it is not, both give zero)."""
        operations = list(operations)
        for index in range(len(operations) - 1):
            first, second = operations[index:index + 2]
            if type(first) is nn.ReLU and type(second) is nn.MaxPool2d and not second.return_indices:
                operations[index:index + 2] = [second, first]
        return operations

    @staticmethod
    def _apply(operations: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
        for module in operations:
            x = module(x)
        return x

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def _layer(self, name: str, module: nn.Module, params: dict, x: torch.Tensor) -> torch.Tensor:
        if isinstance(module, nn.Linear):
            return F.linear(x, params[f"{name}.weight"], params.get(f"{name}.bias"))
        return self._layout(F.conv2d(x, params[f"{name}.weight"], params.get(f"{name}.bias"), module.stride,
                                     module.padding))

    def __call__(self, params: dict, x: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> dict:
        x = self._layout(x)
        operations, name, module = self.stages[0]
        inputs = [self._apply(operations, x)]
        output = self._layer(name, module, params, inputs[0])
        pullbacks = []
        for operations, name, module in self.stages[1:]:
            def stage(previous, operations=operations, name=name, module=module):
                layer_input = self._apply(operations, previous)
                return self._layer(name, module, params, layer_input), layer_input
            output, pullback, layer_input = vjp(stage, output, has_aux=True)
            inputs.append(layer_input)
            pullbacks.append(pullback)

        def loss(logits):
            return (F.cross_entropy(self._apply(self.head, logits), labels, reduction="none") * weights).sum()

        value, pullback = vjp(loss, output)
        output_grads = [pullback(torch.ones_like(value))[0]]
        for pullback in reversed(pullbacks):
            output_grads.append(pullback(self._layout(output_grads[-1]))[0])
        output_grads = [self._layout(output_grad) for output_grad in reversed(output_grads)]

        norms, per_layer = [], []  # per-example norms of every parameter's gradient, in Opacus' order
        for (_, name, module), layer_input, output_grad in zip(self.stages, inputs, output_grads):
            if isinstance(module, nn.Linear):  # example i: weight gradient d_i a_i^T, bias gradient d_i
                output_norms = torch.linalg.vector_norm(output_grad, dim=1)
                norms.append(output_norms * torch.linalg.vector_norm(layer_input, dim=1))
                per_layer.append((name, module, layer_input, output_grad))
            else:
                weight_grads = self._conv_weight_grads(module, layer_input, output_grad)
                bias_grads = output_grad.sum((2, 3))
                norms.append(torch.stack([torch.linalg.vector_norm(piece, dim=(1, 2)) for piece in weight_grads],
                                         dim=1).norm(2, dim=1))
                output_norms = torch.linalg.vector_norm(bias_grads, dim=1)
                per_layer.append((name, module, weight_grads, bias_grads))
            if f"{name}.bias" in params:
                norms.append(output_norms)
        factors = (self.max_grad_norm / (torch.stack(norms, dim=1).norm(2, dim=1) + 1e-6)).clamp(max=1.0)
        sums = {}
        for name, module, first, second in per_layer:
            if isinstance(module, nn.Linear):
                scaled = second * factors[:, None]
                sums[f"{name}.weight"], sums[f"{name}.bias"] = scaled.T @ first, scaled.sum(0)
            else:  # first: per kernel row, (examples, out channels, kernel columns x in channels)
                out_channels, in_channels, rows, columns = params[f"{name}.weight"].shape
                summed = torch.stack([(factors @ piece.flatten(1)).view(out_channels, -1) for piece in first], dim=1)
                summed = summed.view(out_channels, rows, columns, in_channels).permute(0, 3, 1, 2).contiguous()
                sums[f"{name}.weight"], sums[f"{name}.bias"] = summed, factors @ second
        return {name: sums[name] for name in self.names}

    @staticmethod
    def _conv_weight_grads(module: nn.Conv2d, layer_input: torch.Tensor, output_grad: torch.Tensor) -> list:
        """Per-example weight gradients, one tensor (examples, out channels, kernel columns x in channels) per
        kernel row: the output gradient times the input windows. Only the column windows are copied (kernel
        size times the input, not its square); each kernel row's windows are a view of them."""
        rows, columns = module.kernel_size
        row_stride, column_stride = module.stride
        padding_rows, padding_columns = module.padding
        if padding_rows or padding_columns:
            layer_input = F.pad(layer_input, (padding_columns, padding_columns, padding_rows, padding_rows))
        examples, _, out_rows, out_columns = output_grad.shape
        # (examples, input rows, output columns, kernel columns, in channels)
        windows = layer_input.permute(0, 2, 3, 1).unfold(2, columns, column_stride).transpose(3, 4).contiguous()
        output_grad = output_grad.flatten(2)
        return [torch.bmm(output_grad, windows[:, row:row + row_stride * (out_rows - 1) + 1:row_stride]
                          .reshape(examples, out_rows * out_columns, -1)) for row in range(rows)]


def batched_over_clients(architecture: dict) -> bool:
    """Whether local_round batches the clients' steps with torch.func.vmap (else: a loop over the clients)."""
    # Batched for models without convolutions: vmap makes each client's convolution one grouped convolution,
    # slower on this CPU than the loop (MNIST CNN: the loop 1.5x faster; Adult MLP: batching 2.0x faster;
    # benchmarks/bench_dp_sgd.py prints both).
    return not any(isinstance(module, nn.Conv2d) for module in build_model(architecture).modules())


class GradientSums:
    """Clipped gradient sums of several clients' Poisson batches at once, stacked over the clients."""

    def __init__(self, architecture: dict, example_shape: tuple[int, ...], max_grad_norm: float,
                 batched: bool | None = None):
        self.batched = batched_over_clients(architecture) if batched is None else batched
        self.clipped = ClippedGradientSum(architecture, example_shape, max_grad_norm, channels_last=not self.batched)
        self.names = self.clipped.names
        self._vmapped = vmap(self.clipped)

    def prepare(self, features: torch.Tensor) -> torch.Tensor:
        """A client's features in the layout the sums work in (once per round, not once per batch)."""
        return self.clipped._layout(features)

    def __call__(self, params: dict, data: list[tuple[torch.Tensor, torch.Tensor]],
                 batches: list[torch.Tensor]) -> dict:
        """`params` stacked over the clients of `data`, batches[i] indexing client i's rows; a batch is padded
        with the client's first row at weight 0 (to the widest batch, or to one row when it is empty)."""
        width = max(1, *(len(batch) for batch in batches)) if self.batched else 0
        parts = []
        for (features, labels), batch in zip(data, batches):
            padding = max(width, 1, len(batch)) - len(batch)
            index = torch.cat([batch, batch.new_zeros(padding)])
            parts.append((features[index], labels[index], torch.cat([torch.ones(len(batch)), torch.zeros(padding)])))
        if self.batched:
            return self._vmapped(params, *(torch.stack(part) for part in zip(*parts)))
        sums = [self.clipped({name: tensor[client] for name, tensor in params.items()}, *part)
                for client, part in enumerate(parts)]
        return {name: torch.stack([client_sums[name] for client_sums in sums]) for name in self.names}


class DPClient:
    """One client's DP-SGD state across rounds: its noise multiplier and sample rate, and the RDP accountant
    and step count that record what it has spent."""

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

    def poisson_batch(self, generator: torch.Generator) -> torch.Tensor:
        """The next batch of Opacus' UniformWithReplacementSampler(num_samples=client_size, sample_rate, generator)."""
        return (torch.rand(self.client_size, generator=generator) < self.sample_rate).nonzero().reshape(-1)

    def noise(self, shape: torch.Size, generator: torch.Generator) -> torch.Tensor | None:
        """Opacus' _generate_noise(std=noise_multiplier * max_grad_norm, secure_mode=False); None for std 0."""
        std = self.noise_multiplier * self.dp.max_grad_norm
        return torch.normal(mean=0, std=std, size=shape, generator=generator, dtype=torch.float32) if std else None

    def record_step(self) -> None:
        """The accountant hook Opacus' optimizer calls after each step (empty batches included)."""
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        self.steps += 1

    def spent(self) -> dict:
        """(eps, delta) spent so far according to this client's accountant, with what produced it."""
        delta = self.dp.delta(self.client_size)
        eps = float(self.accountant.get_epsilon(delta=delta, alphas=list(ALPHAS))) if self.steps else 0.0
        return {"eps": eps, "delta": delta, "steps": self.steps, "rounds": self.rounds,
                "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate}


def local_round(global_state: dict, data: list[tuple[torch.Tensor, torch.Tensor]], clients: list[DPClient],
                settings: FLSettings, generators: list[torch.Generator], batched: bool | None = None) -> list[dict]:
    """Every client's local DP-SGD update of one round, all clients stepping together from `global_state`;
    client k samples from generators[k] and draws noise from a generator derived from its seed, as the
    Opacus client did. Returns the clients' state dicts; their accountants record the steps."""
    if not len(data) == len(clients) == len(generators) or not clients:
        raise P2Error(f"local_round needs one DPClient and one generator per client: {len(data)} clients, "
                      f"{len(clients)} DPClients, {len(generators)} generators")
    for index, (client, (_, labels)) in enumerate(zip(clients, data)):
        if len(labels) != client.client_size:
            raise P2Error(f"DPClient {index} was built for {client.client_size} examples but client {index} has "
                          f"{len(labels)}; build one DPClient per client of this partition")
        if client.expected_batch_size != settings.batch_size:
            raise P2Error(f"DPClient {index} was built for batch {client.expected_batch_size}, "
                          f"not {settings.batch_size}")
    dp = clients[0].dp
    if any(client.dp != dp for client in clients):
        raise P2Error("the clients of one DP-SGD model must share its DPSettings")
    sums = GradientSums(settings.architecture, tuple(data[0][0].shape[1:]), dp.max_grad_norm, batched)
    data = [(sums.prepare(features), labels) for features, labels in data]
    names = sums.names
    if set(global_state) != set(names):
        raise P2Error(f"the global model's entries {sorted(global_state)} are not the model's parameters {names}")
    params = {name: torch.stack([global_state[name]] * len(clients)).float() for name in names}
    momentum = {name: torch.zeros_like(tensor) for name, tensor in params.items()} if settings.momentum else None
    noise_generators = [torch_generator(generator.initial_seed(), "dp-noise") for generator in generators]
    steps = [steps_per_epoch(client.client_size, settings.batch_size) for client in clients]
    lr = dp.lr or settings.lr
    for epoch in range(settings.local_epochs):
        epoch_lr = lr * settings.lr_decay ** epoch
        for step in range(max(steps)):
            active = [k for k in range(len(clients)) if step < steps[k]]  # a client with fewer steps waits
            rows = None if len(active) == len(clients) else torch.tensor(active)
            batches = [clients[k].poisson_batch(generators[k]) for k in active]
            stacked = params if rows is None else {name: tensor[rows] for name, tensor in params.items()}
            gradients = sums(stacked, [data[k] for k in active], batches)
            for position, k in enumerate(active):
                for name in names:  # Opacus: noise parameter by parameter, then divide by the expected batch
                    noise = clients[k].noise(gradients[name].shape[1:], noise_generators[k])
                    if noise is not None:
                        gradients[name][position] += noise
                clients[k].record_step()
            for name in names:  # torch.optim.SGD (dampening 0, no Nesterov, no weight decay)
                gradient = gradients[name].div_(settings.batch_size)
                param = stacked[name]
                if momentum is not None:
                    buffer = momentum[name] if rows is None else momentum[name][rows]
                    # from a zero buffer, the first step's buffer is the gradient, as torch.optim.SGD sets it
                    gradient = buffer.mul_(settings.momentum).add_(gradient)
                    if rows is not None:
                        momentum[name][rows] = buffer
                param.add_(gradient, alpha=-epoch_lr)
                if rows is not None:
                    params[name][rows] = param
    for client in clients:
        client.rounds += 1
    return [{name: params[name][k].clone() for name in names} for k in range(len(clients))]


def opacus_local_update(client: DPClient, state_dict: dict, features: torch.Tensor, labels: torch.Tensor,
                        settings: FLSettings, generator: torch.Generator) -> dict:
    """One client's local update done by Opacus itself (ghost clipping, DPOptimizerFastGradientClipping, its
    Poisson sampler on `generator`, noise from the same derived generator): the reference local_round must
    equal, kept for tests/test_defenses.py and benchmarks/bench_dp_sgd.py, not for training."""
    from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import GradSampleModuleFastGradientClipping
    from opacus.optimizers.optimizer_fast_gradient_clipping import DPOptimizerFastGradientClipping
    from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    model = load_state(build_model(settings.architecture), state_dict, "the global model")
    model.train()
    lr = client.dp.lr or settings.lr
    opacus_logger = logging.getLogger("opacus")
    level = opacus_logger.level
    opacus_logger.setLevel(logging.WARNING)  # Opacus logs its clipping mode at INFO for every wrap
    try:
        wrapped = GradSampleModuleFastGradientClipping(model, loss_reduction="mean",
                                                       max_grad_norm=client.dp.max_grad_norm, use_ghost_clipping=True)
    finally:
        opacus_logger.setLevel(level)
    optimizer = DPOptimizerFastGradientClipping(
        torch.optim.SGD(wrapped.parameters(), lr=lr, momentum=settings.momentum),
        noise_multiplier=client.noise_multiplier, max_grad_norm=client.dp.max_grad_norm,
        expected_batch_size=client.expected_batch_size, loss_reduction="mean",
        generator=torch_generator(generator.initial_seed(), "dp-noise"))
    optimizer.attach_step_hook(client.accountant.get_optimizer_hook_fn(sample_rate=client.sample_rate))
    criterion = DPLossFastGradientClipping(wrapped, optimizer, nn.CrossEntropyLoss(), loss_reduction="mean")
    sampler = UniformWithReplacementSampler(num_samples=client.client_size, sample_rate=client.sample_rate,
                                            generator=generator,
                                            steps=steps_per_epoch(client.client_size, settings.batch_size))
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
                client.steps += 1
    wrapped.remove_hooks()
    client.rounds += 1
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def dp_federated_training(data: list[tuple[torch.Tensor, torch.Tensor]], fl: FLSettings, seed: int,
                          clients: list[DPClient], test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                          description: str = "DP-SGD", on_round=None) -> dict:
    """FedAvg (defended_fedavg.federated_training: the same initial weights, per round and client generators,
    sample-weighted mean) with each round's local updates done by local_round for all clients together;
    returns the final global state dict. `on_round(round, global state, client states)` sees every round."""
    return federated_training(data, fl, seed,
                              lambda round_index, state, data, generators: local_round(state, data, clients, fl,
                                                                                       generators),
                              test_data=test_data, description=description, on_round=on_round)


def checkpoint_meta(run: Run, fl: FLSettings, dp: DPSettings, clients: list[DPClient]) -> dict:
    spent = [client.spent() for client in clients]
    return {"dataset": run.dataset, "architecture": fl.architecture, "round": fl.rounds, "seed": run.seed,
            "quick": run.quick, "role": target_name(dp.target_eps),
            "settings": {"fl": fl.constants(), "dp": dp.as_dict()},
            "target_eps": dp.target_eps, "accountant": ACCOUNTANT, "alphas": list(ALPHAS), "dp_level": "example",
            "eps": max(s["eps"] for s in spent), "delta": max(s["delta"] for s in spent), "clients": spent}
