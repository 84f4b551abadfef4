"""The generated parameter reference: the committed docs/parameters.md is current, every field of every parameter
class has a ``:param`` line, and ``rlframe-params`` lists, shows and refuses classes."""
from __future__ import annotations

from pathlib import Path

import pytest

from rlframe.core_types import EnvironmentSteps
from rlframe.parameter_reference import (
    REQUIRED,
    WRITE_COMMAND,
    ClassReference,
    all_references,
    full_markdown,
    main,
    meaning_of,
    param_lines,
    reference,
    split_unit,
)
from rlframe.parameters import Parameters

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"


@pytest.fixture(scope="module")
def refs() -> list[ClassReference]:
    return all_references()


def test_committed_reference_matches_the_code(refs: list[ClassReference]) -> None:
    generated = full_markdown(refs)
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert committed == generated, (
        f"docs/parameters.md differs from what the parameter classes generate: run `{WRITE_COMMAND}` and commit it."
    )
    # Defaults are shown as a preset writes them, never as an address that changes from run to run.
    assert " at 0x" not in generated


def test_every_field_has_a_param_line(refs: list[ClassReference]) -> None:
    missing = [f"{r.cls.__module__}.{r.name}.{field}" for r in refs for field in r.undocumented]
    assert not missing, (
        "fields without a ':param <field>: <meaning>' line in their class docstring (or a base class's): "
        + ", ".join(missing)
    )


def test_no_param_line_names_a_field_the_class_does_not_have(refs: list[ClassReference]) -> None:
    stale = [f"{r.cls.__module__}.{r.name}: {name}" for r in refs
             for name in param_lines(r.cls) if name not in {f.name for f in r.fields}]
    assert not stale, "':param' lines naming no field of their class: " + ", ".join(stale)


def test_discovers_every_kind_of_parameter_class(refs: list[ClassReference]) -> None:
    names = {r.name for r in refs}
    expected = {
        "DQNAgentParameters", "DDQNAgentParameters", "DDQNBCQAgentParameters", "ClippedPPOAgentParameters",
        "DQNAlgorithmParameters", "ClippedPPONetworkParameters", "InputEmbedderParameters", "FCMiddlewareParameters",
        "QHeadParameters", "ExperienceReplayParameters", "EGreedyParameters", "LinearSchedule", "GymVectorEnvironment",
        "VisualizationParameters", "TaskParameters", "PresetValidationParameters", "ScheduleParameters",
        "ObservationNormalizationFilter", "RewardRescaleFilter", "SelectedPhaseOnlyDumpFilter", "KNNParameters",
    }
    assert expected <= names, sorted(expected - names)
    assert "BasicRLGraphManager" not in names  # graph managers run presets; they are not parameter objects
    assert len(names) == len(refs), "two parameter classes share a name: rlframe-params CLASS would be ambiguous"


def test_a_field_reads_its_meaning_default_and_unit() -> None:
    class Base(Parameters):
        """A base.

        :param period: how often it happens, documented once
            on two lines (environment steps).
        """

        def __init__(self, required_size: int) -> None:
            self.period = EnvironmentSteps(4)
            self.required_size = required_size

    class Child(Base):
        """A child that documents only its own field.

        :param required_size: a size without a default.
        """

    ref = reference(Child)
    fields = {f.name: f for f in ref.fields}
    assert fields["period"].meaning == "how often it happens, documented once on two lines."
    assert fields["period"].unit == "environment steps"
    assert fields["period"].default == "EnvironmentSteps(4)"
    assert fields["required_size"].default == REQUIRED
    assert ref.undocumented == ()
    assert meaning_of(Base, "required_size") is None
    # A step-unit default names its unit when the meaning has none; a parenthesis that is no unit stays.
    assert split_unit("copy period", EnvironmentSteps(100)) == ("copy period", "EnvironmentSteps")
    assert split_unit("a rate (0 = never)", 0.5) == ("a rate (0 = never)", "")


def test_rlframe_params_lists_the_classes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "- `DQNAgentParameters`: DQN:" in out
    assert "- `rlframe.schedules`" in out


def test_rlframe_params_shows_one_class_by_its_coach_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dqnalgorithmparameters"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## DQNAlgorithmParameters\n")
    assert "from rl_coach.agents.dqn_agent import DQNAlgorithmParameters" in out
    assert "| `num_steps_between_copying_online_weights_to_target` | `EnvironmentSteps(10000)` | EnvironmentSteps |" in out
    assert "| `discount` | `0.99` |" in out


def test_rlframe_params_refuses_an_unknown_class_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["DQNAgentParams"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: No parameter class named 'DQNAgentParams'. Did you mean 'DQNAgentParameters'")
