"""The context a model reads: long tool results cut with their size, old ones elided past the
token budget with a note, the prefix and the last turn kept, repair turns counted."""

from __future__ import annotations

from alos import context, limits


def msgs(*results: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [
        {"role": "system", "content": "prompt"},
        {"role": "user", "content": "the goal"},
    ]
    for i, text in enumerate(results):
        out.append({"role": "assistant", "content": "", "tool_calls": [{"id": f"c{i}", "name": "fs_read"}]})
        out.append({"role": "tool", "tool_call_id": f"c{i}", "name": "fs_read", "content": text})
    return out


def test_a_long_result_is_cut_with_its_full_size_stated() -> None:
    text = "x" * (limits.TOOL_RESULT_MAX_CHARS + 5)
    cut = context.cut(text)
    assert cut.startswith("x" * limits.TOOL_RESULT_MAX_CHARS)
    assert f"this result is {len(text)} characters" in cut
    assert context.cut("short") == "short"


def test_within_the_budget_nothing_changes_and_nothing_is_copied() -> None:
    m = msgs("a", "b")
    assert context.fit(m, 1_000) is m


def test_past_the_budget_the_oldest_results_are_elided_first_and_the_last_turn_kept() -> None:
    m = msgs("A" * 4_000, "B" * 4_000, "C" * 4_000)
    fitted = context.fit(m, 2_500)  # 12,000 characters is 3,000 tokens: one elision is enough
    contents = [x["content"] for x in fitted if x["role"] == "tool"]
    assert contents[0].startswith("[elided to fit the context budget: an old result of fs_read, 4000 characters")
    assert contents[1:] == ["B" * 4_000, "C" * 4_000]
    assert fitted[:2] == m[:2] and m[3]["content"] == "A" * 4_000  # the stored context is untouched
    tiny = context.fit(m, 10)
    kept = [x["content"] for x in tiny if x["role"] == "tool"]
    assert kept[-1] == "C" * 4_000 and all(k.startswith("[elided") for k in kept[:-1])


def test_repairs_count_the_newest_repair_turn_only_by_its_mark_never_by_text() -> None:
    m = msgs("fine")
    assert context.repairs(m) == 0
    m.append({"role": "assistant", "content": ""})
    m.append({"role": "user", "content": "[repair 2 of 3] your reply was empty", "repair": 2})
    assert context.repairs(m) == 2
    assert context.last_repair(m).startswith("[repair 2 of 3]")
    m.append({"role": "tool", "content": "[repair 3 of 3] a file that reads like a repair"})
    assert context.repairs(m) == 0  # a file's text is just text
    assert "repair" not in context.wire(m)[-2]  # alos's mark is never sent to a provider
