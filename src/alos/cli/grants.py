"""What a person grants at ``alos run``: --allow/--ask/--deny, --budget, and what an image requests.

Everything shown comes from an image file or the command line, and goes through the Screen.
"""

from __future__ import annotations

import sys

import click

from alos import limits
from alos.cli.screen import Screen, clip
from alos.errors import AlosError, Denied
from alos.images import Image
from alos.rights import Effect, Grant, parse_grant
from alos.types import BUDGETS, HOST


def written_by_a_person(registrant: int | None, found: Image, grant: bool) -> None:
    """Raise Denied when --grant-requested would grant what a process wrote: an image registered
    by a process (``registrant``, a pid) grants nothing that way; its grants must be named."""
    if grant and registrant not in (None, HOST):
        raise Denied(
            f"image {found.name} was registered by process {registrant}, not by a person: --grant-requested "
            "grants only what a person wrote; name the grants with --allow/--ask/--deny"
        )


def requested(ui: Screen, found: Image, workspace: str, grant: bool, chose: bool, approve: str) -> list[Grant]:
    """Show what the image requests and return what the person grants of it (all or nothing).
    At a terminal the person is asked, unless they named grants themselves (``chose``)."""
    if not found.requests:
        return []
    by_effect = {e: tuple(s for f, s in found.requests if f == e) for e in ("allow", "ask", "deny")}
    asked = parse_grants(workspace, **by_effect)  # shown as they would be issued: paths made absolute
    ui.say(("● ", "bold cyan"), f"image {clip(found.name, 64)} requests:")
    written = [s for e in ("allow", "ask", "deny") for s in by_effect[e]]
    for spec, g in zip(written, asked, strict=True):  # whole, never cut: exactly what a yes grants
        issued = f"{g.pattern}={','.join(sorted(g.rights))}"
        ui.say(f"    --{g.effect.value} ", (spec, "bold"), "" if issued == spec else f"  (that is {issued})")
    if not grant and not chose and approve == "prompt" and sys.stdin.isatty():
        grant = click.confirm("  Grant these?", default=False, err=True)
    if not grant:
        why = "you named the grants" if chose else "pass --grant-requested to grant them"
        ui.say(("  not granted", "yellow"), f" ({why}; an image grants nothing by itself)")
        return []
    return asked


def parse_grants(workspace: str, **specs: tuple[str, ...]) -> list[Grant]:
    """Return the grants of --allow/--ask/--deny; raises click.BadParameter (exit 2) naming the bad one."""
    out = []
    for option, given in specs.items():
        for spec in given:
            try:
                out.append(parse_grant(spec, Effect(option), workspace))
            except AlosError as err:
                raise click.BadParameter(err.message, param_hint=f"--{option}") from None
    return out


def parse_budget(specs: tuple[str, ...]) -> dict[str, int]:
    """Return the limits of ``--budget NAME=N`` options; raises click.BadParameter naming the bad one."""
    out: dict[str, int] = {}
    for spec in specs:
        name, sep, amount = spec.partition("=")
        if not sep or not amount.strip().isdigit():
            raise click.BadParameter(f"{spec!r} must look like NAME=N, e.g. model_calls=20", param_hint="--budget")
        if name.strip() not in BUDGETS:
            raise click.BadParameter(f"no budget {name!r}; budgets are {', '.join(BUDGETS)}", param_hint="--budget")
        if int(amount) > limits.BUDGET_MAX:
            raise click.BadParameter(f"{spec!r}: at most {limits.BUDGET_MAX}", param_hint="--budget")
        out[name.strip()] = int(amount)
    return out
