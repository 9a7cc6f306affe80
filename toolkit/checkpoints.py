"""Checkpoints and result files: written atomically, checked against what a stage expects.

A checkpoint is {"state_dict": ..., "meta": {...}}; the meta holds plain values only
(dataset, architecture, round, seed, settings) so `torch.load(weights_only=True)` reads it.
"""
import json
import os
import tempfile
from pathlib import Path

import torch

from toolkit.errors import P2Error


TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: a reader sees the old file or the
    new one, never half of one. The temporary name carries the writer's process id, so that files left
    by a killed process can be told from those of a live one (clean_orphans). The file gets the usual
    permissions (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX)
        os.close(fd)
    except OSError as error:
        raise P2Error(f"cannot write {path} ({error.strerror or error}): make {path.parent} writable, or move the "
                      f"output elsewhere (P2_MODEL_DIR / P2_RESULTS_DIR)") from None
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clean_orphans(folder: Path) -> int:
    """Delete temporary files that a killed process left under `folder`; those of live processes stay."""
    removed = 0
    if not Path(folder).is_dir():
        return removed
    for tmp in Path(folder).rglob(f".*{TMP_SUFFIX}"):
        parts = tmp.name.split(".")
        pid = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_checkpoint(path: Path, state_dict: dict, meta: dict) -> None:
    """state_dict on the CPU plus meta; inside a stage, meta also gets the stage's `made_from`."""
    from toolkit.stages import provenance_for

    state = {name: tensor.detach().cpu().clone() for name, tensor in state_dict.items()}
    provenance = provenance_for(path)
    if provenance is not None:
        meta = {**meta, "made_from": provenance}
    _atomic_write(Path(path), lambda tmp: torch.save({"state_dict": state, "meta": meta}, tmp))


def load_checkpoint(path: Path, expect: dict | None = None) -> tuple[dict, dict]:
    """Return (state_dict, meta); `expect` lists meta values the caller relies on."""
    path = Path(path)
    if not path.is_file():
        raise P2Error(f"checkpoint {path} does not exist: run the stage that writes it first")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise P2Error(f"checkpoint {path} cannot be read ({error}); delete it and rerun its stage") from None
    if not isinstance(content, dict) or not {"state_dict", "meta"} <= content.keys():
        raise P2Error(f"{path} is not a checkpoint of this toolkit; delete it and rerun its stage")
    check_meta(path, content["meta"], expect or {})
    return content["state_dict"], content["meta"]


def check_meta(path: Path, meta: dict, expect: dict) -> None:
    for key, wanted in expect.items():
        found = meta.get(key)
        if _plain(found) != _plain(wanted):
            raise P2Error(
                f"{path} has {key}={found!r} but this stage expects {key}={wanted!r}; "
                f"rerun the stage that writes it (or main.py --force)"
            )


def _plain(value):
    """Normalise tuples to lists so a meta read back from disk compares equal to the original."""
    return json.loads(json.dumps(value))


def save_text(path: Path, text: str) -> None:
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def save_figure(figure, path: Path, dpi: int = 120) -> Path:
    """A matplotlib figure as PNG, written atomically."""
    _atomic_write(Path(path), lambda tmp: figure.savefig(tmp, dpi=dpi, format="png"))
    return Path(path)


def save_json(path: Path, content: dict) -> None:
    save_text(path, json.dumps(content, indent=2, sort_keys=False) + "\n")


def load_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise P2Error(f"{path} does not exist: run the stage that writes it first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise P2Error(f"{path} is not valid JSON ({error}); delete it and rerun its stage") from None


def save_arrays(path: Path, meta: dict, **arrays) -> None:
    """NumPy arrays plus a JSON meta in one .npz, written atomically."""
    import numpy as np

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, _meta=np.array(json.dumps(meta)), **arrays)

    _atomic_write(Path(path), write)


def load_arrays(path: Path, expect: dict | None = None) -> tuple[dict, dict]:
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise P2Error(f"{path} does not exist: run the stage that writes it first")
    try:
        with np.load(path, allow_pickle=False) as content:
            arrays = {name: content[name] for name in content.files}
        meta = json.loads(str(arrays.pop("_meta")))
    except Exception as error:
        raise P2Error(f"{path} cannot be read ({error}); delete it and rerun its stage") from None
    check_meta(path, meta, expect or {})
    return arrays, meta
