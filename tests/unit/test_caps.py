from alos.caps import decide
from alos.rights import Capability, Effect, Need, Right

W = Right.WRITE


def cap(cid: int, pattern: str, effect: Effect, *, uses=None, expires=None, digest=None, request=None, revoked=False):
    return Capability(
        cid, 1, pattern, frozenset({W}), effect, "host", expires, uses, False, None, revoked, digest, request
    )


def effect(caps, resource="fs:/w/a", digest="d1", now=10.0) -> Effect:
    return decide(caps, [Need(resource, W)], lambda: digest, now).effect


def test_nothing_matching_is_deny() -> None:
    assert effect([]) is Effect.DENY
    assert effect([cap(1, "fs:/other/*", Effect.ALLOW)]) is Effect.DENY


def test_deny_dominates_even_a_more_specific_allow() -> None:
    assert effect([cap(1, "fs:/w/*", Effect.DENY), cap(2, "fs:/w/a", Effect.ALLOW)]) is Effect.DENY


def test_more_specific_allow_beats_broader_ask_and_tie_goes_to_ask() -> None:
    assert effect([cap(1, "fs:/w/*", Effect.ASK), cap(2, "fs:/w/a", Effect.ALLOW)]) is Effect.ALLOW
    assert effect([cap(1, "fs:/w/a", Effect.ALLOW), cap(2, "fs:/w/a", Effect.ASK)]) is Effect.ASK


def test_a_humans_standing_answer_outranks_the_ask_that_asked() -> None:
    assert effect([cap(1, "fs:/w/a", Effect.ASK), cap(2, "fs:/w/a", Effect.ALLOW, request=7)]) is Effect.ALLOW


def test_one_shot_grant_binds_to_the_exact_digest() -> None:
    caps = [cap(1, "fs:/w/*", Effect.ASK), cap(2, "fs:/w/a", Effect.ALLOW, uses=1, digest="d1", request=3)]
    assert effect(caps, digest="d1") is Effect.ALLOW
    assert effect(caps, digest="d2") is Effect.ASK


def test_spent_expired_and_revoked_capabilities_decide_nothing() -> None:
    assert effect([cap(1, "fs:/w/*", Effect.ALLOW, uses=0)]) is Effect.DENY
    assert effect([cap(1, "fs:/w/*", Effect.ALLOW, expires=5.0)], now=10.0) is Effect.DENY
    assert effect([cap(1, "fs:/w/*", Effect.ALLOW, expires=50.0)], now=10.0) is Effect.ALLOW
    assert effect([cap(1, "fs:/w/*", Effect.ALLOW, revoked=True)]) is Effect.DENY


def test_every_need_must_be_allowed() -> None:
    caps = [cap(1, "fs:/w/a", Effect.ALLOW)]
    d = decide(caps, [Need("fs:/w/a", W), Need("fs:/w/b", W)], lambda: "d", 0.0)
    assert d.effect is Effect.DENY and d.need == Need("fs:/w/b", W)
