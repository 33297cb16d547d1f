"""Check a received alert message against ``alert.schema.json`` without any dependency.

``vigil alerts`` reads whatever is published on the alert topics: a broken
agent, a test client or an attacker may send anything. Every message is
bounded (size, nesting, integer length) before it is parsed and then checked
against the same schema file the agent's payloads follow, so one bad message
is counted and skipped, never fatal. The checker covers the JSON Schema
keywords the project's schemas use (type, const, enum, required, properties,
additionalProperties, items, pattern, minimum/maximum, min/maxLength,
min/maxItems, anyOf/oneOf, local ``$ref``); unknown keywords are ignored.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from edge_agent.manifest_checks import MAX_INT_DIGITS, json_depth

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "alert.schema.json"
MAX_MESSAGE_BYTES = 64 << 10
MAX_DEPTH = 16

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


@lru_cache(maxsize=1)
def alert_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def parse_alert(payload: bytes) -> dict[str, Any]:
    """The alert object, or ValueError saying (in one line) why the message is not a valid alert."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message is {len(payload)} bytes (limit {MAX_MESSAGE_BYTES})")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("message is not UTF-8") from None
    if json_depth(text) > MAX_DEPTH:
        raise ValueError(f"message nests deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("message nests too deep") from None
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    problem = first_problem(data, alert_schema())
    if problem:
        raise ValueError(f"not a valid alert: {problem}")
    assert isinstance(data, dict)  # the schema's top-level type is object
    return data


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer with {len(digits)} digits")
    return int(digits)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def first_problem(value: Any, schema: dict[str, Any], where: str = "$", root: dict[str, Any] | None = None) -> str:
    """The first way ``value`` breaks ``schema`` as ``<path>: <what>``, or "" when it conforms."""
    root = root if root is not None else schema
    if "$ref" in schema:
        return first_problem(value, _resolve(schema["$ref"], root), where, root)
    for check in (_check_type, _check_value, _check_string, _check_number, _check_object, _check_array,
                  _check_alternatives):
        problem = check(value, schema, where, root)
        if problem:
            return problem
    return ""


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        return {}  # only local references are used; anything else constrains nothing
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def _check_type(value: Any, schema: dict[str, Any], where: str, _root: dict[str, Any]) -> str:
    wanted = schema.get("type")
    if wanted is None:
        return ""
    names = wanted if isinstance(wanted, list) else [wanted]
    if any(_TYPES.get(name, lambda _v: True)(value) for name in names):
        return ""
    return f"{where}: must be {' or '.join(names)}"


def _check_value(value: Any, schema: dict[str, Any], where: str, _root: dict[str, Any]) -> str:
    if "const" in schema and not _same(value, schema["const"]):
        return f"{where}: must be {schema['const']!r}"
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        return f"{where}: must be one of {schema['enum']}"
    return ""


def _same(a: Any, b: Any) -> bool:
    both_numbers = bool(_TYPES["number"](a) and _TYPES["number"](b))
    return bool((type(a) is type(b) or both_numbers) and a == b)


def _check_string(value: Any, schema: dict[str, Any], where: str, _root: dict[str, Any]) -> str:
    if not isinstance(value, str):
        return ""
    if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
        return f"{where}: wrong length ({len(value)})"
    pattern = schema.get("pattern")
    if pattern and not re.search(pattern, value):
        return f"{where}: does not match {pattern}"
    return ""


def _check_number(value: Any, schema: dict[str, Any], where: str, _root: dict[str, Any]) -> str:
    if not _TYPES["number"](value):
        return ""
    if value != value or value in (float("inf"), float("-inf")):
        return f"{where}: must be finite"
    if "minimum" in schema and value < schema["minimum"]:
        return f"{where}: below {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"{where}: above {schema['maximum']}"
    return ""


def _check_object(value: Any, schema: dict[str, Any], where: str, root: dict[str, Any]) -> str:
    if not isinstance(value, dict):
        return ""
    missing = [name for name in schema.get("required", []) if name not in value]
    if missing:
        return f"{where}: missing {', '.join(missing)}"
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            problem = first_problem(item, properties[name], f"{where}.{name}", root)
        elif extra is False:
            problem = f"{where}: unexpected key {name[:40]!r}"
        elif isinstance(extra, dict):
            problem = first_problem(item, extra, f"{where}.{name}", root)
        else:
            problem = ""
        if problem:
            return problem
    return ""


def _check_array(value: Any, schema: dict[str, Any], where: str, root: dict[str, Any]) -> str:
    if not isinstance(value, list):
        return ""
    if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
        return f"{where}: wrong number of items ({len(value)})"
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            problem = first_problem(item, items, f"{where}[{i}]", root)
            if problem:
                return problem
    return ""


def _check_alternatives(value: Any, schema: dict[str, Any], where: str, root: dict[str, Any]) -> str:
    for keyword in ("anyOf", "oneOf"):
        options = schema.get(keyword)
        if options:
            fits = [not first_problem(value, option, where, root) for option in options]
            if not any(fits) or (keyword == "oneOf" and sum(fits) != 1):
                return f"{where}: matches {sum(fits)} of the {keyword} alternatives"
    if "allOf" in schema:
        for option in schema["allOf"]:
            problem = first_problem(value, option, where, root)
            if problem:
                return problem
    return ""
