"""The engine: snapshots of a store, the commit protocol, open, create, copy, upgrade.

One :class:`Engine` per open store holds its state (:mod:`._engine`: the
checkpoint in :mod:`._chunks`, the journal tail in :mod:`._tail`,
checkpointing in :mod:`._checkpoint`) and hands out immutable
:class:`Snapshot` objects (:mod:`._snapshot`). Every write is one commit of
the :class:`Writer` (:mod:`._commit`, the whole protocol, local and shared,
top to bottom). Stores are opened by :func:`open_engine` (:mod:`._open`),
created from a :class:`StoreSpec` (:mod:`._spec`, :mod:`._create`), copied
with their history (:mod:`._copy`), read back as history (:mod:`._history`)
and checked whole (:mod:`._verify`).
"""

from __future__ import annotations

from ._commit import COMPACT_EVERY, Build, Writer
from ._copy import copy_store
from ._create import DEFAULT_CHUNK_ROWS, build_shared_store, build_store
from ._engine import DEFAULT_CHECKPOINT_ROWS, Engine
from ._history import RoundSummary, history, rounds, version_of_round
from ._open import open_engine, worker_engine
from ._snapshot import Snapshot
from ._spec import StoreSpec
from ._verify import verify

__all__ = [
    "COMPACT_EVERY",
    "DEFAULT_CHECKPOINT_ROWS",
    "DEFAULT_CHUNK_ROWS",
    "Build",
    "Engine",
    "RoundSummary",
    "Snapshot",
    "StoreSpec",
    "Writer",
    "build_shared_store",
    "build_store",
    "copy_store",
    "history",
    "open_engine",
    "rounds",
    "verify",
    "version_of_round",
    "worker_engine",
]
