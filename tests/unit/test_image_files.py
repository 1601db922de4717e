"""Image files (alos.images.load) and the JSON form of images (alos.images): valid files load,
every error of a file is reported with its line and field, hostile files are refused cheaply,
the built-ins pass the schema, and importing alos.images stays cheap."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alos import codec, limits
from alos.errors import Invalid, NotFound
from alos.images import BUILTIN, IMAGES, Catalog, Image, Seed, digest, form, from_json, image, to_json
from alos.images.load import load
from alos.images.schema import schema, validator
from alos.syscall import TABLE
from alos.types import BUDGETS

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "src" / "alos" / "images" / "builtin"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "images.md"

GOOD = """\
name: demo
version: 2
description: reads and reports
prompt: |
  You read.
tools: [fs.read, fs.list, proc.exit]
grants:
  - allow: fs:src/*=read,list
  - ask: fs:notes.md=write
  - deny: fs:.git/*=write
budget:
  model_calls: 20
  tokens: 50000
model:
  temperature: 0.5
  max_tokens: 2000
  constrain: true
context:
  max_tokens: 8000
"""


def errors_of(path: Path) -> list[str]:
    with pytest.raises(Invalid) as err:
        load(str(path))
    return err.value.message.splitlines()


def test_a_valid_file_loads_with_every_field(tmp_path: Path) -> None:
    (tmp_path / "demo.yaml").write_text(GOOD)
    img = load(str(tmp_path / "demo.yaml"))
    assert img == Image(
        name="demo",
        description="reads and reports",
        syscalls=("fs.read", "fs.list", "proc.exit"),
        prompt="You read.\n",
        version="2",
        requests=(("allow", "fs:src/*=read,list"), ("ask", "fs:notes.md=write"), ("deny", "fs:.git/*=write")),
        budget=(("model_calls", 20), ("tokens", 50000)),
        temperature=0.5,
        max_tokens=2000,
        constrain=True,
        context_tokens=8000,
        source=str(tmp_path / "demo.yaml"),
    )


def test_a_directory_takes_its_prompt_from_prompt_md(tmp_path: Path) -> None:
    (tmp_path / "image.yaml").write_text("name: d\ndescription: x\ntools: [fs.read]\n")
    (tmp_path / "prompt.md").write_text("# Reader\nRead.\n")
    img = load(str(tmp_path))
    assert (img.name, img.prompt, img.version, img.source) == ("d", "# Reader\nRead.\n", "1", str(tmp_path))
    (tmp_path / "image.yaml").write_text("name: d\ndescription: x\nprompt: two\ntools: [fs.read]\n")
    assert errors_of(tmp_path) == [f"{tmp_path}/image.yaml:3: prompt: is given here and in prompt.md; keep one of them"]
    (tmp_path / "image.yaml").unlink()
    with pytest.raises(NotFound, match="holds no image.yaml"):
        load(str(tmp_path))
    with pytest.raises(NotFound, match="no image file or directory"):
        load(str(tmp_path / "nothing.yaml"))


def test_every_error_of_a_file_is_reported_with_its_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: demo\n"  # 1
        "description: five errors\n"  # 2
        "tools:\n"  # 3
        "  - fs.read\n"  # 4
        "  - fs.raed\n"  # 5: a tool that is no syscall
        "grants:\n"  # 6
        "  - allow: fs:src/*=read,lst\n"  # 7: a grant with a right that does not exist
        "model:\n"  # 8
        "  temperature: 3.5\n"  # 9: out of range
        "  max_tokens: many\n"  # 10: wrong type
        "contxt:\n"  # 11: an unknown key
        "  max_tokens: 1000\n"
    )
    lines = errors_of(bad)
    expected = [
        (5, "tools[1]", "'fs.raed' is not a syscall; did you mean fs.read"),
        (7, "grants[0].allow", "unknown right 'lst'; rights are read, write"),
        (9, "model.temperature", "3.5 is out of range; a number from 0 to 2"),
        (10, "model.max_tokens", "is a string; it must be an integer from 1 to 1000000"),
        (11, "contxt", "is not a field of an image; did you mean 'context'?"),
    ]
    assert len(lines) == len(expected), lines
    for line, (number, field, words) in zip(lines, expected):
        assert line.startswith(f"{bad}:{number}: {field}: "), line
        assert words in line, line
    assert "docs/syscalls.md" in lines[0]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("name: Demo\n", 1, "name: 'Demo' is not valid: The image's name: a lowercase letter"),
        ("version: 1.0\n", 1, "version: is a number; it must be a string or an integer from 0 to 2147483647 (quote it"),
        ("tools: [fs.read, fs.read]\n", 1, "tools[1]: 'fs.read' is listed twice"),
        ("tools: [cap.grant]\n", 1, "tools[0]: cap.grant is host-only"),
        (
            "grants:\n  - allow: fs:*=read\n    ask: fs:*=write\n",
            2,
            "grants[0]: has 2 fields; it takes exactly one of allow, ask, deny",
        ),
        ("grants:\n  - alow: fs:*=read\n", 2, "grants[0].alow: is not a field of grants[0]; did you mean 'allow'?"),
        ("grants: [{allow: 'nokind=read'}]\n", 1, "grants[0].allow: grant 'nokind=read': resource must be KIND:NAME"),
        ("budget:\n  tokens: -1\n", 2, "budget.tokens: -1 is out of range; an integer from 0 to 4611686018427387904"),
        ("budget:\n  tokenz: 1\n", 2, "budget.tokenz: is not a field of budget; did you mean 'tokens'?"),
        ("model: {constrain: maybe}\n", 1, "model.constrain: is a string; it must be true or false"),
        ("model: {temperature: .nan}\n", 1, "model.temperature: '.nan' is not a finite number"),
        ("context: {max_tokens: 100}\n", 1, "context.max_tokens: 100 is out of range; an integer from 256 to 10000000"),
        ("budget: {children: 2.0}\n", 1, "budget.children: is a number; it must be an integer"),
        ("description: '   '\n", 1, "description: '   ' is not valid"),
    ],
)
def test_each_field_says_what_would_be_valid(tmp_path: Path, text: str, line: int, words: str) -> None:
    base = {"name": "demo", "description": "x", "tools": ["fs.read"]}
    keys = {k.split(":")[0] for k in re.findall(r"^(\w+):", text, re.M)}
    head = "".join(f"{k}: {json.dumps(v)}\n" for k, v in base.items() if k not in keys)
    f = tmp_path / "i.yaml"
    f.write_text(text + head)
    lines = errors_of(f)
    assert any(x.startswith(f"{f}:{line}: {words}") for x in lines), lines


def test_a_required_field_missing_is_named(tmp_path: Path) -> None:
    f = tmp_path / "i.yaml"
    f.write_text("name: demo\n")
    assert errors_of(f) == [
        f"{f}:1: description: is missing; required here: name, description, tools",
        f"{f}:1: tools: is missing; required here: name, description, tools",
    ]


# -- hostile files -------------------------------------------------------------------------


def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    for path in (tmp_path / "fifo", Path("/dev/zero")):
        with pytest.raises(Invalid, match="is not a regular file"):
            load(str(path))  # a FIFO with no writer would block an open without O_NONBLOCK
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "d" / "image.yaml")
    with pytest.raises(Invalid, match="is not a regular file"):
        load(str(tmp_path / "d"))


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    f = tmp_path / "huge.yaml"
    with open(f, "wb") as out:
        out.truncate(limits.IMAGE_MAX_BYTES + 1)  # sparse: its size alone refuses it
    with pytest.raises(Invalid, match=f"is {limits.IMAGE_MAX_BYTES + 1} bytes; an image file is at most"):
        load(str(f))


def test_anchors_and_aliases_are_refused_so_no_bomb_expands(tmp_path: Path) -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(lines) + "\ntools: *i\n")  # 9**10 strings, were it expanded
    found = errors_of(f)
    alias = "anchors and aliases (&, *) are not accepted"
    assert f"{f}:1: a: {alias}" in found[0]
    assert any(x.startswith(f"{f}:10: tools: {alias}") for x in found), found


def test_a_duplicate_key_is_refused_naming_both_lines(tmp_path: Path) -> None:
    f = tmp_path / "dup.yaml"
    f.write_text(
        "name: demo\ndescription: x\ntools: [fs.read]\nmodel:\n  temperature: 1\n  temperature: 2\nname: again\n"
    )
    assert errors_of(f) == [
        f"{f}:6: model.temperature: is given twice, on lines 5 and 6; keep one",
        f"{f}:7: name: is given twice, on lines 1 and 7; keep one",
    ]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"name: \x00\x01\xff\n", "is not UTF-8 text"),
        (b"\xff\xfename: x\n", "is not UTF-8 text"),
    ],
)
def test_a_binary_file_is_refused(tmp_path: Path, data: bytes, words: str) -> None:
    f = tmp_path / "bin.yaml"
    f.write_bytes(data)
    with pytest.raises(Invalid, match=words):
        load(str(f))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: a\n---\nname: b\n", ":2: (image): holds more than one YAML document"),
        ("name: a\n\tdescription: x\n", ":2: (image): not valid YAML: "),
        ("", ":1: (image): is empty"),
        ("- a\n- b\n", ":1: (image): is a list; it must be a mapping of name, version"),
        ("name: !!python/object:os.system a\n", ":1: name: the tag '!!python/object:os.system' is not accepted"),
        ("tools: !!set {fs.read}\n", ":1: tools: the tag '!!set' is not accepted"),
        ("? [a, b]\n: c\n", ":1: (image): a key must be a plain name"),
        ("<<: {name: a}\n", ":1: (image): a key must be a plain name"),
        ("tools:\n" + "  - x\n" * 25_000, "(image): has over 20000 values"),
        ("name: " + "[" * 20 + "]" * 20 + "\n", "is nested more than 8 levels deep"),
        ("budget: {tokens: " + "9" * 5000 + "}\n", "budget.tokens: '99999"),
    ],
)
def test_yaml_an_image_may_not_use_is_refused_with_its_line(tmp_path: Path, text: str, words: str) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(text)
    found = errors_of(f)
    assert any(x.startswith(str(f)) and words in x for x in found), found


def test_what_a_hostile_file_says_is_escaped_and_cut(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text('name: demo\ndescription: x\ntools: ["fs.read\\e[2J\\u202e' + "y" * 500 + '"]\n')
    (line,) = errors_of(f)
    assert "\x1b" not in line and "\u202e" not in line and len(line) < 300, line


# -- built-ins and the JSON form --------------------------------------------------------------


def builtin_data(name: str) -> dict[str, object]:
    file = BUILTIN_DIR / f"{name}.yaml"
    if file.exists():
        data: dict[str, object] = yaml.safe_load(file.read_text())
        return data
    data = yaml.safe_load((BUILTIN_DIR / name / "image.yaml").read_text())
    data["prompt"] = (BUILTIN_DIR / name / "prompt.md").read_text()
    return data


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_passes_the_schema_and_lists_only_syscalls(name: str) -> None:
    data = builtin_data(name)
    assert [e.message for e in validator().iter_errors(data)] == []
    found = image(name)
    assert found == IMAGES[name] and found.source == "built-in" and found.prompt.strip()
    assert found.syscalls and all(s in TABLE and not TABLE[s].host_only for s in found.syscalls)
    assert found.requests, "a built-in says what it needs"
    path = BUILTIN_DIR / name if (BUILTIN_DIR / name).is_dir() else BUILTIN_DIR / f"{name}.yaml"
    assert load(str(path)) == Image(**{**{k: getattr(found, k) for k in Image.__slots__}, "source": str(path)})
    assert [e.message for e in validator().iter_errors(to_json(found))] == []


def test_the_builtin_tool_tables_stay_as_they_were() -> None:
    from alos.images import BASE, READER  # read on first use

    assert BASE.syscalls == (
        "fs.read", "fs.write", "fs.list", "fs.mkdir", "fs.delete", "human.ask", "human.tell", "proc.spawn",
        "proc.fork", "proc.exec", "proc.wait", "proc.merge", "proc.signal", "proc.list", "proc.chdir",
        "msg.send", "msg.recv", "clock.now", "clock.sleep", "obj.create", "obj.read", "obj.write", "obj.append",
        "obj.list", "obj.log", "obj.link", "obj.delete", "obj.from_file", "obj.to_file", "obj.share", "ns.create",
        "ckpt.create", "ckpt.list", "ckpt.diff", "ckpt.restore", "ckpt.fork", "proc.exit",
    )  # fmt: skip
    assert READER.syscalls == ("fs.read", "fs.list", "human.tell", "msg.send", "msg.recv", "clock.now", "proc.exit")
    assert list(IMAGES) == list(BUILTIN) == ["base", "reader", "coder", "reviewer", "toolmaker"]
    assert "tool.register" in image("toolmaker").syscalls and "tool.register" not in BASE.syscalls
    assert "fs.write" not in READER.syscalls and "proc.spawn" in image("coder").syscalls
    with pytest.raises(NotFound, match="no image 'nosuch'; known images: base, coder, reader, reviewer, toolmaker"):
        image("nosuch")


def test_the_json_form_round_trips_and_its_digest_is_of_canonical_json() -> None:
    catalog = Catalog()
    for name in BUILTIN:
        form = catalog.builtin(name)
        assert form is not None and catalog.check(form) == form and from_json(form, source="built-in") == image(name)
        assert digest(image(name)) == hashlib.sha256(codec.dumps(form).encode()).hexdigest()
    assert catalog.builtin("base@1") is None and catalog.names() == list(BUILTIN)
    spelled = {"tools": ["fs.read"], "description": "x", "name": "a", "version": 3, "model": {"temperature": 1}}
    assert catalog.check(spelled) == {
        "name": "a", "version": "3", "description": "x", "prompt": "", "tools": ["fs.read"], "grants": [],
        "budget": {}, "model": {"temperature": 1.0}, "context": {},
    }  # fmt: skip


DIGEST = "a3fcc9716a334296eaba3395fa4562834cf6cf2041b381bd74b08a77b578651a"
NOTE_DIGEST = "65097f6940501471da28256d667217c715f3845adfdc7d1bdc3e200cf25d03ec"
SEED = {"name": "notes/today", "type": "text", "digest": DIGEST, "bytes": 55}
# what the schema lets through and from_json's checks (which the loader runs too) refuse
LOADER_ONLY = [
    ("name", "a\n"),
    ("tools", ["fs.nope"]),
    ("grants", [{"allow": "fs:*=fly"}]),
    ("types", {"note": {"type": "nope"}}),
    ("types", {"note": {"pattern": "("}}),
    ("types", {"note": {"$ref": "https://example.com/note.json"}}),
    ("types", {"note": {"items": {"$ref": "other.json#/a"}}}),
    ("types", {"note": {"$ref": "#/$defs/none"}}),
    ("types", {"note": {"$defs": {"a": {"$id": "urn:x"}}}}),
    ("types", {"note": {"description": "x" * limits.OBJ_SCHEMA_MAX_BYTES}}),
    ("objects", [{**SEED, "name": "a\n"}]),
    ("objects", [{**SEED, "type": "point"}]),
    ("objects", [SEED, SEED]),
]
BAD_FORMS = [
    ("name", "a\n"),  # re.search's $ would let a trailing newline through
    ("name", "A"),
    ("name", 7),
    ("version", True),
    ("version", -1),
    ("version", "1 0"),
    ("description", ""),
    ("prompt", ["x"]),
    ("tools", "fs.read"),
    ("tools", ["fs.nope"]),
    ("tools", ["fs.read"] * 2),
    ("tools", [f"t{i}" for i in range(65)]),
    ("grants", [{}]),
    ("grants", [{"allow": "fs:*=read", "deny": "fs:*=read"}]),
    ("grants", [{"grant": "fs:*=read"}]),
    ("grants", [{"allow": "fs:*=fly"}]),
    ("grants", [{"allow": 3}]),
    ("grants", {"allow": "fs:*=read"}),
    ("budget", {"tokens": True}),
    ("budget", {"tokens": 1 << 63}),
    ("budget", {"pennies": 1}),
    ("model", {"temperature": 2.5}),
    ("model", {"temperature": "hot"}),
    ("model", {"max_tokens": 0}),
    ("model", {"constrain": 1}),
    ("model", {"top_p": 1}),
    ("context", {"max_tokens": 255}),
    ("context", []),
    ("context", {"objects": "plan"}),
    ("context", {"objects": ["plan", "plan"]}),
    ("context", {"objects": [f"o{i}" for i in range(17)]}),
    ("context", {"objects": [".."]}),
    ("context", {"objects": [3]}),
    ("types", []),
    ("types", {"Note": {}}),
    ("types", {"text": {}}),
    ("types", {"note": ["type", "object"]}),
    ("types", {"note": "object"}),
    ("types", {f"t{i}": {} for i in range(limits.OBJ_TYPES_MAX + 1)}),
    *((key, value) for key, value in LOADER_ONLY if key == "types"),
    ("objects", {"plan": SEED}),
    ("objects", ["plan"]),
    ("objects", [{**SEED, "name": "../x"}]),
    ("objects", [{**SEED, "name": "a//b"}]),
    ("objects", [{**SEED, "name": "a/./b"}]),
    ("objects", [{**SEED, "name": ""}]),
    ("objects", [{**SEED, "name": "x" * (limits.OBJ_NAME_MAX_CHARS + 1)}]),
    ("objects", [{**SEED, "type": "Note"}]),
    ("objects", [{**SEED, "digest": "sha256:" + DIGEST}]),
    ("objects", [{**SEED, "digest": DIGEST.upper()}]),
    ("objects", [{**SEED, "bytes": -1}]),
    ("objects", [{**SEED, "bytes": limits.OBJ_MAX_BYTES + 1}]),
    ("objects", [{**SEED, "bytes": 1.0}]),
    ("objects", [{**SEED, "size": 1}]),
    ("objects", [{"name": "plan"}]),
    *((key, value) for key, value in LOADER_ONLY if key == "objects"),
    ("extra", 1),
]


@pytest.mark.parametrize(("key", "value"), BAD_FORMS)
def test_from_json_and_the_schema_refuse_the_same_forms(key: str, value: object) -> None:
    body = {**to_json(image("reader")), key: value}
    with pytest.raises(Invalid, match=f"(?m)^{key}"):
        from_json(body)
    assert bool(list(validator().iter_errors(body))) is ((key, value) not in LOADER_ONLY)


def test_from_json_refuses_what_is_no_image() -> None:
    for body in (None, [], "x", {"name": "a"}, {1: 2}):
        with pytest.raises(Invalid, match="image is not valid"):
            from_json(body)


def test_the_schema_is_strict_and_says_what_every_field_means() -> None:
    s = schema()
    validator().check_schema(s)
    assert list(s["properties"]["budget"]["properties"]) == list(BUDGETS)

    def walk(node: dict[str, object], where: str) -> None:
        assert node.get("description"), f"{where} has no description"
        if node.get("type") == "object" and "propertyNames" in node:  # a mapping of names (env): each checked
            assert isinstance(node.get("additionalProperties"), dict), f"{where} leaves its values unchecked"
        elif node.get("type") == "object":
            assert node.get("additionalProperties") is False, f"{where} allows unknown keys"
        for key, sub in dict(node.get("properties", {})).items():  # type: ignore[call-overload]
            walk(sub, f"{where}.{key}")
        items = node.get("items")
        if isinstance(items, dict):
            walk(items, f"{where}[]")

    walk(s, "(image)")


def test_importing_alos_images_imports_neither_yaml_nor_jsonschema() -> None:
    """alos --help and alos run base never pay for them (jsonschema alone takes ~130 ms)."""
    code = "import sys, alos, alos.images.load; print(sorted(m for m in ('yaml', 'jsonschema') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_example_of_the_docs_is_a_valid_image(tmp_path: Path) -> None:
    blocks = re.findall(r"^```yaml\n(.*?)^```", DOCS.read_text(), re.M | re.S)
    assert blocks, "docs/images.md shows a full image file"
    for i, block in enumerate(blocks):
        f = tmp_path / f"{i}.yaml"
        f.write_text(block)
        load(str(f))


# -- Object Memory: types, seed objects, context.objects ---------------------------------------

TYPED = """\
name: notes
description: keeps typed notes
tools: [fs.read, proc.exit]
context:
  max_tokens: 8000
  objects: [plan, notes/today]
types:
  note:
    type: object
    required: [title]
    properties:
      title: {type: string}
      tags: {type: array, items: {$ref: "#/$defs/tag"}}
      meta:
        type: object
        properties:
          author:
            type: object
            properties:
              name: {type: object, properties: {first: {type: string}}}
    $defs:
      tag: {type: string}
objects:
  - {name: plan, type: plan, digest: a3fcc9716a334296eaba3395fa4562834cf6cf2041b381bd74b08a77b578651a, bytes: 55}
  - name: notes/today
    type: note
    digest: 65097f6940501471da28256d667217c715f3845adfdc7d1bdc3e200cf25d03ec
    bytes: 63
"""


def test_types_seed_objects_and_shown_objects_load_and_round_trip(tmp_path: Path) -> None:
    (tmp_path / "notes.yaml").write_text(TYPED)
    img = load(str(tmp_path / "notes.yaml"))  # its schema nests deeper than any other field may
    assert img.context_objects == ("plan", "notes/today") and img.context_tokens == 8000
    assert img.objects == (Seed("plan", "plan", DIGEST, 55), Seed("notes/today", "note", NOTE_DIGEST, 63))
    assert list(img.types) == ["note"] and img.types["note"]["$defs"] == {"tag": {"type": "string"}}
    body = to_json(img)
    assert body["context"] == {"max_tokens": 8000, "objects": ["plan", "notes/today"]}
    assert body["objects"][0] == {"name": "plan", "type": "plan", "digest": DIGEST, "bytes": 55}
    assert from_json(body, source=img.source) == img and Catalog().check(body) == body
    assert [e.message for e in validator().iter_errors(body)] == []
    assert hash(img) == hash(from_json(body, source=img.source))  # types are JSON, not hashed; the rest is
    unset = to_json(image("reader"))
    assert not {"types", "objects"} & set(unset) and "objects" not in unset["context"]  # digests stay as they were


def test_an_images_types_are_its_own_copy() -> None:
    body = {**to_json(image("reader")), "types": {"note": {"type": "object"}}}
    img = from_json(body)
    body["types"]["note"]["type"] = "string"
    assert img.types == {"note": {"type": "object"}}


@pytest.mark.parametrize(
    ("key", "value", "where", "words"),
    [
        ("types", {"Note": {}}, "types.Note", "is not a type name; a type name is a lowercase letter"),
        ("types", {"json": {}}, "types.json", "is a built-in object type (text, json, bytes, file_ref"),
        ("types", {"note": []}, "types.note", "is a list; it must be a JSON Schema: a mapping"),
        ("types", {"note": {"type": "nope"}}, "types.note", "is not a valid JSON Schema (draft 2020-12) at type:"),
        ("types", {"note": {"properties": {"a": {"minimum": "0"}}}}, "types.note", "at properties/a/minimum: '0'"),
        (
            "types",
            {"note": {"$ref": "https://x.example/n.json"}},
            "types.note",
            "$ref 'https://x.example/n.json' leaves",
        ),
        (
            "types",
            {"note": {"$dynamicRef": "n.json#meta"}},
            "types.note",
            "$dynamicRef 'n.json#meta' leaves the schema",
        ),
        ("types", {"note": {"$ref": "#anchor"}}, "types.note", "only a local '#/...' pointer is allowed"),
        ("types", {"note": {"$ref": "#/$defs/gone"}}, "types.note", "$ref '#/$defs/gone' points at nothing"),
        ("types", {"note": {"$defs": {"a": {"$id": "urn:a"}}}}, "types.note", "has a $id inside it"),
        (
            "types",
            {"note": {"a": "x" * 70_000}},
            "types.note",
            "is 70008 bytes as JSON; a type's schema is at most 65536",
        ),
        ("types", {f"t{i}": {} for i in range(65)}, "types", "declares 65 types; at most 64"),
        ("types", "note", "types", "is a string; it must be a mapping of type name: JSON Schema"),
        ("objects", [{**SEED, "name": "a/../b"}], "objects[0].name", "'a/../b' is not valid; an object name is"),
        ("objects", [{**SEED, "name": "x" * 201}], "objects[0].name", "has 201 characters; at most 200"),
        ("objects", [{**SEED, "type": "point"}], "objects[0].type", "'point' is not an object type; the built-in"),
        ("objects", [{**SEED, "digest": "sha256:" + DIGEST}], "objects[0].digest", "without a 'sha256:' prefix"),
        ("objects", [{**SEED, "digest": "abc"}], "objects[0].digest", "'abc' is not valid; a digest is the sha256"),
        ("objects", [{**SEED, "bytes": -1}], "objects[0].bytes", "-1 is out of range; an integer from 0 to 16777216"),
        ("objects", [SEED, {**SEED, "type": "json"}], "objects[1].name", "'notes/today' is listed twice"),
        ("objects", [{**SEED, "extra": 1}], "objects[0].extra", "is not a field of a seed object; its fields are"),
        ("objects", [{"name": "plan"}], "objects[0].digest", "is missing; a seed object needs name, type, digest"),
        ("objects", [7], "objects[0]", "is an integer; a seed object is a mapping of name, type, digest, bytes"),
        ("objects", [SEED] * 10_001, "objects", "lists 10001 objects; at most 10000"),
        ("context", {"objects": "plan"}, "context.objects", "is a string; it must be a list of object names"),
        ("context", {"objects": list("abcdefghijklmnopq")}, "context.objects", "lists 17 objects; at most 16"),
        ("context", {"objects": ["a", "b", "a"]}, "context.objects[2]", "'a' is listed twice"),
        ("context", {"objects": ["/a"]}, "context.objects[0]", "'/a' is not valid; an object name is"),
    ],
)
def test_each_object_memory_field_names_its_problem(key: str, value: object, where: str, words: str) -> None:
    body = {**to_json(image("reader")), key: value}
    found = [(form.field_name(w), what) for w, what in form.problems(body)]
    assert any(w == where and words in what for w, what in found), found


def test_a_seed_may_have_a_type_the_image_declares() -> None:
    body = {**to_json(image("reader")), "types": {"point": {"type": "object"}}, "objects": [{**SEED, "type": "point"}]}
    assert from_json(body).objects[0].type == "point"
    del body["types"]
    with pytest.raises(Invalid, match=r"objects\[0\]\.type: 'point' is not an object type; .*result, context$"):
        from_json(body)


def test_hostile_type_schemas_are_described_never_raised() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100_000):  # far past Python's recursion limit
        node["not"] = {}
        node = node["not"]  # type: ignore[assignment]
    wide_enum: list[object] = []
    inner = wide_enum
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    hostile = [
        (deep, "is nested more than 64 levels deep"),
        ({"enum": wide_enum}, "is nested more than 64 levels deep"),
        ({"minimum": float("nan")}, "is not JSON"),
        ({"type": {1: 2}}, "is not JSON"),
        ({"properties": {1: {}}}, "is not JSON: its keys are strings"),
        ({"enum": [b"x"]}, "is not JSON"),
        ({"title": "\ud800"}, "is not JSON: its strings must be UTF-8 text"),
    ]
    for bad, words in hostile:
        found = form.problems({**to_json(image("reader")), "types": {"t": bad}})
        assert [w for w, _ in found] == [("types", "t")] and words in found[0][1], found


def test_data_in_a_schema_is_not_taken_for_a_ref() -> None:
    data = {"properties": {"$ref": {"const": {"$ref": "https://x.example"}}, "$id": {"enum": ["$id"]}}}
    assert form.problems({**to_json(image("reader")), "types": {"t": data}}) == []


def test_a_yaml_schema_nested_past_the_json_limit_is_refused_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "deep.yaml"
    f.write_text("name: d\ndescription: x\ntools: [fs.read]\ntypes:\n  t: " + "{not: " * 70 + "{}" + "}" * 70 + "\n")
    lines = errors_of(f)
    assert any(x.startswith(f"{f}:5: types.t.not.not") and "is nested more than 66 levels deep" in x for x in lines)
    assert all(len(x) < 800 for x in lines), lines


def test_a_file_reports_each_object_memory_error_at_its_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "name: d\n"  # 1
        "description: x\n"  # 2
        "tools: [fs.read]\n"  # 3
        "context:\n"  # 4
        "  objects: [plan, ../up]\n"  # 5
        "types:\n"  # 6
        "  note: {$ref: 'https://x.example/n.json'}\n"  # 7
        "objects:\n"  # 8
        "  - name: plan\n"  # 9
        "    type: point\n"  # 10
        f"    digest: {DIGEST}\n"  # 11
        "    bytes: 1\n"  # 12
        f"  - {{name: plan, type: text, digest: {DIGEST}, bytes: 1}}\n"  # 13
    )
    lines = errors_of(f)
    expected = [
        (5, "context.objects[1]", "'../up' is not valid"),
        (7, "types.note", "leaves the schema"),
        (10, "objects[0].type", "'point' is not an object type"),
        (13, "objects[1].name", "'plan' is listed twice"),
    ]
    assert len(lines) == len(expected), lines
    for line, (number, field, words) in zip(lines, expected):
        assert line.startswith(f"{f}:{number}: {field}: ") and words in line, line


def test_the_schema_states_the_object_limits() -> None:
    props = schema()["properties"]
    seed = props["objects"]["items"]["properties"]
    shown = props["context"]["properties"]["objects"]
    assert props["types"]["maxProperties"] == limits.OBJ_TYPES_MAX
    assert props["objects"]["maxItems"] == limits.OBJ_SEED_MAX
    assert seed["bytes"]["maximum"] == limits.OBJ_MAX_BYTES
    assert seed["name"]["maxLength"] == shown["items"]["maxLength"] == limits.OBJ_NAME_MAX_CHARS
    assert seed["name"]["pattern"] == shown["items"]["pattern"]
    assert shown["maxItems"] == form.CONTEXT_OBJECTS_MAX
    assert f"(?!({'|'.join(form.OBJECT_TYPES)})$)" in props["types"]["propertyNames"]["pattern"]
    assert str(limits.OBJ_SCHEMA_MAX_BYTES) in props["types"]["description"]


def test_only_an_image_with_types_imports_jsonschema() -> None:
    code = (
        "import sys, alos.images as i\n"
        "body = i.to_json(i.image('reader'))\n"
        "i.from_json({**body, 'objects': [], 'context': {'objects': ['plan']}})\n"
        "print('jsonschema' in sys.modules)\n"
        "i.from_json({**body, 'types': {'t': {'type': 'object'}}})\n"
        "print('jsonschema' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_the_object_rules_are_the_kernels() -> None:
    """form.py says the built-in object types and the name rule again, so that checking an image
    imports no kernel; these keep the two in step."""
    from alos.kernel import objects

    assert form.OBJECT_TYPES == objects.BUILTIN_TYPES
    names = ["plan", "drafts/intro.md", "a.b/c_d-e", "x" * 200, "x" * 201, "", ".", "..", "a/..", "./a", "a//b",
             "/a", "a/", "a b", "a\n", "é", "a/.hidden", "..a"]  # fmt: skip
    for name in names:
        found: list[form.Problem] = []
        form.object_name(name, ("n",), found)
        try:
            objects.check_name(name)
        except Invalid:
            assert found, f"the kernel refuses {name!r}; an image accepts it"
        else:
            assert not found, f"the kernel accepts {name!r}; an image refuses it: {found}"
