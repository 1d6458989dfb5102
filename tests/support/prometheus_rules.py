"""Reads the Prometheus alert rules and the Grafana dashboard in ops/ the way a test checks them: the structure
Prometheus requires of a rules file, and the metric names every PromQL expression uses.

Expressions are parsed with promql-parser (GreptimeTeam's port of Prometheus' PromQL parser, from PyPI): a
syntax error fails the check, and the metric names are read from the tree. (promtool would check the same, but
building it takes Prometheus' whole module graph.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


@dataclass(frozen=True)
class Expression:
    where: str  # which rule or panel, for messages
    text: str


class RulesError(ValueError):
    pass


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects; RulesError where PromQL would refuse it (parsed by promql-parser,
    a maintained port of Prometheus' own parser)."""
    try:
        tree = promql_parser.parse(expr)
    except ValueError as error:
        raise RulesError(f"{expr!r}: {error}") from None
    names: set[str] = set()

    def selected(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            matchers = node.matchers.matchers if node.matchers else []
            names.update(m.value for m in matchers if m.name == "__name__")

    promql_parser.walk(tree, selected)
    return names


def rule_expressions(path: Path) -> list[Expression]:
    """Every rule's expression; raises RulesError where Prometheus would refuse the file."""
    document = yaml.safe_load(path.read_text())
    if (
        not isinstance(document, dict)
        or set(document) != {"groups"}
        or not isinstance(document["groups"], list)
    ):
        raise RulesError("a rules file is a mapping with one key, groups: a list")
    expressions = []
    group_names = set()
    for group in document["groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("name"), str) or not group["name"]:
            raise RulesError(f"a group needs a name: {group!r}")
        if group["name"] in group_names:
            raise RulesError(f"group {group['name']} appears twice")
        group_names.add(group["name"])
        if "interval" in group:
            _duration(group["interval"], group["name"])
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            raise RulesError(f"group {group['name']} has no rules")
        for rule in rules:
            expressions.append(_rule(rule, group["name"]))
    return expressions


def _rule(rule: Any, group: str) -> Expression:
    if not isinstance(rule, dict):
        raise RulesError(f"{group}: a rule is a mapping")
    unknown = set(rule) - _RULE_KEYS
    if unknown:
        raise RulesError(f"{group}: unknown rule keys {sorted(unknown)}")
    if ("alert" in rule) == ("record" in rule):
        raise RulesError(f"{group}: a rule has either alert or record")
    name = rule.get("alert") or rule.get("record")
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise RulesError(f"{group}: invalid rule name {name!r}")
    if "record" in rule and ("annotations" in rule or "for" in rule):
        raise RulesError(f"{group}/{name}: a recording rule has no for or annotations")
    if not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
        raise RulesError(f"{group}/{name}: expr is missing")
    for key in ("for", "keep_firing_for"):
        if key in rule:
            _duration(rule[key], f"{group}/{name}")
    for key in ("labels", "annotations"):
        value = rule.get(key, {})
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise RulesError(f"{group}/{name}: {key} maps names to strings")
    metric_names(rule["expr"])  # balanced
    return Expression(f"rule {name}", rule["expr"])


def _duration(value: Any, where: str) -> None:
    if not isinstance(value, str) or not _DURATION.match(value):
        raise RulesError(f"{where}: {value!r} is not a duration")


def dashboard_expressions(path: Path) -> list[Expression]:
    dashboard = json.loads(path.read_text())
    found = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                found.append(Expression(f"panel {panel.get('title')!r}", target["expr"]))
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows hold panels


def exposed_names(families: Any) -> set[str]:
    """The names a query may use for what a /metrics page exposes: each family's, its samples' (a histogram's
    _bucket, _count and _sum, a counter's _total), even for families without samples yet."""
    names = set()
    for family in families:
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
    return names
