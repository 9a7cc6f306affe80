"""One seed drives every random choice: each consumer derives its own stream from it by name."""
import hashlib

import numpy as np
import torch


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed for the stream `names` (for example ("fedavg", round, client)) under `seed`."""
    text = "/".join([str(seed), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def numpy_rng(seed: int, *names: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *names))


def torch_generator(seed: int, *names: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *names))


def seed_torch(seed: int, *names: object) -> None:
    """Seed torch's global generator, used by layer initialisation and dropout."""
    torch.manual_seed(derive_seed(seed, *names))
