"""The baseline defenses P2 is compared with, as pipeline stages and attack targets.

- output noise (the original's "DP-scheme", NOT differential privacy): Gaussian noise of
  sigma = 1 / OUTPUT_NOISE_EPS on the FL model's released logits and per-example gradients;
- top-k release of the FL model's probabilities (k in TOP_K; no white-box view);
- DP-SGD with Opacus inside every client (one FL model per target eps in DP_TARGET_EPS).
Constants live in other_attack_and_defend/baseline_defenses_<dataset>.py (SETTINGS); the FL recipe
is the undefended model's (FL_model_generation/FL_model_for_<dataset>.py). Only DP-SGD trains
anything: the other two are views of the undefended model (model/<dataset>/<run>/fl/final.pt).
"""
import importlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from FL_model_generation.fl_stage import effective_settings as effective_fl_settings
from FL_model_generation.training import FLSettings
from other_attack_and_defend import dp_sgd
from toolkit import cli
from toolkit.errors import P2Error
from toolkit.run import Run
from toolkit.targets import OutputNoiseTarget, Target, TopKTarget, base_targets, target_utility

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineDefenseSettings:
    output_noise_eps: float = 0.3               # sigma = 1 / eps; a noise scale, not a DP budget
    top_k: tuple[int, ...] = (1,)               # one top-k release per k (each k < number of classes)
    dp_target_eps: tuple[float, ...] = (1.0, 4.0, 8.0)
    dp_delta_factor: float = 10.0               # delta = 1 / (factor x client size)
    dp_max_grad_norm: float = 1.0
    dp_lr: float | None = None                  # None: the FL learning rate

    def __post_init__(self):
        if not self.output_noise_eps > 0:
            raise P2Error(f"OUTPUT_NOISE_EPS={self.output_noise_eps} must be positive (sigma = 1 / eps)")
        if any(k < 1 for k in self.top_k) or len(set(self.top_k)) != len(self.top_k):
            raise P2Error(f"TOP_K={self.top_k} must list distinct k >= 1")
        if len(set(self.dp_target_eps)) != len(self.dp_target_eps):
            raise P2Error(f"DP_TARGET_EPS={self.dp_target_eps} lists an eps twice")
        self.dp_settings()  # validates the DP constants

    @property
    def output_noise_sigma(self) -> float:
        return 1.0 / self.output_noise_eps

    def dp_settings(self) -> list[dp_sgd.DPSettings]:
        return [dp_sgd.DPSettings(target_eps=float(eps), delta_factor=self.dp_delta_factor,
                                  max_grad_norm=self.dp_max_grad_norm, lr=self.dp_lr)
                for eps in sorted(self.dp_target_eps)]

    def quick(self) -> "BaselineDefenseSettings":
        """The smallest and largest target eps only (still a line on the trade-off plot)."""
        ends = sorted(self.dp_target_eps)
        return replace(self, dp_target_eps=tuple(dict.fromkeys([ends[0], ends[-1]])) if ends else ())

    def as_dict(self) -> dict:
        return asdict(self)


def _settings_module(name: str, what: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        raise P2Error(f"no {what} for this dataset: {name.replace('.', '/')}.py does not exist; "
                      f"write it (see the Adult version)") from None


def settings_for(run: Run) -> BaselineDefenseSettings:
    """SETTINGS of other_attack_and_defend/baseline_defenses_<dataset>.py, quick-reduced for quick runs."""
    settings = _settings_module(f"other_attack_and_defend.baseline_defenses_{run.dataset}",
                                "baseline-defense constants").SETTINGS
    return settings.quick() if run.quick else settings


def fl_settings_for(run: Run) -> FLSettings:
    """The undefended model's FL recipe (quick-reduced for quick runs): the DP-SGD models use it too."""
    settings = _settings_module(f"FL_model_generation.FL_model_for_{run.dataset}", "FL constants").SETTINGS
    return effective_fl_settings(run, settings)


def defense_stages(run: Run) -> list[tuple[str, Callable[[], bool], Callable[[], None]]]:
    """(name, is_done, do) of every defense that trains a model, in order: one DP-SGD model per target eps."""
    settings, fl = settings_for(run), fl_settings_for(run)
    return [(f"DP-SGD eps={dp.target_eps:g}",
             lambda dp=dp: dp_sgd.is_done(run, fl, dp),
             lambda dp=dp: dp_sgd.train_dp_model(run, fl, dp))
            for dp in settings.dp_settings()]


def defended_targets(run: Run) -> list[Target]:
    """Output noise, top-k per k, then DP-SGD per target eps (ascending)."""
    from data_preprocessing import load_dataset

    settings = settings_for(run)
    num_classes = load_dataset(run.dataset, run.data_dir).num_classes
    too_large = [k for k in settings.top_k if k >= num_classes]
    if too_large:
        raise P2Error(f"TOP_K={settings.top_k}: a top-k release with k >= {num_classes} classes of {run.dataset} "
                      f"releases everything; drop {too_large} from TOP_K in baseline_defenses_{run.dataset}.py")
    targets: list[Target] = [OutputNoiseTarget("output_noise", run.fl_final_path, sigma=settings.output_noise_sigma,
                                               seed=run.seed)]
    targets += [TopKTarget(f"top{k}", run.fl_final_path, k=k) for k in settings.top_k]
    targets += [Target(dp_sgd.target_name(dp.target_eps), dp_sgd.model_path(run, dp.target_eps))
                for dp in settings.dp_settings()]
    return targets


def all_targets(run: Run) -> list[Target]:
    """The undefended and P2 models, then every baseline defense."""
    return base_targets(run) + defended_targets(run)


def run_defenses(run: Run, force: bool = False) -> dict:
    """Train what is not up to date; return the released-label utility of every defended target."""
    for name, is_done, do in defense_stages(run):
        if not force and is_done():
            log.info("%s: up to date, skipped", name)
            continue
        do()
    return {target.name: target_utility(run, target) for target in defended_targets(run)}


def stage_main(dataset: str, description: str, argv=None) -> None:
    parser = cli.parser(description, dataset=dataset)
    parser.add_argument("--force", action="store_true", help="retrain the DP-SGD models even if up to date")
    args = parser.parse_args(argv)
    cli.setup_logging(args.verbose)

    def main(_):
        for name, utility in run_defenses(cli.run_from_args(args), args.force).items():
            extra = "".join(f", {key} {utility[key]:.3g}" for key in ("eps", "delta") if key in utility)
            print(f"{name}: train acc {utility['train_acc']:.4f}, test acc {utility['test_acc']:.4f}{extra}")

    cli.main_guard(main)
