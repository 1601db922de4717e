"""Images (AgentImages): what a process's model is told and shown. An image grants nothing.

An image is a name, a system prompt, a tool table (syscall names), the grants it *requests*
(declarations a person may grant at ``alos run``, or grant less), default budgets, model
defaults, a context budget and the objects it shows the model, and the object types and seed
objects of Object Memory (docs/images.md). Its JSON form (``to_json``/``from_json``) is
what the store keeps; an image file (``alos.images.load``) is that form written in YAML.

The built-ins ``base``, ``reader``, ``coder`` and ``reviewer`` are YAML files in ``builtin/``,
read on first use with yaml's C loader and checked by ``from_json`` (tests check them against
schema.json too). Importing this module imports neither yaml nor jsonschema: ``alos --help``
and ``alos run base`` never pay for jsonschema, and only the first use of a built-in pays yaml.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from alos import codec
from alos.errors import Invalid, NotFound
from alos.images import form
from alos.types import BUDGETS


@dataclass(frozen=True, slots=True)
class Seed:
    """A seed object: one a process started from the image finds in its own namespace, its
    payload in the store's blob directory under ``digest`` (docs/objects.md)."""

    name: str  # an object name: segments of letters, digits, '.', '_', '-' joined by '/'
    type: str  # a built-in object type or one the image declares
    digest: str  # the sha256 of the payload, 64 lowercase hex digits
    size: int  # bytes of the payload (the JSON form's ``bytes``)


@dataclass(frozen=True, slots=True)
class Image:
    """An AgentImage: what a process's model is told and shown. It grants nothing: ``requests``
    are declarations a person may grant at ``alos run`` (or grant less)."""

    name: str
    description: str
    syscalls: tuple[str, ...]
    prompt: str = ""  # the image's system prompt, before what alos says about the process
    version: str = "1"  # the author's label; the store numbers registered versions itself
    requests: tuple[tuple[str, str], ...] = ()  # (allow | ask | deny, "RESOURCE=RIGHTS") it asks to be granted
    budget: tuple[tuple[str, int], ...] = ()  # default budget limits (name, amount)
    temperature: float | None = None
    max_tokens: int | None = None  # per model call; reserved from the tokens budget before it
    constrain: bool = False  # send a response_format allowing exactly one call of a declared tool
    context_tokens: int | None = None  # the context's token budget; past it old tool results are elided
    env: tuple[tuple[str, str], ...] = ()  # variables its shell commands get (docs/shell.md)
    # object type name -> the JSON Schema its values must satisfy (docs/objects.md); not hashed (JSON)
    types: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)
    objects: tuple[Seed, ...] = ()  # seed objects a process started from it finds in its namespace
    context_objects: tuple[str, ...] = ()  # names in its namespace the model is shown (context.objects)
    compact: bool = False  # past the context budget, old turns are summarized into an object (context.compact)
    tool_tables: tuple[str, ...] = ()  # shared JIT tool tables whose tools the model is shown (docs/jit.md)
    source: str = "built-in"  # the file it was loaded from, or "built-in", or "store:NAME@VERSION"


BUILTIN = ("base", "reader", "coder", "reviewer", "toolmaker")  # the built-in images, in the order they are listed
_FOLDER = os.path.join(os.path.dirname(__file__), "builtin")
_PROBLEMS_SHOWN = 50  # problems one Invalid lists; a hostile form may have thousands


def to_json(image: Image) -> dict[str, Any]:
    """Return the JSON form of ``image``: the fields of an image file, every one present
    (``prompt``, ``grants``, ``budget``, ``model`` and ``context`` possibly empty; ``env``,
    ``types`` and ``objects`` only when set), the version a string. Its source is not part of it."""
    model: dict[str, Any] = {}
    if image.temperature is not None:
        model["temperature"] = image.temperature
    if image.max_tokens is not None:
        model["max_tokens"] = image.max_tokens
    if image.constrain:
        model["constrain"] = True
    shown: dict[str, Any] = {
        "name": image.name,
        "version": image.version,
        "description": image.description,
        "prompt": image.prompt,
        "tools": list(image.syscalls),
        "grants": [{effect: spec} for effect, spec in image.requests],
        "budget": dict(image.budget),
        "model": model,
        "context": {} if image.context_tokens is None else {"max_tokens": image.context_tokens},
    }
    if image.context_objects:
        shown["context"]["objects"] = list(image.context_objects)
    if image.compact:
        shown["context"]["compact"] = True
    # each only when set: the digest of an image without them stays what it was
    if image.env:
        shown["env"] = dict(image.env)
    if image.tool_tables:
        shown["tool_tables"] = list(image.tool_tables)
    if image.types:
        shown["types"] = dict(image.types)
    if image.objects:
        shown["objects"] = [
            {"name": s.name, "type": s.type, "digest": s.digest, "bytes": s.size} for s in image.objects
        ]
    return shown


def from_json(data: Any, source: str = "store") -> Image:
    """Return the Image of JSON form ``data`` (a store row's body, a parsed image file), with
    ``source`` saying where it came from. Raises Invalid listing every problem, one a line,
    each naming its field and what would be valid."""
    found = form.problems(data)
    if found:
        lines = [f"{form.field_name(where)}: {codec.escape(what)}" for where, what in found[:_PROBLEMS_SHOWN]]
        if len(found) > _PROBLEMS_SHOWN:
            lines.append(f"... and {len(found) - _PROBLEMS_SHOWN} more")
        raise Invalid("image is not valid:\n" + "\n".join(lines))
    model = data.get("model", {})
    budget = data.get("budget", {})
    context = data.get("context", {})
    temperature = model.get("temperature")
    return Image(
        name=data["name"],
        description=data["description"],
        syscalls=tuple(data["tools"]),
        prompt=data.get("prompt", ""),
        version=str(data.get("version", "1")),
        requests=tuple(next(iter(g.items())) for g in data.get("grants", [])),
        budget=tuple((name, budget[name]) for name in BUDGETS if name in budget),
        temperature=None if temperature is None else float(temperature),
        max_tokens=model.get("max_tokens"),
        constrain=model.get("constrain", False),
        context_tokens=context.get("max_tokens"),
        env=tuple(sorted(data.get("env", {}).items())),
        types={name: codec.loads(codec.dumps(schema)) for name, schema in data.get("types", {}).items()},  # a copy
        objects=tuple(Seed(s["name"], s["type"], s["digest"], s["bytes"]) for s in data.get("objects", [])),
        context_objects=tuple(context.get("objects", [])),
        compact=bool(context.get("compact", False)),
        tool_tables=tuple(data.get("tool_tables", [])),
        source=source,
    )


def digest(image: Image) -> str:
    """Return the sha256 (hex) of ``image``'s canonical JSON form (sorted keys, no spaces):
    equal for equal images wherever they came from."""
    return hashlib.sha256(codec.dumps(to_json(image)).encode()).hexdigest()


def _read_builtin(name: str) -> Image:
    """Return built-in ``name`` read from ``builtin/NAME.yaml`` or ``builtin/NAME/`` (image.yaml
    and prompt.md). The files ship with alos: a problem in one is a bug, and propagates."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    file = os.path.join(_FOLDER, f"{name}.yaml")
    if os.path.isfile(file):
        with open(file, encoding="utf-8") as f:
            return from_json(yaml.load(f, Loader=loader), source="built-in")
    with open(os.path.join(_FOLDER, name, "image.yaml"), encoding="utf-8") as f:
        data = yaml.load(f, Loader=loader)
    with open(os.path.join(_FOLDER, name, "prompt.md"), encoding="utf-8") as f:
        data["prompt"] = f.read()
    return from_json(data, source="built-in")


class _Builtins(Mapping[str, Image]):
    """The built-in images by name, each read from its file the first time it is looked up."""

    def __init__(self) -> None:
        self._read: dict[str, Image] = {}

    def __getitem__(self, name: str) -> Image:
        found = self._read.get(name)
        if found is None:
            if name not in BUILTIN:
                raise KeyError(name)
            found = self._read[name] = _read_builtin(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(BUILTIN)

    def __len__(self) -> int:
        return len(BUILTIN)


IMAGES: Mapping[str, Image] = _Builtins()


def is_path(image_name: str) -> bool:
    """Return whether ``image_name`` names an image file rather than an image: it holds a '/' or
    ends in .yaml or .yml (an image's name holds neither; a directory here is named ./DIR)."""
    return "/" in image_name or image_name.endswith((".yaml", ".yml"))


def image(name: str) -> Image:
    """Return the built-in image called ``name``; raises NotFound listing the built-in images."""
    if name not in BUILTIN:
        raise NotFound(f"no image {codec.escape(name[:80])!r}; known images: {', '.join(sorted(BUILTIN))}")
    return IMAGES[name]


class Catalog:
    """The images as the kernel sees them (providers.base.ImageCatalog): built-ins and the check
    of a JSON form, all as JSON forms. Holds nothing but the built-ins' forms once made."""

    def __init__(self) -> None:
        self._forms: dict[str, dict[str, Any]] = {}

    def builtin(self, name: str) -> dict[str, Any] | None:
        """Return built-in image ``name``'s JSON form (shared: do not change it), or None."""
        if name not in BUILTIN:
            return None
        found = self._forms.get(name)
        if found is None:
            found = self._forms[name] = to_json(IMAGES[name])
        return found

    def names(self) -> list[str]:
        """Return the names of the built-in images."""
        return list(BUILTIN)

    def check(self, body: Any) -> dict[str, Any]:
        """Return ``body`` as a valid image's canonical JSON form; raises Invalid naming every problem."""
        return to_json(from_json(body))


_CONSTANTS = {"BASE": "base", "READER": "reader", "CODER": "coder", "REVIEWER": "reviewer"}


def __getattr__(name: str) -> Image:
    """Return BASE, READER, CODER or REVIEWER, the built-ins, read on first use (PEP 562: a
    constant would read every file at import); raises AttributeError for any other name."""
    builtin = _CONSTANTS.get(name)
    if builtin is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return IMAGES[builtin]


__all__ = ["BUILTIN", "IMAGES", "Catalog", "Image", "Seed", "digest", "from_json", "image", "is_path", "to_json"]
