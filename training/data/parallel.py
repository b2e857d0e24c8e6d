"""Order-preserving parallel map on threads, with a bounded number of items in flight.

Threads suffice here: PIL decoding/resizing and numpy's array operations release the GIL.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
from typing import Any, Callable, Iterable, Iterator


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int,
                window: int | None = None) -> Iterator[Any]:
    """Yields `fn(item)` for each item, in input order, computed by a thread pool.

    Args:
        fn: a function of one argument.
        items: the inputs; consumed lazily.
        workers: pool size; <= 1 runs in the calling thread.
        window: maximum items submitted but not yet yielded (default 4 per worker).

    Yields:
        The results, in the order of `items`.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    window = window or 4 * workers
    pending: collections.deque[cf.Future] = collections.deque()
    with cf.ThreadPoolExecutor(workers) as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
