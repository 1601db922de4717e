"""Object Memory and checkpoints through dispatch(): obj.write and obj.read of 1 KiB, and
ckpt.create and ckpt.restore of a process holding 100, 1,000 and 10,000 objects of 1 KiB with
1% of them changed since its last checkpoint (docs/checkpoints.md).

The objects are put in place in one transaction (the set-up is not what is measured); every
measured call goes through Runtime.dispatch as the process itself, decided and audited, and is
checked to have done what it claims: each read returns the value written, each checkpoint and
restore names the objects changed. Targets (issue 16): a checkpoint at most 5 ms and a restore
at most 50 ms at 10,000 objects with 1% changed.
"""

from __future__ import annotations

import time

from alos.kernel import objects
from benchmarks.cases import Bench, Plan, Result, Target
from benchmarks.fixture import KIB, environment
from benchmarks.stats import summarize, time_calls

SIZES = (100, 1_000, 10_000)
CREATE_TARGET_US = 5_000  # at 10,000 objects, 1% changed
RESTORE_TARGET_US = 50_000
ROUNDS = 12  # changed-then-checkpointed-then-restored rounds per size


async def obj_write(plan: Plan) -> Result:
    """obj.write of 1 KiB to an object of the process's own namespace."""
    async with environment() as env:
        pid = await env.spawn()
        await env.rt.dispatch(pid, "obj.create", {"name": "note", "type": "text", "value": KIB})

        async def write(i: int) -> None:
            got = await env.rt.dispatch(pid, "obj.write", {"name": "note", "value": KIB[:-8] + f"{i:08d}"})
            if got["version"] != i + 2:
                raise RuntimeError(f"obj.write made version {got['version']}, not {i + 2}")

        samples = await time_calls(write, plan.calls, plan.warmup)
    return _row("obj.write 1 KiB (own namespace)", samples, None)


async def obj_read(plan: Plan) -> Result:
    """obj.read of a 1 KiB object of the process's own namespace."""
    async with environment() as env:
        pid = await env.spawn()
        await env.rt.dispatch(pid, "obj.create", {"name": "note", "type": "text", "value": KIB})

        async def read(i: int) -> None:
            got = await env.rt.dispatch(pid, "obj.read", {"name": "note"})
            if got["value"] != KIB:
                raise RuntimeError("obj.read did not return what was written")

        samples = await time_calls(read, plan.calls, plan.warmup)
    return _row("obj.read 1 KiB (own namespace)", samples, None)


def _row(name: str, samples: list[int], target: Target | None) -> Result:
    summary = summarize(samples)
    return Result(name, summary, 1e9 / summary.median_ns, "calls/s", target)


async def _checkpoints(size: int, rounds: int) -> tuple[list[int], list[int]]:
    """Return the ns of each ckpt.create and each ckpt.restore over ``rounds`` rounds at ``size``."""
    created: list[int] = []
    restored: list[int] = []
    async with environment() as env:
        pid = await env.spawn()
        kernel = env.rt.kernel
        with kernel.transaction() as tx:
            for i in range(size):
                objects.put(kernel, tx, objects.own(pid), f"o{i:05d}", "text", KIB.encode(), pid)
        await env.rt.dispatch(pid, "ckpt.create", {"label": "start"})
        changed = max(1, size // 100)
        for r in range(rounds):
            for i in range(changed):
                name = f"o{(r * changed + i) % size:05d}"
                await env.rt.dispatch(pid, "obj.write", {"name": name, "value": f"{r:08d}" + KIB[8:]})
            start = time.perf_counter_ns()
            made = await env.rt.dispatch(pid, "ckpt.create", {"label": f"round {r}"})
            middle = time.perf_counter_ns()
            for i in range(changed):  # change them again, then go back to the checkpoint
                name = f"o{(r * changed + i) % size:05d}"
                await env.rt.dispatch(pid, "obj.write", {"name": name, "value": "y" * 1024})
            before = time.perf_counter_ns()
            back = await env.rt.dispatch(pid, "ckpt.restore", {"id": made["id"]})
            end = time.perf_counter_ns()
            if back["objects_restored"] != changed:
                raise RuntimeError(f"a restore rolled back {back['objects_restored']} objects, not {changed}")
            created.append(middle - start)
            restored.append(end - before)
    return created, restored


_MEASURED: dict[tuple[int, int], tuple[list[int], list[int]]] = {}  # both rows of a size come from one run


def _checkpoint_bench(size: int, restore: bool) -> Bench:
    async def bench(plan: Plan) -> Result:
        rounds = ROUNDS if plan.calls >= 1_000 else 4
        if (size, rounds) not in _MEASURED:
            _MEASURED[(size, rounds)] = await _checkpoints(size, rounds)
        samples = _MEASURED[(size, rounds)][1 if restore else 0]
        big = size == SIZES[-1]
        target = Target("median", RESTORE_TARGET_US if restore else CREATE_TARGET_US) if big else None
        note = f"{size:,} objects of 1 KiB, {max(1, size // 100)} changed since the last checkpoint; {rounds} rounds"
        what = "ckpt.restore" if restore else "ckpt.create"
        return Result(f"{what}, {size:,} objects, 1% changed", summarize(samples), None, "", target, note=note)

    return bench


BENCHES: dict[str, Bench] = {
    "obj_write": obj_write,
    "obj_read": obj_read,
    **{f"ckpt_create_{size}": _checkpoint_bench(size, False) for size in SIZES},
    **{f"ckpt_restore_{size}": _checkpoint_bench(size, True) for size in SIZES},
}
