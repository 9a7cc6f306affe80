"""The one stage runner. A stage declares what it is made from; one rule decides whether it is up to date.

A Stage names the files it writes, the files it reads (outputs of earlier stages), the settings it
depends on (plain JSON values: constants, seed, which client...) and the fingerprint of the raw data.
After it has run, a manifest beside its first output records all of that, with the SHA-256 of every
input and output file. It is up to date when the manifest exists, its settings and data fingerprint
equal the current ones, every input still has the digest it had, and every output is there with the
digest it had. A retrained model changes its digest, so exactly the stages that read it (and what
reads theirs) rerun; nothing stale is reused, and nothing that does not depend on a change reruns.

Stages of one kind that are all stale can run in one call (`batch`): for example every reference model,
or every client's P2 fine-tuning, trained at once. Each checkpoint a stage writes gets its provenance
(`made_from`) in its metadata, through `provenance_for`.
"""
import contextlib
import contextvars
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolkit import paths
from toolkit.checkpoints import load_json, save_json
from toolkit.digests import file_digest as digest
from toolkit.errors import P2Error

log = logging.getLogger(__name__)

_MADE_FROM: contextvars.ContextVar[dict] = contextvars.ContextVar("made_from", default={})


@dataclass
class Stage:
    name: str                                   # "FedAvg", "P2 client 3", "lira attack on p2"
    outputs: tuple[Path, ...]                   # every file it writes; the first one anchors its manifest
    inputs: tuple[Path, ...]                    # files it reads that other stages write
    settings: dict                              # what else it is made from (plain JSON values)
    data: str                                   # fingerprint of the raw data
    action: Callable[[], None] | None           # writes the outputs
    command: str                                # how a user runs this stage alone
    batch: str | None = None                    # stale stages sharing this key may run together...
    batch_action: Callable[[list["Stage"]], None] | None = None  # ...in one call of this
    group: str = ""                             # the settings group (and script) the stage belongs to
    target: str | None = None                   # the model an attack stage attacks

    @property
    def manifest(self) -> Path:
        first = self.outputs[0]
        return first.with_name(f".{first.name}.made.json")


def label(path: Path) -> str:
    """A path as the manifests record it: relative to the model or results root it lies under."""
    path = Path(path)
    for name, root in (("model", paths.model_root()), ("results", paths.results_root())):
        if path.is_relative_to(root):
            return f"{name}:{path.relative_to(root).as_posix()}"
    return str(path)


def _plain(value):
    return json.loads(json.dumps(value))


def staleness(stage: Stage) -> str | None:
    """None when the stage is up to date, else why it is not (for the log and for error messages)."""
    try:
        manifest = load_json(stage.manifest) if stage.manifest.is_file() else None
    except P2Error:
        manifest = None
    if manifest is None:
        return "not made yet"
    if manifest.get("settings") != _plain(stage.settings):
        changed = sorted(key for key in set(manifest.get("settings", {})) | set(stage.settings)
                         if manifest.get("settings", {}).get(key) != _plain(stage.settings).get(key))
        return f"settings changed ({', '.join(changed) or 'structure'})"
    if manifest.get("data") != stage.data:
        return "the raw data changed"
    recorded = manifest.get("inputs", [])
    if [name for name, _ in recorded] != [label(path) for path in stage.inputs]:
        return "it reads other files now"
    for path, (name, value) in zip(stage.inputs, recorded):
        if not Path(path).is_file():
            return f"its input {name} is missing"
        if digest(path) != value:
            return f"its input {name} changed"
    outputs = manifest.get("outputs", [])
    if [name for name, _ in outputs] != [label(path) for path in stage.outputs]:
        return "it writes other files now"
    for path, (name, value) in zip(stage.outputs, outputs):
        if not Path(path).is_file():
            return f"its output {name} is missing"
        if digest(path) != value:
            return f"its output {name} was changed since"
    return None


def made_from(stage: Stage) -> dict:
    """The provenance each checkpoint of this stage records: settings, data and input digests."""
    return {"stage": stage.name, "settings": _plain(stage.settings), "data": stage.data,
            "inputs": {label(path): digest(path) for path in stage.inputs}}


def provenance_for(path: Path) -> dict | None:
    """The `made_from` of the running stage that writes `path` (None outside a stage)."""
    return _MADE_FROM.get().get(str(Path(path)))


@contextlib.contextmanager
def _recording(stages: list[Stage]):
    token = _MADE_FROM.set({str(Path(out)): made_from(stage) for stage in stages for out in stage.outputs})
    try:
        yield
    finally:
        _MADE_FROM.reset(token)


def _write_manifest(stage: Stage, seconds: float, threads: int) -> None:
    missing = [label(path) for path in stage.outputs if not Path(path).is_file()]
    if missing:
        raise RuntimeError(f"stage {stage.name!r} did not write {', '.join(missing)}")
    save_json(stage.manifest, {
        "stage": stage.name, "settings": _plain(stage.settings), "data": stage.data,
        "inputs": [[label(path), digest(path)] for path in stage.inputs],
        "outputs": [[label(path), digest(path)] for path in stage.outputs],
        "seconds": round(seconds, 3), "threads": threads})


def recorded_seconds(stage: Stage) -> float | None:
    """How long the stage took when its outputs were made (from its manifest)."""
    try:
        return float(load_json(stage.manifest)["seconds"])
    except (P2Error, KeyError, TypeError, ValueError):
        return None


def _check_inputs(stage: Stage, producers: dict[str, Stage]) -> None:
    for path in stage.inputs:
        if not Path(path).is_file():
            producer = producers.get(str(Path(path)))
            how = f"run {producer.command} first" if producer else "run the stage that writes it first"
            raise P2Error(f"{stage.name}: {path} does not exist; {how} (or main.py)")


def check_upstream(stages: list[Stage], selected: list[Stage]) -> None:
    """Refuse to run `selected` on inputs whose own stage is not up to date: a stage script run alone
    never builds on stale work. The message names the stale file and the command that remakes it."""
    producers = {str(Path(out)): stage for stage in stages for out in stage.outputs}
    chosen = {id(stage) for stage in selected}
    for stage in selected:
        for path in stage.inputs:
            producer = producers.get(str(Path(path)))
            if producer is None or id(producer) in chosen:
                continue
            reason = staleness(producer)
            if reason is not None:
                raise P2Error(f"{stage.name} needs {path}, which is not up to date ({producer.name}: {reason}); "
                              f"run {producer.command} first (or main.py)")


def run(stages: list[Stage], force: bool = False, threads: int | None = None) -> dict[str, float]:
    """Run, in order, every stage that is not up to date (every stage with `force`). Consecutive stages
    sharing a batch key form a block whose stale members run in one call. Returns the seconds each
    stage that ran took (a block's time is shared equally by its members)."""
    import torch

    threads = threads or torch.get_num_threads()
    producers = {str(Path(out)): stage for stage in stages for out in stage.outputs}
    timings: dict[str, float] = {}
    index = 0
    while index < len(stages):
        end = index + 1
        if stages[index].batch is not None:
            while end < len(stages) and stages[end].batch == stages[index].batch:
                end += 1
        stale = []
        for stage in stages[index:end]:
            reason = "forced" if force else staleness(stage)
            if reason is None:
                log.info("%s: up to date, skipped", stage.name)
            else:
                log.info("%s: %s", stage.name, reason)
                stale.append(stage)
        index = end
        if not stale:
            continue
        for stage in stale:
            _check_inputs(stage, producers)
        calls = [stale] if stale[0].batch_action is not None else [[stage] for stage in stale]
        for group in calls:
            started = time.perf_counter()
            with _recording(group):
                if group[0].batch_action is not None:
                    group[0].batch_action(group)
                else:
                    group[0].action()
            seconds = (time.perf_counter() - started) / len(group)
            for stage in group:
                _write_manifest(stage, seconds, threads)
                timings[stage.name] = seconds
            log.info("%s: done in %.1f s", group[0].name if len(group) == 1 else f"{len(group)} x {group[0].batch}",
                     seconds * len(group))
    return timings
