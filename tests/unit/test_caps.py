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


def held(cid: int, pattern: str, effect: Effect, rights=frozenset({W}), delegable=True, digest=None) -> Capability:
    return Capability(cid, 1, pattern, rights, effect, "host", None, None, delegable, None, False, digest, None)


def test_attenuate_derives_from_the_most_specific_holder_and_carries_overlapping_denies_and_asks() -> None:
    from alos.caps import attenuate
    from alos.rights import Grant

    caps = [
        held(1, "fs:/w/*", Effect.ALLOW),
        held(2, "fs:/w/src/*", Effect.ALLOW),
        held(3, "fs:/w/src/.env", Effect.DENY),
        held(4, "fs:/w/src/gen/*", Effect.ASK),
        held(5, "fs:/elsewhere/*", Effect.DENY),
        held(6, "fs:/w/src/x", Effect.ALLOW, digest="bound"),
    ]
    out = attenuate(caps, Grant("fs:/w/src/*", frozenset({W}), Effect.ALLOW), 10.0)
    assert out[0][1] == 2
    assert sorted((g.pattern, g.effect.value, source) for g, source in out[1:]) == [
        ("fs:/w/src/.env", "deny", 3),
        ("fs:/w/src/gen/*", "ask", 4),
    ]


def test_attenuate_refuses_what_is_not_held_or_not_delegable() -> None:
    import pytest

    from alos.caps import attenuate
    from alos.errors import Denied
    from alos.rights import Grant

    with pytest.raises(Denied, match="holds no capability"):
        attenuate([held(1, "fs:/w/*", Effect.ALLOW)], Grant("fs:/x/*", frozenset({W}), Effect.ALLOW), 1.0)
    with pytest.raises(Denied, match="not delegable"):
        attenuate(
            [held(1, "fs:/w/*", Effect.ALLOW, delegable=False)], Grant("fs:/w/a", frozenset({W}), Effect.ALLOW), 1.0
        )
    with pytest.raises(Denied, match="rights only shrink"):
        attenuate([held(1, "fs:/w/*", Effect.ALLOW)], Grant("fs:/w/a", frozenset({W, Right.READ}), Effect.ALLOW), 1.0)


def test_an_ask_decision_names_the_ask_capability_and_the_need_it_decided() -> None:
    ask = cap(2, "fs:/w/*", Effect.ASK)
    decision = decide([cap(1, "fs:/w/b", Effect.ALLOW), ask], [Need("fs:/w/a", W)], lambda: "d1", 10.0)
    assert (decision.effect, decision.need, decision.caps) == (Effect.ASK, Need("fs:/w/a", W), (ask,))


def test_a_capability_that_does_not_match_or_is_spent_never_hides_a_later_one() -> None:
    allow = cap(3, "fs:/w/a", Effect.ALLOW)
    other = Capability(
        1, 1, "fs:/w/*", frozenset({Right.READ}), Effect.ALLOW, "host", None, None, False, None, False, None, None
    )
    spent = cap(2, "fs:/w/a", Effect.DENY, uses=0, digest="d1", request=4)  # a person's deny, used up
    for held in ([other, allow], [spent, allow], [cap(4, "fs:/x/*", Effect.ALLOW), spent, allow]):
        decision = decide(held, [Need("fs:/w/a", W)], lambda: "d1", 10.0)
        assert (decision.effect, decision.caps) == (Effect.ALLOW, (allow,)), held
