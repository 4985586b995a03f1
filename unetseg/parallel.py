"""Process pools for the stages' per-item work, results always in input order: an output never
depends on how many cores made it."""

import multiprocessing
import os
from collections import deque
from contextlib import nullcontext


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_pool(tasks: int, start_method: str | None = None):
    """A process per usable core (at most one per task), or none (None) where one process is enough.
    The platform's default start method forks: make such a pool before any thread starts. A process
    that already runs threads (TensorFlow's) starts its workers with "spawn" instead."""
    workers = min(usable_cores(), tasks)
    return multiprocessing.get_context(start_method).Pool(workers) if workers > 1 else nullcontext()


def ordered_map(pool, function, items, ahead: int | None = None):
    """`function` over `items`, results in order: in `pool`'s workers, or here where `pool` is None.
    Items are drawn as their turn nears, so at most `ahead` (default: two per core) of them and
    their results are held at a time."""
    if pool is None:
        yield from map(function, items)
        return
    ahead, pending = ahead or 2 * usable_cores(), deque()
    for item in items:
        pending.append(pool.apply_async(function, (item,)))
        if len(pending) >= ahead:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()
