"""Trying P2 settings without the attacks (defend/p2_try_settings.py): the script's own setting is the pipeline's
P2 model, each try changes only what it names, and bad tries and stale inputs get one clear line."""
import pytest

import pipeline
from defend import p2_try_settings
from tests.helpers import run_groups
from toolkit.errors import P2Error
from toolkit.run import Run


def quick_experiment():
    return pipeline.load_experiment(Run("adult", seed=0, quick=True), defenses=())


def test_a_try_of_the_script_constants_remakes_the_pipeline_p2_model_and_a_try_changes_what_it_names(adult, one_thread):
    experiment = quick_experiment()
    run_groups(experiment, ("partition", "fl", "p2"))
    same_as_script = {"EPS": experiment.p2.eps}
    result = p2_try_settings.try_settings(experiment, [same_as_script, {"EPS": 0.5, "LABEL_MARGIN": 0.2}])

    script, remade, tried = result["settings"]
    assert script["read_from_model_dir"] and not remade["read_from_model_dir"]  # the cached model, not a rerun
    assert remade["test_acc"] == pytest.approx(script["test_acc"], abs=1e-9)
    for side in ("members", "nonmembers"):
        assert remade[side] == pytest.approx(script[side], abs=1e-6)
    assert remade["loss_attack"]["auc"] == pytest.approx(script["loss_attack"]["auc"], abs=1e-4)

    assert script["changes"] == {} and tried["changes"] == {"EPS": 0.5, "LABEL_MARGIN": 0.2}
    differing = {name for name, value in tried["constants"].items() if value != script["constants"][name]}
    assert differing == {"EPS", "LABEL_MARGIN"}
    assert result["fl"]["members"]["labels_kept"] == 1.0 and result["threads"] == 1


def test_without_the_p2_stage_the_script_setting_is_made_in_memory(adult, one_thread):
    experiment = quick_experiment()
    run_groups(experiment, ("partition", "fl"))
    [script] = p2_try_settings.try_settings(experiment, [])["settings"]
    assert not script["read_from_model_dir"] and 0 < script["test_acc"] <= 1


def test_tries_are_parsed_as_python_literals():
    assert p2_try_settings.parse_try("EPS=0.05 TRAINABLE=('fc3',) ROUNDS=5") == {
        "EPS": 0.05, "TRAINABLE": ("fc3",), "ROUNDS": 5}


@pytest.mark.parametrize("text, message", [
    ("EPS", r"'EPS' is not CONSTANT=value"),
    ("eps=0.1", r"'eps=0.1' is not CONSTANT=value"),
    ("EPS=abc", r"'EPS=abc' is not CONSTANT=value"),
    ("", r"names no constant"),
])
def test_a_malformed_try_is_named(text, message):
    with pytest.raises(P2Error, match=message):
        p2_try_settings.parse_try(text)


@pytest.mark.parametrize("changes, message", [
    ({"EPSS": 0.1}, r"^--try: P2 has no constant\(s\) \['EPSS'\]; its constants are \[.*'EPS'"),
    ({"EPS": 2.0}, r"^--try EPS = 2\.0: must lie in \(0, 1\]$"),
    ({"TRAINABLE": "fc"}, r"^--try TRAINABLE = 'fc': must be a tuple of strings$"),
])
def test_an_impossible_try_is_named_as_typed(adult, changes, message):
    with pytest.raises(P2Error, match=message):
        p2_try_settings.changed(quick_experiment().p2, changes)


def test_a_missing_fl_model_names_the_command_that_makes_it(adult):
    experiment = quick_experiment()
    run_groups(experiment, ("partition",))
    with pytest.raises(P2Error, match=r"\(FedAvg: not made yet\); run python .*FL_model_for_adult"):
        p2_try_settings.try_settings(experiment, [])
