"""The rules STYLE.md makes checkable: one table with one shape, sizes, the public surface."""

import ast
import dataclasses
from pathlib import Path

import pytest

import alos
from alos import images, tools
from alos.syscall import TABLE, Change, Outside, Question, Read

SRC = Path(alos.__file__).parent


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_entry_is_one_syscall_with_one_kind_of_effect(name: str) -> None:
    entry = TABLE[name]
    assert entry.name == name and "." in name
    assert isinstance(entry.effect, (Read, Outside, Change, Question)), f"{name}: {entry.effect!r}"
    assert dataclasses.is_dataclass(entry.args)
    assert entry.args.__dataclass_params__.frozen, f"{name}'s Args must be frozen"
    assert entry.args.__doc__, f"{name}'s Args need a docstring: it is the tool description"


def test_what_is_journaled_follows_from_the_kind_of_effect() -> None:
    journaled = {name for name, e in TABLE.items() if e.journaled}
    outside = {name for name, e in TABLE.items() if isinstance(e.effect, Outside)}
    assert outside == {"fs.write", "fs.mkdir", "fs.delete", "human.tell", "shell.run", "net.fetch", "obj.to_file"}
    assert journaled == outside | {
        "human.ask", "proc.spawn", "proc.fork", "proc.exec", "proc.wait", "proc.merge", "proc.signal",
        "proc.chdir", "msg.send", "msg.recv", "clock.sleep", "image.register", "obj.create", "obj.write",
        "obj.append", "obj.link", "obj.delete", "obj.from_file", "obj.share", "ns.create", "ckpt.create",
        "ckpt.restore", "ckpt.fork", "ckpt.commit", "tool.propose", "tool.register", "tool.unregister",
    }  # fmt: skip


def test_a_restore_lists_every_effect_that_reaches_outside_the_process() -> None:
    from alos.kernel.ckpt import OUTSIDE

    reaching = {name for name, e in TABLE.items() if isinstance(e.effect, Outside) or e.reaches}
    assert reaching <= set(OUTSIDE), sorted(reaching - set(OUTSIDE))


def test_no_jit_tool_name_can_be_an_image_tool_s() -> None:
    from alos.primitives.tool import _FAMILIES

    assert {name.partition(".")[0] for name in TABLE} <= _FAMILIES


def test_the_index_of_effects_names_what_a_restore_lists() -> None:
    import re

    from alos.kernel.ckpt import OBJECT_CHANGES, OUTSIDE

    schema = (Path(__file__).parents[2] / "src" / "alos" / "store" / "schema.sql").read_text()
    index = schema[schema.index("CREATE INDEX audit_effects") :].split(");")[0]
    assert set(re.findall(r"'([a-z_.]+)'", index)) - {"ok"} == set(OUTSIDE + OBJECT_CHANGES)
    assert {name for name, e in TABLE.items() if e.host_only} == {"human.answer", "cap.grant", "cap.revoke"}


def test_tools_are_generated_from_the_table() -> None:
    table = tools.table(images.BASE)
    assert sorted(table) == sorted(s.replace(".", "_") for s in images.BASE.syscalls)
    write = table["fs_write"]
    assert write.parameters["required"] == ["path", "content"]
    assert write.description == " ".join((TABLE["fs.write"].args.__doc__ or "").split())


def test_images_only_expose_syscalls_processes_may_call() -> None:
    for image in images.IMAGES.values():
        for name in image.syscalls:
            assert not TABLE[name].host_only, f"image {image.name} shows host-only {name}"


def test_modules_stay_small_or_say_why() -> None:
    for path in SRC.rglob("*.py"):
        lines = path.read_text().count("\n")
        head = "\n".join(path.read_text().splitlines()[:20])
        assert lines <= 600 or "Size:" in head, f"{path} has {lines} lines and no Size: reason"


def test_every_module_says_its_contract() -> None:
    for path in SRC.rglob("*.py"):
        if path.name == "__main__.py":
            continue
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no module docstring"


def test_the_syscall_page_is_generated_not_kept_by_hand() -> None:
    from alos.docs import syscalls_markdown

    page = Path(__file__).parents[2] / "docs" / "syscalls.md"
    assert page.read_text() == syscalls_markdown(), "run: python -m alos.docs > docs/syscalls.md"


def test_nothing_in_the_cli_prints_but_the_screen() -> None:
    """Every byte the CLI writes goes through cli/screen.py, which makes agent strings safe."""
    for path in (SRC / "cli").glob("*.py"):
        if path.name == "screen.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                assert name not in ("print", "echo", "secho"), f"{path.name}:{node.lineno} prints around screen"
            if isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr"):
                raise AssertionError(f"{path.name}:{node.lineno} reaches sys.{node.attr} around screen")


def test_every_resource_kind_a_grant_may_name_is_checked_by_some_syscall() -> None:
    """A grant on a kind nothing checks would be a capability that means nothing: refused."""
    import io
    import tokenize

    from alos.rights import KINDS

    strings = set()  # the string literals of the primitives: where a Need's resource is spelled
    for path in (SRC / "primitives").glob("*.py"):
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if tok.type == tokenize.STRING or tok.type == getattr(tokenize, "FSTRING_START", -1):
                strings.add(tok.string.lstrip("rbfRBF").strip("\"'"))
    for kind in KINDS:
        assert any(s == kind or s.startswith(f"{kind}:") for s in strings), f"no syscall needs a {kind}: resource"


def test_the_libos_a_tool_is_checked_against_is_made_from_the_table() -> None:
    from alos.tooljit import declarations, wrappers

    shipped = (Path(__file__).parents[2] / "src" / "alos" / "providers" / "jit_libos.ts").read_text()
    assert shipped == declarations(), "run: python -m alos.tooljit > src/alos/providers/jit_libos.ts"
    assert "cap.grant" not in wrappers() and "tool.open" not in wrappers() and wrappers()["fs.read"] == "path"
