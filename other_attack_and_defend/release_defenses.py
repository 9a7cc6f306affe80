"""Release-time defenses: they change only what the FL model releases, so each is a Target on the FL
checkpoint, attacked by the same code as every other model.

- OutputNoiseTarget: Gaussian noise (sigma = 1/eps of the original "DP-scheme") on the released
  logits and, for the white-box attacker, on every per-example gradient. This is output
  perturbation, NOT differential privacy: it comes with no (eps, delta) guarantee.
  The noise of a query is a function of (run seed, target name, queried row) only: the same row
  always receives the same noise (re-asking does not average it away), whatever the batch it is
  asked in, and no global random state is touched.
- TopKTarget: only the k largest probabilities are released, the others are 0 (no white-box view).
"""
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from FL_model_generation.models import predict_logits
from other_attack_and_defend.targets import Target
from toolkit.errors import P2Error
from toolkit.seeding import derive_seed


# --- keyed Gaussian noise: counter-based, vectorised, no global random state -------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
NOISE_CHUNK_ELEMENTS = 2 ** 22  # noise values drawn per vectorised step, bounds peak memory


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, elementwise on uint64 arrays (arithmetic wraps modulo 2**64)."""
    z = z ^ (z >> np.uint64(30))
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


def row_keys(rows: torch.Tensor, key: int) -> np.ndarray:
    """One uint64 per row of `rows` (N, ...): a hash of the row's bytes, position by position, and `key`."""
    data = np.ascontiguousarray(rows.detach().cpu().numpy()).reshape(len(rows), -1)
    raw = data.view(np.uint8)
    if raw.shape[1] % 8:
        raw = np.pad(raw, ((0, 0), (0, 8 - raw.shape[1] % 8)))
    words = np.ascontiguousarray(raw).view(np.uint64)
    positions = _mix64((np.arange(words.shape[1], dtype=np.uint64) + np.uint64(1)) * _GOLDEN)
    digest = _mix64(words ^ positions).sum(axis=1, dtype=np.uint64)
    return _mix64(digest ^ np.uint64(key))


def _normal_chunks(keys: np.ndarray, count: int, stream: int):
    """(start, stop, float32 standard normals (stop - start, count)) over row chunks of `keys`.

    Value j of row i is Box-Muller on two 24-bit uniforms from SplitMix64(mix(keys[i] ^ stream) + (j + 1)
    x golden): it depends only on (keys[i], stream, j); |value| <= 5.77 (2**-24 resolution of u1)."""
    bases = _mix64(keys ^ np.uint64(stream))
    counters = (np.arange(count, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
    rows_per_chunk = max(1, NOISE_CHUNK_ELEMENTS // max(count, 1))
    for start in range(0, len(keys), rows_per_chunk):
        stop = min(start + rows_per_chunk, len(keys))
        bits = _mix64(bases[start:stop, None] + counters)
        u1 = ((bits >> np.uint64(40)).astype(np.float32) + np.float32(1)) * np.float32(2.0 ** -24)  # (0, 1]
        u2 = (bits & np.uint64(0xFFFFFF)).astype(np.float32) * np.float32(2.0 * math.pi * 2.0 ** -24)
        np.log(u1, out=u1)
        u1 *= np.float32(-2)
        np.sqrt(u1, out=u1)
        np.cos(u2, out=u2)
        u1 *= u2
        yield start, stop, u1


def keyed_normal(keys: np.ndarray, count: int, stream: int) -> torch.Tensor:
    """(N, count) standard normal float32 values; row i depends only on (keys[i], stream)."""
    out = np.empty((len(keys), count), dtype=np.float32)
    for start, stop, values in _normal_chunks(keys, count, stream):
        out[start:stop] = values
    return torch.from_numpy(out)


def add_keyed_normal(values: torch.Tensor, keys: np.ndarray, stream: int, scale: float) -> torch.Tensor:
    """A copy of `values` (N, ...) plus `scale` x keyed_normal(keys, entries per row, stream), without
    materialising the whole noise tensor."""
    noisy = values.detach().reshape(len(values), -1).to(torch.float32).clone()
    target = noisy.numpy()
    for start, stop, normals in _normal_chunks(keys, target.shape[1], stream):
        normals *= np.float32(scale)
        target[start:stop] += normals
    return noisy.reshape(values.shape).to(values.dtype)


@dataclass(frozen=True)
class OutputNoiseTarget(Target):
    """Output perturbation (the original's "DP-scheme"; not differential privacy): N(0, sigma^2) noise on
    every released logit and, in the white-box view, on every per-example gradient entry; the attacker's
    loss is computed from the noisy logits it receives."""
    sigma: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if not self.sigma > 0:
            raise P2Error(f"output noise sigma={self.sigma} must be positive (sigma = 1 / OUTPUT_NOISE_EPS)")

    def _stream(self, *names: object) -> int:
        return derive_seed(self.seed, "output-noise", self.name, *names)

    def logit_noise(self, queried: torch.Tensor, num_classes: int) -> torch.Tensor:
        """The noise (N, C) added to the logits of the queried rows (N, ...)."""
        return self.sigma * keyed_normal(row_keys(queried, self._stream("rows")), num_classes, self._stream("logits"))

    def noisy_logits(self, logits: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Logits plus noise keyed by the queried rows (`features`), or by the logits themselves if not given."""
        queried = logits if features is None else features
        if len(queried) != len(logits):
            raise P2Error(f"output noise: {len(queried)} feature rows for {len(logits)} logit rows")
        return logits + self.logit_noise(queried, logits.shape[1]).to(logits.dtype)

    def release(self, logits: torch.Tensor, generator: torch.Generator | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax of the noisy logits. The noise is the defender's, keyed by the query: `generator` is ignored."""
        return self.noisy_logits(logits, features).softmax(1)

    def perturb_gradients(self, gradients: dict, generator: torch.Generator | None = None,
                          features: torch.Tensor | None = None) -> dict:
        """Each per-example gradient entry plus N(0, sigma^2), keyed by (row, parameter name, entry)."""
        if not gradients:
            return gradients
        queried = next(iter(gradients.values())) if features is None else features
        keys = row_keys(queried, self._stream("rows"))
        noisy = {}
        for name, values in gradients.items():
            if len(values) != len(keys):
                raise P2Error(f"output noise: gradients of {name} have {len(values)} rows for {len(keys)} queries")
            noisy[name] = add_keyed_normal(values, keys, self._stream("gradient", name), self.sigma)
        return noisy

    @property
    def exact_gradients(self) -> bool:
        """False: noise on every entry leaves no rank-one structure, the gradients must be materialised."""
        return False

    def perturb_losses(self, losses: torch.Tensor, model: torch.nn.Module, features: torch.Tensor,
                       labels: torch.Tensor) -> torch.Tensor:
        logits = self.noisy_logits(predict_logits(model, features), features)
        return nn.functional.cross_entropy(logits, labels, reduction="none").to(losses.dtype)

    def describe(self) -> dict:
        return {"kind": "output_noise", "sigma": self.sigma}


@dataclass(frozen=True)
class TopKTarget(Target):
    """Only the k largest probabilities of each score vector are released; the others read 0."""
    k: int = 1
    whitebox: bool = False

    def __post_init__(self):
        if self.k < 1:
            raise P2Error(f"top-k release with k={self.k}: k must be at least 1 (TOP_K)")

    def release(self, logits: torch.Tensor, generator: torch.Generator | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        probs = logits.softmax(1)
        if self.k >= probs.shape[1]:
            raise P2Error(f"top-{self.k} release of {probs.shape[1]} classes releases everything; "
                          f"use k < {probs.shape[1]} in TOP_K")
        values, indices = probs.topk(self.k, dim=1)
        return torch.zeros_like(probs).scatter(1, indices, values)

    def describe(self) -> dict:
        return {"kind": "top_k", "k": self.k}
