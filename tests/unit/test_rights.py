import os

import pytest

from alos.errors import Denied, Invalid
from alos.rights import Capability, Effect, Grant, Right, covers, derive, parse_grant, specificity


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        ("fs:/a/b", "fs:/a/b", True),
        ("fs:/a/b", "fs:/a/bc", False),
        ("fs:/a/*", "fs:/a", True),
        ("fs:/a/*", "fs:/a/b/c", True),
        ("fs:/a/*", "fs:/ab", False),  # component boundary, not a string prefix
        ("fs:/a/*", "fs:/a-b/x", False),
        ("fs:/*", "fs:/etc/passwd", True),
        ("model:*", "model:script", True),
        ("model:*", "human:console", False),
        ("human:console", "human:console2", False),
    ],
)
def test_covers(pattern: str, resource: str, expected: bool) -> None:
    assert covers(pattern, resource) is expected


def test_exact_is_more_specific_than_any_subtree() -> None:
    assert specificity("fs:/a/b") > specificity("fs:/a/b/c/d/e/*") > specificity("fs:/a/*")


def test_relative_fs_grants_are_made_absolute_in_the_workspace(tmp_path) -> None:
    g = parse_grant("fs:src/*=read,write", Effect.ALLOW, str(tmp_path))
    assert g.pattern == f"fs:{os.path.realpath(tmp_path)}/src/*"
    assert g.rights == {Right.READ, Right.WRITE}
    assert parse_grant("fs:*=read", Effect.ALLOW, str(tmp_path)).pattern == f"fs:{os.path.realpath(tmp_path)}/*"


def test_dotdot_in_a_grant_is_normalized_not_kept(tmp_path) -> None:
    (tmp_path / "ws").mkdir()
    g = parse_grant("fs:../ws/x=read", Effect.ALLOW, str(tmp_path / "ws"))
    assert g.pattern == f"fs:{os.path.realpath(tmp_path)}/ws/x"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("fs:src/*", "RESOURCE=RIGHTS"),
        ("fs:src/*=", "names no rights"),
        ("fs:src/*=read,fly", "unknown right 'fly'"),
        ("disk:/x=read", "no syscall of this alos uses resources of kind 'disk'"),
        ("mcp:x=register", "the kinds are clock, fs, human, image, model, net, ns, obj, proc, shell, tool"),
        ("shell:no-such-program-x=execute", "no program 'no-such-program-x' on the search path"),
        ("shell:git diff * x=execute", "may only end the argv"),
        ("disk=read", "KIND:NAME"),
        ("fs:src*=read", "'*' may only end"),
        ("fs:*.env=read", "'*' may only end"),
        ("=read", "RESOURCE=RIGHTS"),
        ("fs:=read", "empty resource"),
        ("fs:src/*=read,,write", "an empty right between commas"),
    ],
)
def test_malformed_grants_name_the_bad_part(spec: str, words: str, tmp_path) -> None:
    with pytest.raises(Invalid) as err:
        parse_grant(spec, Effect.ALLOW, str(tmp_path))
    assert words in str(err.value)
    assert spec in str(err.value)


def _cap(pattern: str, rights: set[Right], effect: Effect = Effect.ALLOW, delegable: bool = True) -> Capability:
    return Capability(1, 1, pattern, frozenset(rights), effect, "host", None, None, delegable, None, False, None, None)


def test_derive_only_shrinks() -> None:
    parent = _cap("fs:/w/*", {Right.READ, Right.WRITE})
    assert derive(parent, Grant("fs:/w/src/*", frozenset({Right.READ}), Effect.ALLOW), 0.0).pattern == "fs:/w/src/*"
    with pytest.raises(Denied, match="rights only shrink"):
        derive(parent, Grant("fs:/w/*", frozenset({Right.DELETE}), Effect.ALLOW), 0.0)
    with pytest.raises(Denied, match="outside the held pattern"):
        derive(parent, Grant("fs:/etc/*", frozenset({Right.READ}), Effect.ALLOW), 0.0)
    with pytest.raises(Denied, match="not delegable"):
        derive(
            _cap("fs:/w/*", {Right.READ}, delegable=False), Grant("fs:/w/a", frozenset({Right.READ}), Effect.ALLOW), 0.0
        )
    with pytest.raises(Denied, match="ask never becomes allow"):
        derive(_cap("fs:/w/*", {Right.READ}, Effect.ASK), Grant("fs:/w/a", frozenset({Right.READ}), Effect.ALLOW), 0.0)


def test_nothing_derives_from_a_dead_parent_and_uses_never_grow() -> None:
    revoked = Capability(
        1, 1, "fs:/w/*", frozenset({Right.READ}), Effect.ALLOW, "host", None, None, True, None, True, None, None
    )
    with pytest.raises(Denied, match="revoked, expired or used up"):
        derive(revoked, Grant("fs:/w/a", frozenset({Right.READ}), Effect.ALLOW), 0.0)
    counted = Capability(
        1, 1, "fs:/w/*", frozenset({Right.READ}), Effect.ALLOW, "host", None, 2, True, None, False, None, None
    )
    with pytest.raises(Denied, match="at most 2"):
        derive(counted, Grant("fs:/w/a", frozenset({Right.READ}), Effect.ALLOW), 0.0)
    assert derive(counted, Grant("fs:/w/a", frozenset({Right.READ}), Effect.ALLOW, uses=1), 0.0).uses == 1


def test_a_grant_takes_dotdot_by_name_before_following_a_symlink_as_a_call_does(tmp_path) -> None:
    ws = tmp_path / "ws"
    (ws / "a" / "b").mkdir(parents=True)
    (tmp_path / "elsewhere" / "x").mkdir(parents=True)
    (tmp_path / "elsewhere" / "b").mkdir()
    (ws / "a" / "link").symlink_to(tmp_path / "elsewhere" / "x")
    grant = parse_grant("fs:a/link/../b/*=read", Effect.ALLOW, str(ws))
    assert grant.pattern == f"fs:{os.path.realpath(ws)}/a/b/*"  # never elsewhere/b, outside the workspace


def test_a_capability_is_dead_from_the_moment_it_expires_or_its_last_use_is_spent() -> None:
    def held(expires: float | None = None, uses: int | None = None) -> Capability:
        return Capability(1, 1, "fs:/w/*", frozenset({Right.READ}), Effect.ALLOW, "host", expires, uses, False, None,
                          False, None, None)  # fmt: skip

    assert held(expires=10.0).live(9.999) and not held(expires=10.0).live(10.0)
    assert held(uses=1).live(0.0) and not held(uses=0).live(0.0)
    assert held().live(1e18)


def test_a_deny_passes_on_as_a_deny_and_a_grant_is_not_delegable_unless_it_says_so() -> None:
    deny = _cap("fs:/w/.env", {Right.READ}, Effect.DENY)
    passed = Grant("fs:/w/.env", frozenset({Right.READ}), Effect.DENY)
    assert derive(deny, passed, 0.0) == passed
    assert Grant("fs:/w/a", frozenset({Right.READ}), Effect.ALLOW).delegable is False
