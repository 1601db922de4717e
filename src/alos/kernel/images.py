"""The image registry: which image a name means, and storing images with their versions.

A ref names one image for good: ``NAME`` for a built-in, ``NAME@VERSION`` for a registered
version, ``NAME@sha256:HEX`` for an image a run took from a file. A process keeps the ref it
started with, so registering a name again never changes a running process. Refs are immutable,
so their bodies are cached for the life of the kernel.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from alos import codec, limits
from alos.errors import Conflict, Invalid, NotFound
from alos.kernel.kernel import Kernel, Tx
from alos.store import rows
from alos.types import Pid


def digest(body: dict[str, Any]) -> str:
    """Return the sha256 of an image's canonical JSON form."""
    return hashlib.sha256(codec.dumps(body).encode()).hexdigest()


def lookup(kernel: Kernel, name: str) -> tuple[str, dict[str, Any]]:
    """Return (ref, body) of the image ``name`` means: a ref, a built-in, or the newest registered
    version. Raises NotFound naming the images there are."""
    if "@" in name:
        return name, body(kernel, name)
    found = kernel.images.builtin(name)
    if found is not None:
        return name, found
    latest = rows.latest_image(kernel.store.conn, name)
    if latest is None:
        known = sorted({*kernel.images.names(), *(r[0] for r in rows.registered_images(kernel.store.conn))})
        raise NotFound(f"no image {name[:80]!r}; images are {', '.join(known)} (or pass the path of an image file)")
    ref = f"{name}@{latest[0]}"
    return ref, body(kernel, ref)


def body(kernel: Kernel, ref: str) -> dict[str, Any]:
    """Return the JSON form of the image ``ref`` names; raises NotFound."""
    cached = kernel.image_bodies.get(ref)
    if cached is not None:
        return cached
    found = kernel.images.builtin(ref)
    if found is None:
        row = rows.load_image(kernel.store.conn, ref)
        if row is None:
            raise NotFound(f"no image {ref[:80]!r} in this store ('alos image list' lists them)")
        found = row[3]
    if len(kernel.image_bodies) >= limits.CONTEXTS_CACHED:  # a host that runs many image files stays flat
        del kernel.image_bodies[next(iter(kernel.image_bodies))]
    kernel.image_bodies[ref] = found
    return found


def registrant(kernel: Kernel, ref: str) -> Pid | None:
    """Return who stored image ``ref`` (HOST or a process's pid), or None when it is not stored."""
    row = rows.load_image(kernel.store.conn, ref)
    return None if row is None else row[5]


def store(kernel: Kernel, tx: Tx, raw: Any, pid: Pid, *, listed: bool) -> dict[str, Any]:
    """Check and store an image; return its ref, name, version (None when not listed) and digest.

    ``listed``: register it (a new version of its name); else keep it under its digest for a run
    from a file. A built-in's name cannot be registered.
    """
    checked = kernel.images.check(raw)
    name = str(checked["name"])
    if listed and kernel.images.builtin(name) is not None:
        raise Conflict(f"image {name} is built in; register yours under another name")
    dig = digest(checked)
    text = codec.dumps(checked)
    if not listed:
        ref = f"{name}@sha256:{dig}"  # the whole digest: no other image can have this ref
        rows.insert_image(tx.conn, ref, name, None, dig, text, tx.now, pid)
        return {"ref": ref, "name": name, "version": None, "digest": dig}
    latest = rows.latest_image(tx.conn, name)
    version = 1 if latest is None else latest[0] + 1
    ref = f"{name}@{version}"
    if not rows.insert_image(tx.conn, ref, name, version, dig, text, tx.now, pid):
        raise Conflict(f"image {ref} was registered elsewhere a moment ago; register again")
    return {"ref": ref, "name": name, "version": version, "digest": dig}


_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")  # as images/schema.json says


def check_name(name: str) -> None:
    """Raise Invalid unless ``name`` could name an image (the resource ``image:NAME`` is built from it)."""
    if not _NAME.fullmatch(name):
        raise Invalid(
            f"{name[:80]!r} is not an image name: a lowercase letter, then up to 63 lowercase letters, digits, _ or -"
        )
