"""JIT tools as the model sees and calls them (docs/jit.md); ``libos`` as a tool sees it.

A process's tool table is its image's tools and the JIT tools registered in its own table
(``proc/<pid>``) and in the shared tables its image names (``tool_tables``). Calling one:
1. dispatch ``tool.open`` (decided on ``execute`` over ``tool:<table>/<name>``, audited);
2. check the arguments against the tool's JSON Schema;
3. run it in a Deno worker (providers/jit.py); each ``libos.syscall`` it makes is dispatched as
   the process, at the next step of the same site, so a re-run after a park or a restart is
   answered from the journal for what already ran, and an approval parks the process (the
   tool is stopped; it runs again, from the start, once the person has answered). The outcome
   of a journaled call is committed before the tool reads it, as before the model reads one;
4. a tool that fails or hits a limit is audited (``refuse``) with what stopped it.

``declarations()`` and ``wrappers()`` are made from the syscall table: the typed ``Libos`` a
tool is type-checked against (providers/jit_libos.ts, kept in step by a test) and the
``libos.<family>.<name>(first, rest)`` wrappers the runner builds.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from alos import codec
from alos.errors import AlosError, BadArguments, Conflict, Diverged, Invalid, Limit
from alos.kernel import Kernel, Site, reads
from alos.kernel import action as actions
from alos.providers.jit import PARK, Outcome
from alos.syscall import TABLE, dispatch, refuse
from alos.types import Parked, ToolCall


@dataclass(frozen=True, slots=True)
class JitSpec:
    """A JIT tool in a process's table: where it is registered and what the model is shown."""

    name: str
    table: str
    description: str
    parameters: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}  # fmt: skip


def table(kernel: Kernel, pid: int, shared: tuple[str, ...], taken: set[str]) -> dict[str, JitSpec]:
    """Return the JIT tools of ``pid`` (own table first, then ``shared`` in order), none of whose
    names is in ``taken`` (an image's tools are never shadowed)."""
    found: dict[str, JitSpec] = {}
    for tbl in (f"proc/{pid}", *shared):
        for name, description, parameters in reads.tools(kernel, tbl):
            if name not in taken and name not in found:
                found[name] = JitSpec(name, tbl, description, parameters)
    return found


async def call(
    kernel: Kernel, pid: int, tool: JitSpec, tc: ToolCall, site: Site | None
) -> tuple[str, bool, bool] | Parked:
    """Run JIT tool call ``tc``; return (text, ok, malformed) or Parked."""
    named = f"tool:{tool.table}/{tool.name}"
    try:
        opened = await dispatch(kernel, pid, "tool.open", {"name": tool.name, "table": tool.table}, site)
    except AlosError as err:
        return str(err), False, False
    if isinstance(opened, Parked):
        return opened
    run = _Run(kernel, pid, site)
    changed = run.same(site, "tool.open", str(opened["digest"]))  # a re-run runs the source the call began with
    if changed:
        refuse(kernel, pid, named, Conflict(changed))
        return f"{changed}; call it again", False, False
    problem = _bad_arguments(opened.get("parameters"), tc.arguments)
    if problem:
        unfit = Invalid(f"the arguments of {tool.name} do not fit its schema: {problem}")
        refuse(kernel, pid, named, unfit)
        return f"{unfit}; they must match: {codec.dumps(opened.get('parameters'))}", False, True
    module = f"{opened['digest']}.ts"
    try:
        outcome = await kernel.jit.run(pid, module, opened["source"], tc.arguments, run.syscall, run.decide, wrappers())
    except AlosError as err:
        refuse(kernel, pid, named, err)
        return f"{tool.name} could not run: {err}", False, False
    if outcome.parked and run.held:
        return run.held[-1]
    return _result(kernel, pid, named, tool.name, outcome)


_BROKER_STEPS = 1 << 20  # the broker's requests are numbered apart: they may interleave with syscalls


class _Run:
    """One run of a tool: the steps of its syscalls (from the tool call's own step up) and of its
    broker requests (from _BROKER_STEPS up), each the same on every re-run of a deterministic tool.

    Every step is recorded: journaled calls by dispatch(), the rest traced here, so a re-run whose
    call at a step differs from the first run's is refused as not deterministic, before it can
    land an effect on a step the journal answers for another call."""

    def __init__(self, kernel: Kernel, pid: int, site: Site | None) -> None:
        self.kernel, self.pid, self.site = kernel, pid, site
        self.step = site.step if site is not None else 0
        self.asked = _BROKER_STEPS
        self.held: list[Parked] = []  # the park a syscall (or the broker) made: the process waits on it

    def same(self, at: Site | None, name: str, digest: str) -> str:
        """Return why the call ``name`` (``digest``) may not be made at ``at`` ("" when it may),
        tracing it there when nothing is recorded yet and it is not journaled."""
        if at is None:
            return ""
        before = actions.seen(self.kernel, self.pid, at)
        if before is None:
            entry = TABLE.get(name)
            if entry is None or not entry.journaled:
                actions.trace(self.kernel, self.pid, at, name, digest)
            return ""
        if before[0] != name or (before[1] != digest and not TABLE[name].journaled):
            return (f"conflict: the re-run of process {self.pid}'s tool made {name} where its first run made "
                    f"{before[0]} with other arguments; the tool is not deterministic")  # fmt: skip
        return ""  # a journaled call: dispatch() compares its arguments and answers from the journal

    async def syscall(self, name: str, args: dict[str, Any]) -> Any:
        self.step += 1
        at = dataclasses.replace(self.site, step=self.step) if self.site is not None else None
        return await self._dispatch(at, name, args)

    async def decide(self, permission: str, value: str | None) -> Any:
        self.asked += 1
        at = dataclasses.replace(self.site, step=self.asked) if self.site is not None else None
        try:
            answer = await self._dispatch(at, "tool.permit", {"permission": permission, "value": value})
        except Diverged as err:  # refused: a permit has no effect, and its steps are apart from the syscalls'
            return str(err)
        if answer is PARK:
            return PARK
        return answer.get("error", "")

    async def _dispatch(self, at: Site | None, name: str, args: dict[str, Any]) -> Any:
        kernel = self.kernel
        differs = self.same(at, name, codec.digest_value([name, self.pid, args]))
        if differs:
            raise Diverged(differs)  # ends the run: its next call could land on another call's step
        try:
            result = await dispatch(kernel, self.pid, name, args, at)
        except Diverged:
            raise
        except BadArguments as err:
            return {"error": f"bad arguments: {err}"}
        except AlosError as err:
            return {"error": str(err)}
        if isinstance(result, Parked):
            self.held.append(result)
            return PARK
        entry = TABLE.get(name)
        if entry is not None and entry.journaled:  # the tool acts on it next: its outcome is durable first
            kernel.flush()
        return {"ok": result}


def _result(kernel: Kernel, pid: int, named: str, name: str, outcome: Outcome) -> tuple[str, bool, bool]:
    """Return what the model reads of a finished run; audit a failure with what stopped it."""
    shown = "".join(f"{codec.escape(line)}\n" for line in outcome.output)
    if outcome.ok:
        return shown + codec.dumps(outcome.value), True, False
    err: AlosError = Limit(outcome.error) if outcome.limit else Invalid(outcome.error)
    refuse(kernel, pid, named, err)
    return shown + f"{name} stopped: {outcome.error}", False, False


def _bad_arguments(schema: Any, args: dict[str, Any]) -> str:
    """Return why ``args`` do not fit ``schema`` ("" when they do)."""
    import jsonschema

    if not isinstance(schema, dict):
        return ""
    try:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(args))
    except jsonschema.SchemaError as err:
        return f"its schema is broken: {err.message[:200]}"
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path) or "the arguments"
    return f"{codec.escape(where[:80])}: {codec.escape(error.message[:300])}"


# -- libos as a tool sees it -------------------------------------------------------------------


@functools.cache
def wrappers() -> dict[str, str | None]:
    """Return each syscall a tool may call, with the argument its wrapper takes first (None: none)."""
    out: dict[str, str | None] = {}
    for name, entry in sorted(TABLE.items()):
        if entry.host_only or name in ("tool.open", "tool.permit"):
            continue
        fields = [f for f in dataclasses.fields(entry.args)]
        required = [f.name for f in fields if f.default is dataclasses.MISSING and
                    f.default_factory is dataclasses.MISSING]  # fmt: skip
        out[name] = required[0] if required else None
    return out


def _ts_type(schema: dict[str, Any]) -> str:
    """Return the TypeScript type of a JSON Schema (as msgspec makes them)."""
    if "anyOf" in schema:
        return " | ".join(sorted({_ts_type(s) for s in schema["anyOf"]}))
    kind = schema.get("type")
    if "enum" in schema:
        return " | ".join(codec.dumps(v) for v in schema["enum"])
    if kind == "string":
        return "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        return f"Array<{_ts_type(schema.get('items', {}))}>"
    if kind == "object":
        return "Record<string, unknown>"
    return "unknown"


def declarations() -> str:
    """Return the TypeScript declarations of ``Libos``: one method a syscall, typed from its Args."""
    from alos.tools import schema as args_schema

    families: dict[str, list[str]] = {}
    for name, first in wrappers().items():
        family, op = name.split(".")
        body = args_schema(TABLE[name].args)
        props: dict[str, Any] = body.get("properties", {})
        required = set(body.get("required", []))
        fields = "; ".join(f"{k}{'' if k in required else '?'}: {_ts_type(v)}" for k, v in props.items())
        doc = " ".join((TABLE[name].args.__doc__ or name).split())
        if first is None:
            sig = f"(args?: {{ {fields} }})"
        else:
            rest = fields.replace(f"{first}:", f"{first}?:", 1)
            first_type = _ts_type(props[first])
            sig = f"(args: {{ {fields} }}): Promise<any>;\n      {op}({first}: {first_type}, rest?: {{ {rest} }})"
        families.setdefault(family, []).append(f"      /** {doc} */\n      {op}{sig}: Promise<any>;")
    lines = [
        "// The libos a JIT tool is given: made from alos's syscall table by 'python -m alos.tooljit'.",
        "// Every call is one syscall of the process that runs the tool, decided and audited as any other.",
        "declare global {",
        "  interface Libos {",
        '    /** Make syscall name (e.g. "fs.read") with args; resolves to its result, rejects with a denial. */',
        "    syscall(name: string, args?: Record<string, unknown>): Promise<any>;",
    ]
    for family, methods in sorted(families.items()):
        lines.append(f"    {family}: {{")
        lines.extend(methods)
        lines.append("    };")
    lines += ["  }", "}", "export {};", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(declarations(), end="")
