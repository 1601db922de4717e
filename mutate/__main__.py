"""``python -m mutate``: run the mutants of the authority modules and report the survivors.

Steps: enumerate mutants; copy src/ and tests/ into one sandbox per worker; run the test pool
once unmutated and traced (the baseline: it must pass, and it tells which tests reach each
line); then each mutant, in parallel, against the tests that reach it, with ``-x`` and a time
limit. Prints the survivors and the kill rates; exits 0 unless the baseline fails (1).
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from types import FrameType

from mutate import POOL, TARGETS, sandbox
from mutate.baseline import Baseline, BaselineFailed, measure
from mutate.mutants import Mutant, mutants
from mutate.report import Progress, Result, table
from mutate.sandbox import Outcome, Sandbox

REPO = Path(__file__).resolve().parents[1]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the command line's options; argparse exits 2 on a bad one."""
    p = argparse.ArgumentParser(prog="python -m mutate", description=__doc__.splitlines()[0])
    p.add_argument("--module", action="append", help="only files whose path contains this (repeatable)")
    p.add_argument("--line", type=int, help="only mutants whose span includes this line")
    p.add_argument("--limit", type=int, help="only the first N mutants (after the filters)")
    p.add_argument("--sample", type=int, help="only N mutants spread evenly over the selection (after the filters)")
    p.add_argument("--list", action="store_true", help="print the mutants and run nothing")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel workers (default: CPU count)")
    p.add_argument("--tests", nargs="+", default=list(POOL), help="the test pool (default: the authority tests)")
    return p.parse_args(argv)


def select(args: argparse.Namespace) -> tuple[dict[str, bytes], list[Mutant]]:
    """Return the files chosen (path -> text read now) and their mutants, filtered as the options say."""
    paths = [t for t in TARGETS if not args.module or any(m in t for m in args.module)]
    if not paths:
        sys.exit(f"mutate: --module matches none of {', '.join(TARGETS)}")
    texts = {path: (REPO / path).read_bytes() for path in paths}
    found = [m for path in paths for m in mutants(path, texts[path])]
    if args.line is not None:
        found = [m for m in found if m.line <= args.line <= m.last]
    if args.sample is not None and 0 < args.sample < len(found):
        found = [found[i * len(found) // args.sample] for i in range(args.sample)]
    return texts, found[: args.limit] if args.limit is not None else found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    args = parse(argv)
    texts, chosen = select(args)
    if args.list:
        for m in chosen:
            print(f"{m.path}:{m.line}  [{m.kind}]  {m.before}  ->  {m.after}")
        print(f"{len(chosen)} mutants")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="alos-mutate-"))
    results: list[Result] = []
    try:
        _run(args, texts, chosen, root, results)
    except (BaselineFailed, RuntimeError) as err:  # RuntimeError: the sandbox would not test its copy
        print(f"mutate: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nmutate: interrupted; {len(results)} of {len(chosen)} mutants were run", file=sys.stderr)
        print(table(results, list(texts)))
        return 130
    finally:
        sandbox.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    print(table(results, list(texts)))
    return 0


def _run(
    args: argparse.Namespace, texts: dict[str, bytes], chosen: list[Mutant], root: Path, results: list[Result]
) -> None:
    """Run the baseline, then every mutant in ``chosen``; append each result to ``results``."""
    first = sandbox.make(REPO, root / "w0", texts)
    sandbox.check(first)
    print(f"mutate: {len(chosen)} mutants; running the baseline (tests: {' '.join(args.tests)})", file=sys.stderr)
    base = measure(first, args.tests, list(texts))
    print(f"mutate: baseline passed: {len(base.durations)} tests in {base.seconds:.0f} s (traced)", file=sys.stderr)
    jobs = max(1, min(args.jobs, len(chosen)))
    free: queue.Queue[Sandbox] = queue.Queue()
    free.put(first)
    for i in range(1, jobs):
        free.put(sandbox.make(REPO, root / f"w{i}", texts))
    progress = Progress(len(chosen))
    stopping = threading.Event()

    def one(mutant: Mutant) -> Result:
        box = free.get()
        try:
            return Result(mutant, _judge(box, mutant, texts[mutant.path], base, stopping))
        finally:
            free.put(box)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, m) for m in chosen]
        try:
            for future in as_completed(futures):
                results.append(future.result())
                progress.add(results[-1])
        except BaseException:
            stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            sandbox.stop_all()
            raise


def _judge(box: Sandbox, mutant: Mutant, original: bytes, base: Baseline, stopping: threading.Event) -> Outcome:
    tests = base.tests_for(mutant)
    if not tests:
        return Outcome("unreached", 0.0, "no test reaches it")
    if stopping.is_set():
        return Outcome("error", 0.0, "interrupted")
    with sandbox.mutated(box, mutant, original):
        return sandbox.run(box, ["-x", *tests], base.budget(tests))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # a SIGTERM cleans up like Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
