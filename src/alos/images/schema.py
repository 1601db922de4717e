"""The JSON Schema of image files (schema.json), and its errors said in words: the field, what
is wrong and what would be valid (the type, the range, the fields there are, a close match).

Imports jsonschema (about 130 ms): only load() and the tests import this module, never
``import alos.images``. Integers are strict here: 1.0 and true are not integers.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

from alos.images.form import Field, Problem, field_name, kind_of, shown

FILE = os.path.join(os.path.dirname(__file__), "schema.json")
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@functools.cache
def schema() -> dict[str, Any]:
    """Return the image schema (draft 2020-12) shipped with alos."""
    with open(FILE, encoding="utf-8") as f:
        found: dict[str, Any] = json.load(f)
    return found


@functools.cache
def validator() -> Validator:
    """Return a validator of the image schema whose integers are ints, never floats or booleans."""
    base = jsonschema.Draft202012Validator
    strict = base.TYPE_CHECKER.redefine("integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))
    cls: type[Validator] = jsonschema.validators.extend(base, type_checker=strict)  # type: ignore[no-untyped-call]
    return cls(schema())


def problems(data: Any) -> list[Problem]:
    """Return every way ``data`` breaks the schema, each with its field path, in words."""
    out: list[Problem] = []
    for err in validator().iter_errors(data):
        out.extend(explain(err))
    return out


def _valid(sub: dict[str, Any]) -> str:
    """Return what the subschema ``sub`` accepts, in words: its type and range."""
    types = sub.get("type", [])
    words = " or ".join(_TYPE_WORDS.get(t, t) for t in ([types] if isinstance(types, str) else types))
    if types == "object" and sub.get("properties"):
        words += " of " + ", ".join(sub["properties"])
    low, high = sub.get("minimum"), sub.get("maximum")
    if low is not None and high is not None:
        words += f" from {low} to {high}"
    elif low is not None:
        words += f" of at least {low}"
    return words or "a value the schema accepts"


def explain(err: jsonschema.ValidationError) -> list[Problem]:
    """Return the problems one schema error stands for (an unknown-field error stands for one
    problem per unknown field, at that field)."""
    where: Field = tuple(err.absolute_path)
    sub: dict[str, Any] = err.schema if isinstance(err.schema, dict) else {}
    value: Any = err.instance
    keyword = err.validator
    if keyword == "additionalProperties" and isinstance(value, dict):
        known = sorted(sub.get("properties", {}))
        of = f"of {field_name(where)}" if where else "of an image"
        out: list[Problem] = []
        for key in value:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            out.append(((*where, key), f"is not a field {of}; {hint}the fields are {', '.join(known)}"))
        return out
    if keyword == "required" and isinstance(value, dict):
        need = sub.get("required", [])
        return [((*where, k), f"is missing; required here: {', '.join(need)}") for k in need if k not in value]
    if keyword == "uniqueItems" and isinstance(value, list):
        return [((*where, i), f"{shown(value[i])} is listed twice; list each once") for i in _repeated(value)]
    if keyword == "type":
        hint = " (quote it to make it a string)" if "string" in str(sub.get("type")) and _plain(value) else ""
        return [(where, f"is {kind_of(value)}; it must be {_valid(sub)}{hint}")]
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [(where, f"{shown(value)} is out of range; {_valid(sub)}")]
    if keyword == "pattern":
        return [(where, f"{shown(value)} is not valid: {sub.get('description', 'it must match ' + sub['pattern'])}")]
    if keyword == "minLength":
        return [(where, "is empty; " + sub.get("description", "write something here"))]
    if keyword == "maxLength":
        return [(where, f"has {len(value)} characters; at most {sub['maxLength']}")]
    if keyword == "maxItems":
        return [(where, f"lists {len(value)} items; at most {sub['maxItems']}")]
    if keyword in ("minProperties", "maxProperties"):
        fields = ", ".join(sub.get("properties", {}))
        return [(where, f"has {len(value)} fields; it takes exactly one of {fields}")]
    return [(where, err.message)]


def _repeated(items: list[Any]) -> list[int]:
    """Return the indices of the items that repeat an earlier one (in linear time: lists may be long)."""
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        key = json.dumps(item, sort_keys=True)
        if key in seen:
            out.append(i)
        seen.add(key)
    return out


def _plain(value: Any) -> bool:
    """Return whether ``value`` is what YAML makes of an unquoted word that looks like no string."""
    return value is None or isinstance(value, (bool, int, float))
