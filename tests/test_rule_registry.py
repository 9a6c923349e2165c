"""The rule registry is built from the rule modules: one module per rule, nothing listed twice."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import twin.engine.rules as rules_package
from plant_models import available
from twin.engine.rules.compiled import uses_rules
from twin.engine.rules.registry import RULES, Rule, rules_used
from twin.eventlog import EVENTS, Event
from twin.spec.loader import load_spec


def _declared_rules() -> dict[str, str]:
    """Every ``Rule`` value defined at the top level of a module of twin.engine.rules, by name -> module."""
    found = {}
    for info in pkgutil.iter_modules(rules_package.__path__):
        module = importlib.import_module(f"{rules_package.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Rule) and info.name != "registry":
                found[value.name] = info.name
    return found


def test_every_rule_module_is_in_the_registry_and_nothing_else_is() -> None:
    declared = _declared_rules()
    assert set(declared) == set(RULES), "a Rule declared in a module must be in the registry's table"
    assert len(RULES) == 11


def test_rules_write_only_events_of_the_event_log_schema() -> None:
    for rule in RULES.values():
        for event in rule.events:
            assert event in EVENTS, (rule.name, event)
            assert isinstance(event, Event), (rule.name, event)


def test_event_constants_are_the_schema_strings() -> None:
    assert Event.MAJOR_CLEAN == "major_clean"
    assert tuple(e.value for e in Event) == EVENTS
    assert len(set(EVENTS)) == len(EVENTS)


@pytest.mark.parametrize("model", sorted(available()))
def test_built_in_lines_use_the_rules_the_registry_says_and_run_on_the_rules_loop(model: str) -> None:
    spec = load_spec(available()[model])
    used = {rule.name for rule in rules_used(spec)}
    assert {"cleaning", "operators", "qc", "quality", "hold_times"} <= used
    assert uses_rules(spec)


def test_a_line_without_rules_uses_none() -> None:
    from twin.spec.model import LineSpec

    spec = LineSpec.from_dict({"name": "plain", "horizon": 10, "products": [{"name": "A", "batch_size": 1}],
                               "stations": [{"name": "s", "process_time": 1.0}]})  # fmt: skip
    assert rules_used(spec) == []
    assert not uses_rules(spec)
