"""The identity of one experiment run: dataset, seed, preset, and the folders it reads and writes."""
from dataclasses import dataclass
from pathlib import Path

from toolkit import paths


@dataclass(frozen=True)
class Run:
    dataset: str
    seed: int = 0
    quick: bool = False
    data_dir: str | None = None

    @property
    def name(self) -> str:
        return paths.run_name(self.seed, self.quick)

    @property
    def model_dir(self) -> Path:
        """Checkpoints and partition of this run: model/<dataset>/<run>/."""
        return paths.model_root() / self.dataset / self.name

    @property
    def results_dir(self) -> Path:
        """Metrics, scores and plots of this run: results/<dataset>/<run>/."""
        return paths.results_root() / self.dataset / self.name

    @property
    def partition_path(self) -> Path:
        return self.model_dir / "partition.npz"

    def fl_global_path(self, round_index: int) -> Path:
        return self.model_dir / "fl" / f"round{round_index:03d}" / "global.pt"

    def fl_client_path(self, round_index: int, client: int) -> Path:
        return self.model_dir / "fl" / f"round{round_index:03d}" / f"client{client:03d}.pt"

    @property
    def fl_final_path(self) -> Path:
        return self.model_dir / "fl" / "final.pt"

    def p2_client_path(self, client: int) -> Path:
        return self.model_dir / "p2" / f"client{client:03d}.pt"

    @property
    def p2_global_path(self) -> Path:
        return self.model_dir / "p2" / "global.pt"

    def score_path(self, attack: str, target: str) -> Path:
        """Membership scores of one attack against one target: results/<dataset>/<run>/scores/."""
        return self.results_dir / "scores" / f"{attack}__{target}.npz"
