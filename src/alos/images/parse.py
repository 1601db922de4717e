"""YAML text to plain values, noting the line each field is written on, for image files.

It reads yaml's event stream (the C parser when there is one) and builds the values itself,
so that a hostile file costs little: it stops after _EVENTS_MAX values, refuses anchors and
aliases where they stand (no alias bomb ever expands), refuses tags other than the plain
ones, keys that are not plain names, duplicate keys (naming both lines), more than one
document and nesting deeper than any image needs (the JSON Schemas under ``types`` nest
deeper). It never raises on bad input: everything wrong becomes an error with its line.
Imports yaml: only load() imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from alos import limits
from alos.images import form

Spot = tuple[str, int]  # (file, line) where a field is written
Error = tuple[str, int, str, str]  # (file, line, field, what is wrong and what would be valid)

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CORE = "tag:yaml.org,2002:"
_SCALARS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_EVENTS_MAX = 20_000  # YAML events (values, keys, starts and ends) of one file; a valid image has under 1,000
_DEPTH_MAX = 8  # nesting levels; a valid image has 4 (the top, grants, a grant, its value)
_TYPES_DEPTH_MAX = 2 + limits.JSON_MAX_DEPTH  # under types: the top, types, then a JSON Schema (form.py checks it)
_ALIAS = "anchors and aliases (&, *) are not accepted in an image; write the value out"
_KEY = "a key must be a plain name (no lists, mappings, tags or merge keys)"
_EXPECT_KEY = object()  # a mapping's state: its next scalar is a key
_BAD_KEY = object()  # a mapping's state: the value that comes is dropped (its key was refused)


@dataclass(slots=True)
class Parsed:
    """An image file read as YAML: its value (None when it is not one document of plain values),
    where each field is written, the errors found and the fields they refused."""

    value: Any = None
    spots: dict[form.Field, Spot] = field(default_factory=dict)
    errors: list[Error] = field(default_factory=list)
    refused: list[form.Field] = field(default_factory=list)


@dataclass(slots=True)
class _Frame:
    """A list or mapping being built; ``skip``: refused, its contents are read and dropped."""

    where: form.Field
    value: dict[str, Any] | list[Any]
    skip: bool = False
    key: object = _EXPECT_KEY  # a mapping's pending key, or its state


def parse(text: str, file: str) -> Parsed:
    """Return YAML ``text`` read from ``file`` as plain values, with where each field is written
    and every construct an image may not use as an error; the value is None on a syntax error."""
    parsed = Parsed()
    loader = _LOADER(text)
    builder = _Builder(file, parsed, loader)
    try:
        documents = events = 0
        while loader.check_event():
            event = loader.get_event()
            events += 1
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
            if documents > 1 or events > _EVENTS_MAX:
                what = "holds more than one YAML document" if documents > 1 else f"has over {_EVENTS_MAX} values"
                line = _line(event)
                return Parsed(errors=[(file, line, "(image)", f"{what}; an image file is one short mapping")])
            builder.feed(event)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        what = ", ".join(str(p) for p in (err.context, err.problem) if p)
        if "tab" in what:
            what += " (indent with spaces, not tabs)"
        return Parsed(errors=[(file, mark.line + 1 if mark else 1, "(image)", f"not valid YAML: {what}")])
    except yaml.YAMLError as err:
        return Parsed(errors=[(file, 1, "(image)", f"not valid YAML: {str(err)[:200]}")])
    finally:
        loader.dispose()
    if not builder.started:
        parsed.errors.append((file, 1, "(image)", "is empty; an image needs name, description and tools"))
    parsed.value = builder.root
    return parsed


class _Builder:
    """Builds plain values from yaml events (see the module docstring), one event at a time."""

    def __init__(self, file: str, parsed: Parsed, loader: Any) -> None:
        self.file = file
        self.parsed = parsed
        self.loader = loader  # its resolver and constructor turn plain scalars into values
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.started = False  # a document had a node

    def fail(self, event: yaml.Event, where: form.Field, what: str, refuse: bool = True) -> None:
        self.parsed.errors.append((self.file, _line(event), form.field_name(where), what))
        if refuse:
            self.parsed.refused.append(where)

    def here(self) -> form.Field:
        """Return the field the next value fills."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.where, len(top.value))
        return (*top.where, top.key) if isinstance(top.key, str) else top.where

    def put(self, value: Any) -> None:
        """Place a finished value where it goes: the root, a list's end, a mapping's pending key."""
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        if top.skip:
            return
        if isinstance(top.value, list):
            top.value.append(value)
        elif top.key is _EXPECT_KEY:  # a list or mapping stood as a key (refused when it began)
            top.key = _BAD_KEY
        else:
            if isinstance(top.key, str):
                top.value[top.key] = value
            top.key = _EXPECT_KEY

    def feed(self, event: yaml.Event) -> None:
        """Take the next event of the stream."""
        if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentStartEvent)):
            return
        if isinstance(event, yaml.DocumentEndEvent):
            return
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            done = self.stack.pop()
            self.put(None if done.skip else done.value)
            return
        self.started = True
        if self.stack and self.stack[-1].skip:  # inside a refused value: keep the stack balanced only
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                self.stack.append(_Frame(self.here(), [], skip=True))
            return
        top = self.stack[-1] if self.stack else None
        is_key = top is not None and isinstance(top.value, dict) and top.key is _EXPECT_KEY
        where = self.here()
        if not is_key:
            self.parsed.spots.setdefault(where, (self.file, _line(event)))
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            self.fail(event, where, _ALIAS)
            skip = True
        else:
            skip = False
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self.open(event, where, is_key, skip)
        elif isinstance(event, yaml.ScalarEvent):
            if is_key and top is not None:
                self.key(event, top, skip)
            else:
                self.put(None if skip else self.scalar(event, where))
        else:  # an alias
            self.put(None)

    def open(self, event: yaml.CollectionStartEvent, where: form.Field, is_key: bool, skip: bool) -> None:
        mapping = isinstance(event, yaml.MappingStartEvent)
        if is_key:
            self.fail(event, where, _KEY, refuse=False)
            skip = True
        elif not skip and event.tag not in (None, "!", _CORE + ("map" if mapping else "seq")):
            self.fail(event, where, f"the tag {_tag(event.tag)} is not accepted; write plain values")
            skip = True
        elif not skip and len(where) >= (most := _TYPES_DEPTH_MAX if where[:1] == ("types",) else _DEPTH_MAX):
            self.fail(event, where, f"is nested more than {most} levels deep; no field of an image is")
            skip = True
        self.stack.append(_Frame(where, {} if mapping else [], skip=skip))

    def key(self, event: yaml.ScalarEvent, top: _Frame, skip: bool) -> None:
        line = _line(event)
        if skip or self.tag(event) not in _SCALARS:
            if not skip:
                self.fail(event, top.where, _KEY, refuse=False)
            top.key = _BAD_KEY
            return
        key = event.value
        where = (*top.where, key)
        first = self.parsed.spots.get(where)
        if first is not None:
            self.fail(event, where, f"is given twice, on lines {first[1]} and {line}; keep one", refuse=False)
            top.key = _BAD_KEY
            return
        self.parsed.spots[where] = (self.file, line)
        top.key = key

    def tag(self, event: yaml.ScalarEvent) -> str:
        """Return the tag of a scalar: its own, or what its plain text resolves to (YAML 1.1)."""
        if event.tag is None or event.tag == "!":
            return str(self.loader.resolve(yaml.ScalarNode, event.value, event.implicit))
        return str(event.tag)

    def scalar(self, event: yaml.ScalarEvent, where: form.Field) -> Any:
        tag = self.tag(event)
        if tag not in _SCALARS:
            self.fail(event, where, f"the tag {_tag(tag)} is not accepted; write plain values")
            return None
        name = tag[len(_CORE) :]
        if name in ("str", "timestamp"):  # a date stays the text it was written as
            return event.value
        node = yaml.ScalarNode(tag, event.value)
        try:
            value = getattr(self.loader, f"construct_yaml_{name}")(node)
        except ValueError:
            self.fail(event, where, f"{form.shown(event.value)} is not a number alos can use")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(event, where, f"{form.shown(event.value)} is not a finite number")
            return None
        return value


def _line(event: yaml.Event) -> int:
    """Return the line ``event`` begins on, counting from 1."""
    return event.start_mark.line + 1 if event.start_mark is not None else 1


def _tag(tag: str | None) -> str:
    """Return ``tag`` as it is written in a file: '!!binary', not 'tag:yaml.org,2002:binary'."""
    return form.shown(str(tag).replace(_CORE, "!!", 1))
