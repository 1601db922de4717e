"""Tool calls as models write them: arguments from the wire, calls written as text, constraint.

Pure functions over untrusted model output; no I/O. A call whose arguments are not a JSON
object keeps the raw text under INVALID (``{"__invalid__": "<raw text, cut short>"}``) so the
agent loop can answer it with a repair turn instead of running it.

Small local servers (llama.cpp, Ollama, vLLM, LM Studio) often write a call as JSON in the
reply's text. ``call_in_text`` takes a text that is exactly one call of a declared tool,
``{"name": T, "arguments": {...}}`` (``"parameters"`` is taken for ``"arguments"``, as Llama
models write it; a call of no arguments may omit them), bare, in one ```json fence, or in one
<tool_call>...</tool_call> tag. Anything else (two calls, an undeclared tool, arguments that are
not an object, prose around the JSON) is text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from alos import codec, limits
from alos.errors import Invalid
from alos.types import ToolCall

INVALID = "__invalid__"  # the key of arguments that were not a JSON object: a malformed call

_TAG_OPEN, _TAG_CLOSE = "<tool_call>", "</tool_call>"
_FENCE = "```"
# the keys a call written as text may have (a call of a tool without parameters may omit them)
_CALL_SHAPES = ({"name", "arguments"}, {"name", "parameters"}, {"name"})


def arguments(raw: Any) -> dict[str, Any]:
    """Return the arguments of a call as the wire carries them (a JSON string or an object).

    An empty string is no arguments; anything that is not a JSON object is ``{INVALID: raw text}``.
    """
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    text = raw if isinstance(raw, str) else codec.dumps(raw)
    try:
        value = codec.parse(text)
    except msgspec.DecodeError:
        value = None
    if isinstance(value, dict):
        return value
    return {INVALID: text[: limits.PREVIEW_CHARS]}


def tool_calls(raw: Sequence[tuple[Any, Any, Any]], turn: int) -> tuple[ToolCall, ...]:
    """Return the calls of a reply from their (id, name, arguments) as the wire has them, in order;
    a call the server gave no id gets ``call_<turn>_<position>``. Raises Invalid for more than
    limits.MODEL_TURN_MAX_CALLS calls."""
    if len(raw) > limits.MODEL_TURN_MAX_CALLS:
        raise Invalid(f"the model made {len(raw)} tool calls in one turn; at most {limits.MODEL_TURN_MAX_CALLS}")
    return tuple(
        ToolCall(
            id=call_id if isinstance(call_id, str) and call_id else f"call_{turn}_{i}",
            name=name if isinstance(name, str) else "",
            arguments=arguments(args),
        )
        for i, (call_id, name, args) in enumerate(raw)
    )


def tool_names(tools: Sequence[dict[str, Any]]) -> list[str]:
    """Return the names of OpenAI-shaped ``tools`` (``{"type": "function", "function": {...}}``)."""
    names = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str):
            names.append(name)
    return names


def call_in_text(text: str, declared: Sequence[str]) -> tuple[str, dict[str, Any]] | None:
    """Return (tool name, arguments) when ``text`` is exactly one call of a tool in ``declared``;
    None when it is anything else."""
    body = _unwrap(text.strip())
    if body is None or not body.startswith("{"):
        return None
    try:
        value = codec.parse(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(value, dict) or set(value) not in _CALL_SHAPES:
        return None
    name = value["name"]
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON string, as the wire does
        try:
            args = codec.parse(args)
        except msgspec.DecodeError:
            return None
    if not isinstance(name, str) or name not in declared or not isinstance(args, dict):
        return None
    return name, args


def _unwrap(text: str) -> str | None:
    """Return ``text`` without one <tool_call> tag and one code fence around it (either order);
    None when a wrapper is opened and not closed, or a second one is inside."""
    if text.startswith(_TAG_OPEN):
        if not text.endswith(_TAG_CLOSE) or len(text) < len(_TAG_OPEN) + len(_TAG_CLOSE):
            return None
        text = text[len(_TAG_OPEN) : -len(_TAG_CLOSE)].strip()
        if _TAG_OPEN in text or _TAG_CLOSE in text:
            return None
    if text.startswith(_FENCE):
        first, _, rest = text.partition("\n")
        if first[len(_FENCE) :].strip().lower() not in ("", "json") or not rest.rstrip().endswith(_FENCE):
            return None
        text = rest.rstrip()[: -len(_FENCE)].strip()
        if _FENCE in text:  # two fenced blocks, or a fence inside a fence
            return None
        if text.startswith(_TAG_OPEN):
            return _unwrap(text) if _FENCE not in text else None
    return text


def constrained_format(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return the ``response_format`` that lets a server (llama-cpp-python's) allow, by grammar,
    exactly one call of one of ``tools`` as the reply."""
    choices = []
    for tool in tools:
        function = tool.get("function", {}) if isinstance(tool, dict) else {}
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            continue
        params = function.get("parameters") or {"type": "object"}
        choices.append(
            {
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return {"type": "json_object", "schema": {"oneOf": choices}}
