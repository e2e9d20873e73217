"""The state machine definition (infra/statemachine.asl.json) is valid ASL and keeps our rules.

statelint is a Ruby gem, so the definition is checked by three Python validators instead:
cfn-lint's Amazon States Language schema (rule E3601, what CloudFormation deploys), the ASL
grammar of the interpreter the end-to-end suite runs it on (moto's, from LocalStack), and the
graph checks below (targets exist, every state reachable and finishing, one terminal at the top,
Retry and Catch on the tasks, the substitution names the template fills in).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint import api as cfn_lint
from moto.stepfunctions.parser.asl.parse.asl_parser import (
    AmazonStateLanguageParser,
    ASLParserException,
)

ROOT = Path(__file__).resolve().parents[2]
ASL_PATH = ROOT / "infra" / "statemachine.asl.json"
TEMPLATE_PATH = ROOT / "infra" / "template.yaml"
SUBSTITUTIONS = {"ValidateLoadArn", "AggregateArn", "ArchiveArn", "MarkFailedArn"}
FAILURE_HANDLER = "${MarkFailedArn}"
TERMINAL_TYPES = {"Succeed", "Fail"}

State = dict[str, Any]


def load_asl() -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(ASL_PATH.read_text())
    return definition


def scopes(machine: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every ``{StartAt, States}`` block: the machine, then each Map/Parallel inside it."""
    yield path or "<top>", machine
    for name, state in machine["States"].items():
        for inner in (state.get("ItemProcessor"), state.get("Iterator")):
            if inner:
                yield from scopes(inner, f"{path}/{name}")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from scopes(branch, f"{path}/{name}[{i}]")


def all_states(machine: dict[str, Any]) -> Iterator[tuple[str, State]]:
    for _, scope in scopes(machine):
        yield from scope["States"].items()


def targets(state: State) -> list[str]:
    """The states ``state`` can go to next."""
    out = [state["Next"]] if "Next" in state else []
    out += [c["Next"] for c in state.get("Choices", [])]
    out += [state["Default"]] if "Default" in state else []
    out += [c["Next"] for c in state.get("Catch", [])]
    return out


def is_terminal(state: State) -> bool:
    return bool(state.get("End")) or state["Type"] in TERMINAL_TYPES


def graph_errors(machine: dict[str, Any]) -> list[str]:
    """Structural problems of a definition; empty when it is sound."""
    errors: list[str] = []
    names = [name for name, _ in all_states(machine)]
    errors += [f"state name {n!r} is used twice" for n in {n for n in names if names.count(n) > 1}]
    for where, scope in scopes(machine):
        states: dict[str, State] = scope["States"]
        if scope["StartAt"] not in states:
            errors.append(f"{where}: StartAt {scope['StartAt']!r} is not a state")
        for name, state in states.items():
            errors += [
                f"{where}/{name}: goes to missing {t!r}" for t in targets(state) if t not in states
            ]
            if "Next" in state and state.get("End"):
                errors.append(f"{where}/{name}: has both Next and End")
            if not targets(state) and not is_terminal(state):
                errors.append(f"{where}/{name}: neither goes on nor ends")
        reached = _reachable(states, scope["StartAt"])
        errors += [f"{where}/{n}: unreachable" for n in states if n not in reached]
        errors += [f"{where}/{n}: can never finish" for n in states if not _finishes(states, n)]
    top_terminals = [n for n, s in machine["States"].items() if is_terminal(s)]
    if len(top_terminals) != 1:
        errors.append(f"the machine should have one terminal state, has {top_terminals}")
    return errors


def _reachable(states: dict[str, State], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        todo += targets(states[name])
    return seen


def _finishes(states: dict[str, State], name: str) -> bool:
    return any(is_terminal(states[n]) for n in _reachable(states, name) if n in states)


def task_errors(machine: dict[str, Any]) -> list[str]:
    """Every Task retries with jittered exponential backoff; every Task except the failure
    handler catches (if marking a file failed fails, the execution fails and alarms)."""
    errors: list[str] = []
    for name, state in all_states(machine):
        if state["Type"] != "Task":
            continue
        retriers = state.get("Retry", [])
        backoff = [r for r in retriers if r.get("MaxAttempts", 3) > 0]
        if not any("States.TaskFailed" in r["ErrorEquals"] for r in backoff):
            errors.append(f"{name}: no Retry on States.TaskFailed")
        for r in backoff:
            if r.get("BackoffRate", 1) < 2 or r.get("JitterStrategy") != "FULL":
                errors.append(f"{name}: Retry without exponential backoff and full jitter")
        handler = json.dumps(state.get("Parameters", {}))
        if FAILURE_HANDLER not in handler and not state.get("Catch"):
            errors.append(f"{name}: no Catch")
    return errors


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\$\{(\w+)\}", text))


def substituted(text: str) -> str:
    for name in placeholders(text):
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:salesflow-{name}"
        text = text.replace("${" + name + "}", arn)
    return text


def test_the_definition_passes_cfn_lints_states_language_schema() -> None:
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/salesflow",
                    "Definition": load_asl(),
                    "DefinitionSubstitutions": {
                        n: f"arn:aws:lambda:us-east-1:123456789012:function:{n}"
                        for n in SUBSTITUTIONS
                    },
                },
            }
        },
    }
    matches = cfn_lint.lint(json.dumps(template), config=cfn_lint.ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


def test_cfn_lint_would_catch_a_bad_state_type() -> None:
    broken = load_asl()
    broken["States"]["OneStage"]["Type"] = "Bogus"
    template = {
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"RoleArn": "arn:aws:iam::1:role/x", "Definition": broken},
            }
        }
    }
    matches = cfn_lint.lint(json.dumps(template), config=cfn_lint.ManualArgs(regions=["us-east-1"]))
    assert any("E3601" in str(m) for m in matches)


def test_the_definition_parses_with_the_interpreters_grammar() -> None:
    program, _ = AmazonStateLanguageParser.parse(substituted(ASL_PATH.read_text()))
    assert type(program).__name__ == "Program"


def test_the_grammar_rejects_an_unknown_jitter_strategy() -> None:
    broken = load_asl()
    aggregate = broken["States"]["Stages"]["ItemProcessor"]["States"]["Aggregate"]
    aggregate["Retry"][1]["JitterStrategy"] = "SOMETIMES"
    with pytest.raises(ASLParserException):
        AmazonStateLanguageParser.parse(substituted(json.dumps(broken)))


def test_the_graph_is_sound() -> None:
    assert graph_errors(load_asl()) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda m: m["States"]["PlanStages"].update(Default="Nowhere"), "missing 'Nowhere'"),
        (lambda m: m["States"].update(Orphan={"Type": "Pass", "End": True}), "Orphan: unreachable"),
        (lambda m: m["States"]["OneStage"].update(End=True), "both Next and End"),
        (lambda m: m["States"]["OneStage"].pop("Next"), "neither goes on nor ends"),
        (
            lambda m: m["States"].update(OneStage={"Type": "Pass", "Next": "OneStage"}),
            "never finish",
        ),
        (lambda m: m["States"].update(Done={"Type": "Succeed"}), "one terminal state"),
    ],
)
def test_the_graph_check_finds_each_kind_of_breakage(breakage: Any, expected: str) -> None:
    machine = load_asl()
    breakage(machine)
    assert any(expected in error for error in graph_errors(machine)), graph_errors(machine)


def test_state_names_are_unique_across_the_machine() -> None:
    machine = load_asl()
    machine["States"]["OneStage"]["Next"] = "Aggregate"
    machine["States"]["Aggregate"] = {"Type": "Pass", "End": True}
    machine["States"]["Stages"].pop("End")
    machine["States"]["Stages"]["Next"] = "Aggregate"
    assert "state name 'Aggregate' is used twice" in graph_errors(machine)


def test_every_task_retries_with_backoff_and_catches() -> None:
    machine = load_asl()
    tasks = [name for name, state in all_states(machine) if state["Type"] == "Task"]
    assert len(tasks) == 6
    assert task_errors(machine) == []


def test_the_task_check_finds_a_task_without_retry_or_catch() -> None:
    machine = load_asl()
    aggregate = machine["States"]["Stages"]["ItemProcessor"]["States"]["Aggregate"]
    aggregate.pop("Catch")
    aggregate["Retry"] = [{"ErrorEquals": ["States.TaskFailed"], "BackoffRate": 1}]
    assert task_errors(machine) == [
        "Aggregate: Retry without exponential backoff and full jitter",
        "Aggregate: no Catch",
    ]
    aggregate["Retry"] = []
    assert "Aggregate: no Retry on States.TaskFailed" in task_errors(machine)


def test_terminal_errors_are_not_retried_and_transient_ones_are() -> None:
    for name, state in all_states(load_asl()):
        if state["Type"] != "Task":
            continue
        first_match = {
            error: retrier
            for retrier in reversed(state["Retry"])
            for error in retrier["ErrorEquals"]
        }
        assert first_match["TransientError"]["MaxAttempts"] == 3, name
        assert first_match["TerminalError"]["MaxAttempts"] == 0, name


def test_every_failure_goes_to_mark_failed() -> None:
    machine = load_asl()
    for name, state in all_states(machine):
        for catcher in state.get("Catch", []):
            assert catcher["ErrorEquals"] == ["States.ALL"], name
            handler = dict(all_states(machine))[catcher["Next"]]
            assert FAILURE_HANDLER in json.dumps(handler), f"{name} -> {catcher['Next']}"


def test_maps_are_inline_and_stages_run_in_order() -> None:
    machine = load_asl()
    maps = {name: s for name, s in all_states(machine) if s["Type"] == "Map"}
    assert set(maps) == {"Stages", "ValidateLoadFiles", "ArchiveFiles"}
    assert all(m["ItemProcessor"]["ProcessorConfig"]["Mode"] == "INLINE" for m in maps.values())
    assert maps["Stages"]["MaxConcurrency"] == 1
    assert all(m["MaxConcurrency"] > 1 for n, m in maps.items() if n != "Stages")


def test_the_definition_uses_exactly_the_substitution_names() -> None:
    assert placeholders(ASL_PATH.read_text()) == SUBSTITUTIONS


def test_the_template_fills_in_every_substitution() -> None:
    """CloudFormation fills the ARNs in through ``DefinitionSubstitutions`` or, as our template
    does (moto ignores ``DefinitionSubstitutions``), ``Fn::Sub`` around the definition."""
    from cfnlint.decode import decode_str

    template, problems = decode_str(TEMPLATE_PATH.read_text())
    assert not problems
    machines = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] in ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine")
    ]
    assert len(machines) == 1
    names = set(machines[0].get("DefinitionSubstitutions", {}))
    sub = machines[0].get("DefinitionString", {}).get("Fn::Sub")
    if isinstance(sub, list):
        names |= set(sub[1])
    assert SUBSTITUTIONS <= names


def test_the_definition_avoids_the_context_object() -> None:
    """The template embeds the definition in ``Fn::Sub``; moto's Fn::Sub (Python's
    ``string.Template``) turns ``$$`` into ``$``, so ``$$.Map.Item.Value`` would break."""
    assert "$$" not in ASL_PATH.read_text()
