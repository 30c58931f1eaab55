"""Threads of one process for requests sent at once or in the background.

A thread pool made before a ``fork`` is useless in the child: its threads are
not there, and work submitted to it never runs. :class:`Threads` makes its
pool when first asked, and again in a forked child.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["Threads"]


class Threads:
    """A thread pool of ``workers`` threads, made when first needed by each process.

    >>> threads = Threads(2)
    >>> threads.pool().submit(sum, [1, 2]).result()
    3
    >>> threads.shutdown(wait=True)
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()

    def pool(self) -> ThreadPoolExecutor:
        """This process's pool (made now if it has none)."""
        if self._pool is None or self._pid != os.getpid():  # threads do not survive a fork
            self._pool, self._pid = ThreadPoolExecutor(self.workers), os.getpid()
        return self._pool

    def shutdown(self, *, wait: bool) -> None:
        """Let the pool's threads end once their work is done (``wait``: wait for it here).

        A forked child's copy of its parent's pool is dropped without a word.
        """
        pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.shutdown(wait=wait)
