"""Reads ruleset YAML files and turns every problem into a message naming file, line, rule id and field.

PyYAML follows YAML 1.1, where `on`, `off`, `yes` and `no` are booleans: the rule language's `on:` key would
silently become `True:`. Our loader resolves only true/false as booleans (as YAML 1.2 does), keeps every other
plain scalar as the author wrote it, and refuses duplicate keys instead of keeping the last one.
"""
from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import ValidationError

from rules.model import Ruleset
from schemas.types import error_path, readable

Location = tuple[Any, ...]


class _RulesLoader(yaml.SafeLoader):
    pass


# Drop YAML 1.1's bool and base-60 resolvers, then add back YAML 1.2's booleans only.
_RulesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:bool",)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RulesLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
for _first, _resolvers in _RulesLoader.yaml_implicit_resolvers.items():
    # YAML 1.1 reads 21:00 as the base-60 integer 1260 (and 1:30.5 as a float): numbers never contain a colon
    # here, so a plain scalar with one stays the string the author wrote.
    _RulesLoader.yaml_implicit_resolvers[_first] = [
        (tag, re.compile(r"(?=[^:]*$)" + regexp.pattern, regexp.flags)
         if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") else regexp)
        for tag, regexp in _resolvers
    ]


class RulesetError(Exception):
    """A ruleset file that cannot be used; str() is the message for the author."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class _Document:
    data: Any
    lines: dict[Location, int]


def _walk(node: yaml.Node, loader: _RulesLoader, path: Location, lines: dict[Location, int], source: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        own = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)
        # flatten_mapping puts keys merged in with `<<:` first; the mapping's own keys may override those.
        first_own = len(node.value) - own
        result: dict[Any, Any] = {}
        own_keys: set[Any] = set()
        for position, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                where = f"{source}:{key_node.start_mark.line + 1}"
                raise RulesetError([f"{where}: a key must be a plain word, not a list or mapping"])
            if position >= first_own:
                if key in own_keys:
                    raise RulesetError([f"{source}:{key_node.start_mark.line + 1}: key {key!r} appears twice"])
                own_keys.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _walk(value_node, loader, path + (key,), lines, source)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, loader, path + (index,), lines, source) for index, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _parse(text: str, source: str) -> _Document:
    try:
        loader = _RulesLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise RulesetError([f"{source}:{line}: not valid YAML: control character #x{exc.character:04x}"]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise RulesetError([f"{source}: the file is empty"])
        lines: dict[Location, int] = {}
        return _Document(_walk(node, loader, (), lines, source), lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise RulesetError([f"{where}: not valid YAML: {exc.problem}"]) from None
    except RecursionError:
        raise RulesetError([f"{source}: not valid YAML: nested too deeply, or an alias contains itself"]) from None
    except (ValueError, TypeError, AttributeError) as exc:
        # PyYAML's constructors fail this way on explicit tags they cannot honour, e.g. `!!int x`.
        raise RulesetError([f"{source}: not valid YAML: {exc}"]) from None
    finally:
        loader.dispose()


_FIELD_PREFIX = re.compile(r"^([a-z_]+(?:\.(?:[a-z_]+|\d+))*): (.*)$", re.S)


def _describe(error: dict[str, Any], document: _Document, source: str, within: Location = (),
              label: str = "") -> str:
    """One validation error as file:line: rule: field: message; `within` is where the validated mapping sits in
    the document (an experiment's inline variant), `label` names it."""
    loc: Location = tuple(error["loc"])
    message = readable(error)
    # Whole-rule validators name the field they object to as a "field.path: " prefix.
    prefixed = _FIELD_PREFIX.match(message)
    if prefixed:
        loc += tuple(int(part) if part.isdigit() else part for part in prefixed.group(1).split("."))
        message = prefixed.group(2)
    line = None
    for depth in range(len(within + loc), -1, -1):
        line = document.lines.get((within + loc)[:depth])
        if line is not None:
            break
    where = f"{source}:{line}" if line else source
    rule = label
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        data = at_location(document.data, within)
        rules = data.get("rules") if isinstance(data, dict) else None
        entry = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
        rule_id = entry.get("id") if isinstance(entry, dict) else None
        rule += f" rule {rule_id!r}:" if rule_id else f" rule #{loc[1] + 1}:"
        loc = loc[2:]
    field = error_path(loc)
    if error["type"] == "extra_forbidden":
        message = "unknown field (check its spelling)"
    return f"{where}:{rule} {field + ': ' if field else ''}{message}"


def parse_ruleset(text: str, source: str = "<rules>", read: Callable[[str], str] | None = None) -> Ruleset:
    """`read` returns the text of a file the ruleset names (a blackout calendar), as written, relative to it."""
    document = _parse(text, source)
    if not isinstance(document.data, dict):
        raise RulesetError([f"{source}: a ruleset is a mapping with version, defaults and rules"])
    read_calendar(document, source, read)
    try:
        return Ruleset.model_validate(document.data)
    except ValidationError as exc:
        raise RulesetError([_describe(error, document, source) for error in exc.errors()]) from None


def at_location(data: Any, within: Location) -> Any:
    """The value at `within` in a parsed document (None where it is not there)."""
    for key in within:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def read_calendar(document: _Document, source: str, read: Callable[[str], str] | None,
                  within: Location = ()) -> None:
    """A blackout calendar file's dates, one YYYY-MM-DD a line (# comments), added to blackout.dates of the ruleset
    at `within` (an experiment's inline variant; the whole document by default)."""
    ruleset = at_location(document.data, within)
    blackout = ruleset.get("blackout") if isinstance(ruleset, dict) else None
    name = blackout.get("calendar") if isinstance(blackout, dict) else None
    if not isinstance(name, str):
        return  # none, or not a file name: the model says what is wrong
    where = f"{source}:{document.lines.get((*within, 'blackout', 'calendar'))}"
    try:
        if read is None:
            raise KeyError(name)
        text = read(name)
    except (OSError, UnicodeDecodeError, KeyError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not found" if isinstance(exc, KeyError) \
            else "not UTF-8 text"
        raise RulesetError([f"{where}: blackout.calendar: cannot read {name}: {reason}"]) from None
    dates, problems = [], []
    calendar = str(Path(source).parent / name)
    for number, line in enumerate(text.splitlines(), 1):
        written = line.split("#", 1)[0].strip()
        if not written:
            continue
        try:
            dates.append(date.fromisoformat(written) if len(written) == 10 else None)
        except ValueError:
            dates.append(None)
        if dates[-1] is None:
            problems.append(f"{calendar}:{number}: blackout.calendar: {written!r} is not a date (YYYY-MM-DD)")
    if problems:
        raise RulesetError(problems)
    listed = blackout.get("dates", [])
    blackout["dates"] = [*listed, *dates] if isinstance(listed, list) else listed


def read_rules_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesetError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise RulesetError([f"{path}: not UTF-8 text"]) from None


def load_ruleset(path: str | Path) -> Ruleset:
    path = Path(path)
    return parse_ruleset(read_rules_file(path), str(path),
                         lambda name: (path.parent / name).read_text(encoding="utf-8"))
