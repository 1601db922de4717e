"""Image files: read an AgentImage from a YAML file, or from a directory holding ``image.yaml``
and an optional ``prompt.md``, and check it against schema.json and the syscall table.

Every error of a file is reported at once, one a line, sorted by line; each names the file,
the line, the field and what would be valid. The file may be hostile: only a regular file is
read (a FIFO never blocks), at most limits.IMAGE_MAX_BYTES of it; it must be UTF-8 YAML of one
document with no anchors, aliases, tags or duplicate keys; values quoted in messages are cut
and escaped. Imports yaml and jsonschema when it first loads a file, not when it is imported:
a front end may import it at the top and still start fast.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from alos import codec, limits
from alos.errors import Invalid, NotFound
from alos.images import Image, form, from_json

if TYPE_CHECKING:
    from alos.images.parse import Error, Spot

_ERRORS_SHOWN = 50  # errors one Invalid lists; a hostile file may have thousands


def load(path: str) -> Image:
    """Return the image in file ``path`` (YAML) or directory ``path`` (image.yaml and an optional
    prompt.md). Raises NotFound when there is nothing at ``path`` and Invalid listing every
    problem of the file, one a line: ``FILE:LINE: FIELD: what is wrong; what would be valid``."""
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        raise NotFound(f"no image file or directory at {codec.escape(path)}") from None
    except OSError as err:
        raise Invalid(f"{codec.escape(path)} cannot be read ({err.strerror})") from None
    file, prompt_file = (os.path.join(path, "image.yaml"), os.path.join(path, "prompt.md")) if is_dir else (path, "")
    if is_dir and not os.path.lexists(file):
        raise NotFound(f"{codec.escape(path)} holds no image.yaml; an image directory holds image.yaml and prompt.md")
    from alos.images.parse import parse  # yaml: on first use (see the module docstring)

    parsed = parse(read(file), file)
    data, spots, errors = parsed.value, parsed.spots, parsed.errors
    if prompt_file and os.path.lexists(prompt_file) and isinstance(data, dict):
        if "prompt" in data:
            errors.append((file, spots[("prompt",)][1], "prompt", "is given here and in prompt.md; keep one of them"))
            parsed.refused.append(("prompt",))
        else:
            data["prompt"] = read(prompt_file)
            spots[("prompt",)] = (prompt_file, 1)
    if data is not None or not errors:  # None: a syntax error, or a file whose one value is null
        errors += check(data, spots, parsed.refused, file)
    if errors:
        errors.sort(key=lambda e: (e[0] != file, e[1], e[2]))
        lines = [f"{codec.escape(f)}:{n}: {where}: {codec.escape(what)}" for f, n, where, what in errors]
        if len(lines) > _ERRORS_SHOWN:
            lines[_ERRORS_SHOWN:] = [f"... and {len(lines) - _ERRORS_SHOWN} more errors"]
        raise Invalid("\n".join(lines))
    return from_json(data, source=path)


def check(data: Any, spots: dict[form.Field, Spot], refused: Sequence[form.Field], file: str) -> list[Error]:
    """Return every problem of the parsed file ``data`` at its spot: the schema's first, then the
    checks the schema cannot make (tool names, grant syntax) where the schema found nothing.
    Fields in ``refused`` (and those in them) were reported already and are not checked again."""
    from alos.images import schema  # jsonschema: on first use (see the module docstring)

    found: list[form.Problem] = []
    reported: set[form.Field] = set()  # fields a problem is reported at
    holding: set[form.Field] = set()  # those fields and every field holding one
    said = set(refused)
    for where, what in [*schema.problems(data), *form.problems(data)]:
        outer = [where[:n] for n in range(len(where) + 1)]  # the field and every field holding it
        if any(f in said or f in reported for f in outer) or where in holding:
            continue  # said already: at this field, at one holding it, or at one inside it
        found.append((where, what))
        reported.add(where)
        holding.update(outer)
    return [(*_spot(where, spots, file), form.field_name(where), what) for where, what in found]


def _spot(where: form.Field, spots: dict[form.Field, Spot], file: str) -> Spot:
    """Return where field ``where`` is written, or where the nearest field holding it is."""
    while where and where not in spots:
        where = where[:-1]
    return spots.get(where, (file, 1))


def read(file: str) -> str:
    """Return the text of regular file ``file``, refusing anything else before reading it.

    Raises NotFound when it is missing and Invalid when it is not a regular file, is larger
    than limits.IMAGE_MAX_BYTES, or is not UTF-8 text."""
    shown = codec.escape(file)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO never blocks
    except FileNotFoundError:
        raise NotFound(f"no image file at {shown}") from None
    except OSError as err:
        why = "a symlink loop" if err.errno == errno.ELOOP else err.strerror
        raise Invalid(f"{shown} cannot be opened ({why})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Invalid(f"{shown} is not a regular file; an image is a YAML file or a directory with image.yaml")
        if st.st_size > limits.IMAGE_MAX_BYTES:
            raise Invalid(f"{shown} is {st.st_size} bytes; an image file is at most {limits.IMAGE_MAX_BYTES}")
        chunks: list[bytes] = []
        size = 0
        while size <= limits.IMAGE_MAX_BYTES:  # a file that grows meanwhile is still capped
            chunk = os.read(fd, limits.IMAGE_MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limits.IMAGE_MAX_BYTES:
        raise Invalid(f"{shown} grew past {limits.IMAGE_MAX_BYTES} bytes while it was read")
    text = codec.text_of(b"".join(chunks))
    if text is None:
        raise Invalid(f"{shown} is not UTF-8 text (it has NUL bytes or invalid UTF-8)")
    return text
