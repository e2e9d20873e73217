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
SUBSTITUTIONS = {
    "ArchiveArn",
    "MarkFailedArn",
    "Cluster",
    "ValidateLoadTask",
    "AggregateTask",
    "SubnetA",
    "SubnetB",
    "TaskSecurityGroup",
    "DataBucket",
}
FAILURE_HANDLER = "${MarkFailedArn}"
NO_CATCH = {FAILURE_HANDLER, "${ArchiveArn}"}
"""Tasks that end the execution if they fail for good: marking failed (nothing left to do)
and archiving (idempotent, retried; the execution fails, is alarmed, the sweep restarts)."""
ECS_SYNC = "arn:aws:states:::ecs:runTask.sync"
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
    """Every Task retries with jittered exponential backoff; every Task but those in
    ``NO_CATCH`` catches."""
    errors: list[str] = []
    for name, state in all_states(machine):
        if state["Type"] != "Task":
            continue
        retriers = state.get("Retry", [])
        backoff = [r for r in retriers if r.get("MaxAttempts", 3) > 0]
        caught = {"States.TaskFailed", "States.ALL"}
        if not any(caught & set(r["ErrorEquals"]) for r in backoff):
            errors.append(f"{name}: no Retry on States.TaskFailed")
        for r in backoff:
            if r.get("BackoffRate", 1) < 2 or r.get("JitterStrategy") != "FULL":
                errors.append(f"{name}: Retry without exponential backoff and full jitter")
        parameters = json.dumps(state.get("Parameters", {}))
        if not any(t in parameters for t in NO_CATCH) and not state.get("Catch"):
            errors.append(f"{name}: no Catch")
    return errors


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\$\{(\w+)\}", text))


def value_of(name: str) -> str:
    """A plausible value for each substitution (what CloudFormation fills in)."""
    if name.endswith("Arn"):
        return f"arn:aws:lambda:us-east-1:123456789012:function:salesflow-{name}"
    if name.endswith("Task"):
        return f"arn:aws:ecs:us-east-1:123456789012:task-definition/salesflow-{name}:1"
    return {
        "Cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/salesflow-tasks",
        "SubnetA": "subnet-0123456789abcdef0",
        "SubnetB": "subnet-0123456789abcdef1",
        "TaskSecurityGroup": "sg-0123456789abcdef0",
        "DataBucket": "salesflow-databucket-abc",
    }[name]


def substituted(text: str) -> str:
    for name in placeholders(text):
        text = text.replace("${" + name + "}", value_of(name))
    return text


def stage_states(machine: dict[str, Any]) -> dict[str, State]:
    states: dict[str, State] = machine["States"]["Stages"]["ItemProcessor"]["States"]
    return states


def test_the_definition_passes_cfn_lints_states_language_schema() -> None:
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/salesflow",
                    "Definition": load_asl(),
                    "DefinitionSubstitutions": {n: value_of(n) for n in SUBSTITUTIONS},
                },
            }
        },
    }
    matches = cfn_lint.lint(json.dumps(template), config=cfn_lint.ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


def test_cfn_lint_would_catch_a_bad_state_type() -> None:
    broken = load_asl()
    stage_states(broken)["HowManyFiles"]["Type"] = "Bogus"
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
    stage_states(broken)["Aggregate"]["Retry"][1]["JitterStrategy"] = "SOMETIMES"
    with pytest.raises(ASLParserException):
        AmazonStateLanguageParser.parse(substituted(json.dumps(broken)))


def test_the_graph_is_sound() -> None:
    assert graph_errors(load_asl()) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda m: stage_states(m)["HowManyFiles"].update(Default="Nowhere"), "missing 'Nowhere'"),
        (
            lambda m: stage_states(m).update(Orphan={"Type": "Pass", "End": True}),
            "Orphan: unreachable",
        ),
        (lambda m: stage_states(m)["Aggregate"].update(End=True), "both Next and End"),
        (lambda m: stage_states(m)["Archive"].pop("End"), "neither goes on nor ends"),
        (
            lambda m: stage_states(m).update(Archive={"Type": "Pass", "Next": "Archive"}),
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
    """ASL wants names unique in the whole machine: the distributed map's copies differ."""
    machine = load_asl()
    listed = stage_states(machine)["LoadManyFiles"]["ItemProcessor"]
    listed["States"]["ValidateLoad"] = listed["States"].pop("ValidateLoadListed")
    listed["StartAt"] = "ValidateLoad"
    assert "state name 'ValidateLoad' is used twice" in graph_errors(machine)


def test_every_task_retries_with_backoff_and_catches() -> None:
    machine = load_asl()
    tasks = [name for name, state in all_states(machine) if state["Type"] == "Task"]
    assert len(tasks) == 7
    assert task_errors(machine) == []


def test_the_task_check_finds_a_task_without_retry_or_catch() -> None:
    machine = load_asl()
    aggregate = stage_states(machine)["Aggregate"]
    aggregate.pop("Catch")
    aggregate["Retry"] = [{"ErrorEquals": ["States.TaskFailed"], "BackoffRate": 1}]
    assert task_errors(machine) == [
        "Aggregate: Retry without exponential backoff and full jitter",
        "Aggregate: no Catch",
    ]
    aggregate["Retry"] = []
    assert "Aggregate: no Retry on States.TaskFailed" in task_errors(machine)


def test_terminal_errors_are_not_retried_and_transient_ones_are() -> None:
    """The Lambda failure handlers: the runtime names their errors (TransientError and
    TerminalError); container tasks tell only by exit code and decide in the task."""
    checked = 0
    for name, state in all_states(load_asl()):
        if FAILURE_HANDLER not in json.dumps(state.get("Parameters", {})):
            continue
        first_match = {
            error: retrier
            for retrier in reversed(state["Retry"])
            for error in retrier["ErrorEquals"]
        }
        assert first_match["TransientError"]["MaxAttempts"] == 3, name
        assert first_match["TerminalError"]["MaxAttempts"] == 0, name
        checked += 1
    assert checked == 3


def test_every_failure_goes_to_mark_failed() -> None:
    machine = load_asl()
    for name, state in all_states(machine):
        for catcher in state.get("Catch", []):
            assert catcher["ErrorEquals"] == ["States.ALL"], name
            handler = dict(all_states(machine))[catcher["Next"]]
            assert FAILURE_HANDLER in json.dumps(handler), f"{name} -> {catcher['Next']}"


def test_heavy_steps_are_container_tasks_running_the_entrypoints_steps() -> None:
    from salesflow.entrypoints.tasks import STEPS

    containers = {
        name: state for name, state in all_states(load_asl()) if state.get("Resource") == ECS_SYNC
    }
    assert set(containers) == {"ValidateLoad", "ValidateLoadListed", "Aggregate"}
    for name, state in containers.items():
        parameters = state["Parameters"]
        assert parameters["LaunchType"] == "FARGATE"
        assert parameters["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"]
        (override,) = parameters["Overrides"]["ContainerOverrides"]
        step = re.match(r"States\.Array\('(\w+)'", override["Command.$"])
        assert step and step.group(1) in STEPS, name
        assert state["ResultPath"] is None, f"{name}: the task description would fill the state"
        assert state["TimeoutSeconds"] <= 7200


def test_small_stages_map_inline_big_ones_read_a_manifest_in_a_distributed_map() -> None:
    machine = load_asl()
    maps = {name: s for name, s in all_states(machine) if s["Type"] == "Map"}
    assert set(maps) == {"Stages", "LoadFiles", "LoadManyFiles"}
    assert maps["Stages"]["MaxConcurrency"] == 1
    modes = {n: m["ItemProcessor"]["ProcessorConfig"]["Mode"] for n, m in maps.items()}
    assert modes == {"Stages": "INLINE", "LoadFiles": "INLINE", "LoadManyFiles": "DISTRIBUTED"}
    many = maps["LoadManyFiles"]
    assert many["ItemReader"]["Parameters"]["Key.$"] == "$.manifest"
    assert many["ResultWriter"]["Parameters"]["Prefix"].startswith("work/runs/")
    assert all(m["ResultPath"] is None for m in maps.values()), "no results in the state"
    inline = maps["LoadFiles"]["ItemProcessor"]["States"]
    listed = many["ItemProcessor"]["States"]
    renamed = json.dumps(listed).replace("ValidateLoadListed", "ValidateLoad")
    assert json.loads(renamed.replace("MarkListedFileAsFailed", "MarkFileAsFailed")) == inline


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
