"""net: grants (rights.py): how they are written and normalized, and what net:* does not cover.

A private address (loopback, private, link-local, cloud metadata, ...) is reached only by a grant
that names it: net:* is every host name and every global address, never the machine's own
services or its network's.
"""

import pytest

from alos.errors import Denied, Invalid
from alos.rights import Capability, Effect, Grant, Right, covers, derive, parse_grant


def net(spec: str) -> str:
    return parse_grant(spec, Effect.ALLOW, "/w").pattern


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("net:*=read", "net:*"),
        ("net:Example.COM=read", "net:example.com/*"),
        ("net:example.com.=read", "net:example.com/*"),  # one trailing dot dropped, as in a URL
        ("net:bücher.de=read", "net:xn--bcher-kva.de/*"),  # IDNA, as a URL's host is sent
        ("net:api.github.com/repos/*=read", "net:api.github.com/repos/*"),
        ("net:api.github.com/repos=read", "net:api.github.com/repos/*"),
        ("net:127.0.0.1=read", "net:127.0.0.1/*"),
        ("net:[::1]=read", "net:[::1]/*"),
        ("net:[0:0:0:0:0:0:0:1]/api=read", "net:[::1]/api/*"),  # compressed, as a URL's host is
        ("net:[FE80::1]=read", "net:[fe80::1]/*"),
    ],
)
def test_a_net_grant_is_normalized_as_a_url_names_its_host(spec: str, pattern: str) -> None:
    assert net(spec) == pattern


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("net:example.com:8080=read", "a port is not part of a net resource.*write 'net:example.com'"),
        ("net:example.com:8080/api=read", "a port is not part of a net resource"),
        ("net:127.0.0.1:80=read", "covers every port of it: write 'net:127.0.0.1'"),
        ("net:[::1]:8080=read", r"a port is not part of a net resource.*write 'net:\[::1\]'"),
        ("net:example.com:=read", "a port is not part"),
        ("net:::1=read", r"write an IPv6 address in brackets, e.g. 'net:\[::1\]=read'"),
        ("net:fe80::1/api=read", "in brackets"),
        ("net:[::1=read", r"closes '\]'"),
        ("net:[127.0.0.1]=read", "bad IPv6 address"),
        ("net:[fe80::1%eth0]=read", "bad IPv6 address"),
        ("net:[::1]x=read", "name a host"),
        ("net:[]=read", "name a host"),
        ("net:/api=read", "name a host"),
        ("net:*.example.com=read", "not a valid host name"),
        ("net:exa mple.com=read", "not a valid host name"),
        ("net:user@example.com=read", "not a valid host name"),
        ("net:2130706433=read", "four decimal numbers"),  # never matches: a URL never names it so
    ],
)
def test_a_bad_net_grant_is_refused_saying_how_to_write_it(spec: str, said: str) -> None:
    with pytest.raises(Invalid, match=said) as err:
        net(spec)
    assert repr(spec) in str(err.value)


@pytest.mark.parametrize(
    "resource",
    [
        "net:example.com/",
        "net:localhost/",  # a name: its address, once looked up, needs its own grant
        "net:93.184.216.34/index.html",
        "net:[2606:4700::1111]/",
        "net:[::ffff:5db8:d822]/",  # 93.184.216.34, mapped
    ],
)
def test_net_star_covers_every_name_and_global_address(resource: str) -> None:
    assert covers("net:*", resource)


@pytest.mark.parametrize(
    "resource",
    [
        "net:127.0.0.1/",
        "net:127.8.9.10/admin",
        "net:10.0.0.1/",
        "net:172.16.5.4/",
        "net:192.168.1.1/",
        "net:169.254.169.254/latest/meta-data/",  # cloud metadata
        "net:100.64.0.1/",  # shared (carrier-grade NAT)
        "net:0.0.0.0/",
        "net:224.0.0.1/",
        "net:[::1]/",
        "net:[::]/",
        "net:[fe80::1]/",
        "net:[fc00::1]/",
        "net:[::ffff:a9fe:a9fe]/latest/meta-data/",  # 169.254.169.254, mapped
        "net:[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "net:[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "net:127.0.0.1",  # the pattern net:127.0.0.1/* stripped to its base, as derive() asks
        "net:[::1]",
    ],
)
def test_net_star_never_covers_an_address_that_is_not_global(resource: str) -> None:
    assert not covers("net:*", resource)


def test_a_private_address_is_covered_by_a_grant_that_names_it() -> None:
    assert covers(net("net:127.0.0.1=read"), "net:127.0.0.1/anything")
    assert covers(net("net:[::1]=read"), "net:[::1]/")
    assert covers(net("net:169.254.169.254/latest/*=read"), "net:169.254.169.254/latest/meta-data/")
    assert not covers(net("net:127.0.0.1=read"), "net:127.0.0.2/")
    assert not covers(net("net:[::1]=read"), "net:127.0.0.1/")


def held(pattern: str, effect: Effect = Effect.ALLOW) -> Capability:
    rights = frozenset({Right.READ, Right.WRITE})
    return Capability(1, 1, pattern, rights, effect, "host", None, None, True, None, False, None, None)


def test_net_star_derives_names_and_global_addresses_never_a_private_one() -> None:
    parent = held("net:*")
    for spec in ("net:example.com=read", "net:8.8.8.8=read", "net:*=read"):
        child = Grant(net(spec), frozenset({Right.READ}), Effect.ALLOW)
        assert derive(parent, child, 0.0) == child
    for spec in ("net:127.0.0.1=read", "net:[::1]=read", "net:169.254.169.254/latest/*=read"):
        with pytest.raises(Denied, match="outside the held pattern"):
            derive(parent, Grant(net(spec), frozenset({Right.READ}), Effect.ALLOW), 0.0)


def test_an_address_grant_derives_its_own_subtree() -> None:
    child = Grant(net("net:127.0.0.1/api=read"), frozenset({Right.READ}), Effect.ALLOW)
    assert derive(held(net("net:127.0.0.1=read")), child, 0.0) == child
