"""The stage runner's one rule: a stage reruns exactly when its settings, the data, an input file or one of
its own outputs changed; stale stages of one batch run in one call; a stage run alone never builds on
stale work; checkpoints record what they were made from."""
import json
from pathlib import Path

import pytest

from toolkit import stages as runner
from toolkit.checkpoints import load_checkpoint, save_checkpoint, save_text
from toolkit.errors import P2Error
from toolkit.stages import Stage


class Chain:
    """a.txt <- "A"; b.txt <- a.txt + settings; c.txt <- b.txt. Records which actions ran."""

    def __init__(self, folder: Path, b_setting: int = 1, data: str = "data-1"):
        self.folder, self.ran = folder, []
        self.a, self.b, self.c = folder / "a.txt", folder / "b.txt", folder / "c.txt"
        self.stages = [
            self.stage("A", [self.a], [], {}, lambda: save_text(self.a, "A"), data),
            self.stage("B", [self.b], [self.a], {"factor": b_setting},
                       lambda: save_text(self.b, self.a.read_text() * b_setting), data),
            self.stage("C", [self.c], [self.b], {}, lambda: save_text(self.c, self.b.read_text().lower()), data),
        ]

    def stage(self, name, outputs, inputs, settings, write, data) -> Stage:
        def action():
            self.ran.append(name)
            write()
        return Stage(name=name, outputs=tuple(outputs), inputs=tuple(inputs), settings=settings, data=data,
                     action=action, command=f"make {name}")


def test_a_stage_runs_once_then_is_up_to_date(tmp_path):
    chain = Chain(tmp_path)
    runner.run(chain.stages)
    assert chain.ran == ["A", "B", "C"]
    again = Chain(tmp_path)
    runner.run(again.stages)
    assert again.ran == [] and all(runner.staleness(stage) is None for stage in again.stages)
    manifest = json.loads(chain.stages[1].manifest.read_text())
    assert manifest["settings"] == {"factor": 1} and manifest["inputs"][0][0].endswith("a.txt")


def test_a_changed_setting_reruns_its_stage_and_what_reads_it_only(tmp_path):
    runner.run(Chain(tmp_path).stages)
    changed = Chain(tmp_path, b_setting=2)
    assert [runner.staleness(stage) for stage in changed.stages] == [None, "settings changed (factor)", None]
    runner.run(changed.stages)
    assert changed.ran == ["B", "C"]  # C's input changed once B reran
    assert changed.c.read_text() == "aa"


def test_a_rerun_that_gives_the_same_file_stops_the_cascade(tmp_path):
    runner.run(Chain(tmp_path).stages)
    runner.run(Chain(tmp_path, b_setting=2).stages)
    back = Chain(tmp_path, b_setting=1)
    runner.run(back.stages)
    assert back.ran == ["B", "C"]
    again = Chain(tmp_path, b_setting=3)
    again.stages[1].action = lambda: again.ran.append("B") or save_text(again.b, "A")  # same bytes as before
    runner.run(again.stages)
    assert again.ran == ["B"]


def test_new_data_reruns_everything(tmp_path):
    runner.run(Chain(tmp_path).stages)
    other = Chain(tmp_path, data="data-2")
    assert {runner.staleness(stage) for stage in other.stages} == {"the raw data changed"}


def test_a_replaced_input_or_output_is_noticed(tmp_path):
    runner.run(Chain(tmp_path).stages)
    save_text(tmp_path / "a.txt", "X")  # someone else rewrote A's output
    chain = Chain(tmp_path)
    assert runner.staleness(chain.stages[0]).startswith("its output")
    assert runner.staleness(chain.stages[1]).startswith("its input")
    (tmp_path / "c.txt").unlink()
    assert runner.staleness(chain.stages[2]).startswith("its output") and "missing" in runner.staleness(chain.stages[2])


def test_a_stage_run_alone_refuses_stale_inputs_and_names_the_command(tmp_path):
    runner.run(Chain(tmp_path).stages)
    changed = Chain(tmp_path, b_setting=2)
    with pytest.raises(P2Error, match=r"C needs .*b\.txt, which is not up to date \(B: settings changed.*run make B"):
        runner.check_upstream(changed.stages, changed.stages[2:])
    runner.check_upstream(changed.stages, changed.stages[1:])  # B itself is among the chosen: fine


def test_a_missing_input_names_the_stage_that_writes_it(tmp_path):
    chain = Chain(tmp_path)
    with pytest.raises(P2Error, match=r"b\.txt, which is not up to date \(B: not made yet\); run make B first"):
        runner.check_upstream(chain.stages, chain.stages[2:])
    with pytest.raises(P2Error, match=r"b\.txt does not exist; run the stage that writes it first"):
        runner.run(chain.stages[2:])


def test_stale_stages_of_one_batch_run_in_one_call(tmp_path):
    calls = []

    def batch_action(group):
        calls.append([stage.name for stage in group])
        for stage in group:
            save_text(stage.outputs[0], stage.name)

    def member(index):
        return Stage(name=f"model {index}", outputs=(tmp_path / f"m{index}.txt",), inputs=(), settings={"i": index},
                     data="d", action=None, command="make models", batch="models", batch_action=batch_action)

    runner.run([member(0), member(1)])
    runner.run([member(0), member(1), member(2), member(3)])  # only the new ones
    assert calls == [["model 0", "model 1"], ["model 2", "model 3"]]


def test_checkpoints_made_in_a_stage_record_what_they_were_made_from(tmp_path):
    source = tmp_path / "source.txt"
    save_text(source, "x")
    out = tmp_path / "model.pt"
    stage = Stage(name="train", outputs=(out,), inputs=(source,), settings={"lr": 0.1}, data="fp",
                  action=lambda: save_checkpoint(out, {}, {"round": 1}), command="train")
    runner.run([stage])
    _, meta = load_checkpoint(out)
    assert meta["made_from"]["settings"] == {"lr": 0.1} and meta["made_from"]["data"] == "fp"
    assert list(meta["made_from"]["inputs"].values()) == [runner.digest(source)]
    assert runner.recorded_seconds(stage) is not None


def test_a_stage_that_does_not_write_its_outputs_is_a_bug(tmp_path):
    stage = Stage(name="lazy", outputs=(tmp_path / "never.txt",), inputs=(), settings={}, data="d",
                  action=lambda: None, command="lazy")
    with pytest.raises(RuntimeError, match="did not write"):
        runner.run([stage])
