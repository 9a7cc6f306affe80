"""Settings and stage runs for tests: the constants of a per-dataset script (Adult by default), with some replaced."""
from dataclasses import replace

from pipeline import DEFENSES, SCRIPTS, Experiment, stages
from toolkit import stages as runner
from toolkit.settings import load


def script_settings(group: str, dataset: str = "adult", **changes):
    """The settings `group` reads from `dataset`'s script, with `changes` (field names) applied."""
    pattern, settings_class = SCRIPTS[group]
    return replace(load(settings_class, pattern.format(dataset)), **changes)


def experiment(run, data, **groups) -> Experiment:
    """An Experiment of `run` on `data`: the given settings groups, the Adult scripts' for the others."""
    settings = {group: groups.get(group) or script_settings(group) for group in SCRIPTS}
    return Experiment(run=run, data=data, defenses=DEFENSES, **settings)


def run_groups(experiment, groups, attacks=()):
    """Run the stages of the settings `groups` (and of `attacks`) of a run; returns them."""
    chosen = [stage for stage in stages(experiment, tuple(attacks)) if stage.group in groups]
    runner.run(chosen)
    return chosen
