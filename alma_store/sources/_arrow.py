"""Features in a column of Arrow IPC files: Hugging Face ``datasets``, ``.arrow`` files.

The files are memory-mapped and their record batches read in place: a column
of fixed-size lists (``fixed_size_list<float>``, nested for more dimensions),
or of lists that all have the same length (what ``datasets`` writes for a
numpy array), becomes a numpy view of each batch's values buffer, with no
copy. Both IPC formats are read: the file format (``.arrow``/``.feather``)
and the stream format of ``datasets``' cache files. ``pyarrow`` is needed
(the ``arrow`` or ``hf`` extra) and imported only here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..core import IndexArray, block_spans
from ..errors import InvalidInputError, SourceMissingError
from ._base import FeatureSource, check_rows
from ._rows import take_rows

__all__ = ["ArrowSource", "hf_dataset_files", "in_memory_rows"]


def hf_dataset_files(dataset: Any) -> list[Path] | None:
    """The Arrow files behind a Hugging Face ``datasets.Dataset``, in row order.

    None for a dataset held in memory (nothing on disk to map). A dataset
    whose rows were reordered or subset without being written again
    (``shuffle``, ``select``, ``filter`` keep an indices mapping) is refused:
    its rows are not the files' rows.
    """
    if getattr(dataset, "_indices", None) is not None:
        raise InvalidInputError(
            "this datasets.Dataset has an indices mapping (from shuffle, select, filter, ...): "
            "its rows are not in the order of its files. Write it out first: "
            "dataset = dataset.flatten_indices()"
        )
    files = [Path(f["filename"]) for f in dataset.cache_files]
    return files or None


def in_memory_rows(features: Any, column: str) -> np.ndarray | None:
    """Column ``column`` of a ``pyarrow.Table``, or of a ``datasets.Dataset`` held in memory,
    as one numpy array (materialised: the store copies it); None for anything else."""
    table = None
    if isinstance(features, pa.Table):
        table = features
    elif type(features).__module__.startswith("datasets") and hf_dataset_files(features) is None:
        table = features.data.table
    if table is None:
        return None
    if column not in table.column_names:
        raise InvalidInputError(
            f"the table has no column {column!r} (its columns: {', '.join(table.column_names)})"
        )
    chunks = [_rows_of(c, column, "the table") for c in table.column(column).chunks if len(c)]
    if not chunks:
        raise InvalidInputError(f"column {column!r} of the table holds no rows")
    return np.concatenate(chunks)


def _rows_of(column: Any, name: str, where: object) -> np.ndarray:
    """A batch's column as a numpy array of rows, without a copy."""
    shape: list[int] = []
    arr = column
    while True:
        kind = arr.type
        if pa.types.is_fixed_size_list(kind):
            shape.append(kind.list_size)
            arr = arr.flatten()
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            offsets = np.asarray(arr.offsets)
            sizes = np.diff(offsets)
            if len(sizes) and (sizes != sizes[0]).any():
                raise InvalidInputError(
                    f"column {name!r} of {where} is ragged: its lists have lengths from "
                    f"{sizes.min()} to {sizes.max()}; features need one length per row"
                )
            shape.append(int(sizes[0]) if len(sizes) else 0)
            arr = arr.flatten()
        else:
            break
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        raise InvalidInputError(
            f"column {name!r} of {where} holds {column.type}, not numbers (or lists of numbers)"
        )
    if arr.null_count:
        raise InvalidInputError(f"column {name!r} of {where} has missing values (nulls)")
    values: np.ndarray = arr.to_numpy(zero_copy_only=True)
    return values.reshape(len(column), *shape)


class ArrowSource(FeatureSource):
    """Column ``column`` of one or more Arrow IPC files, row after row, memory-mapped."""

    kind = "arrow"

    def __init__(self, paths: list[Path], column: str) -> None:
        if not isinstance(column, str) or not column:
            raise InvalidInputError(f"column must be a column name, got {column!r}")
        self.paths = [Path(p).resolve() for p in paths]
        self.path = self.paths[0]
        self.column = column
        self._batches: list[np.ndarray] = []
        for path in self.paths:
            self._batches += self._read_file(path)
        if not self._batches:
            raise InvalidInputError(f"{self.path} holds no rows")
        sizes = np.array([len(b) for b in self._batches], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(sizes)])
        first = self._batches[0]
        for b in self._batches[1:]:
            if b.shape[1:] != first.shape[1:] or b.dtype != first.dtype:
                raise InvalidInputError(
                    f"column {column!r} changes shape or dtype between record batches "
                    f"({first.shape[1:]} {first.dtype} and {b.shape[1:]} {b.dtype})"
                )
        self.shape = (int(self._starts[-1]), *first.shape[1:])
        self.dtype = first.dtype
        check_rows(self.shape, self.path)

    def _read_file(self, path: Path) -> list[np.ndarray]:
        if not path.exists():
            raise SourceMissingError(f"Arrow file {path} does not exist")
        source = pa.memory_map(str(path), "r")
        try:
            try:
                reader: Any = pa.ipc.open_file(source)
                batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
            except pa.ArrowInvalid:  # the stream format (datasets' cache files)
                source.seek(0)
                batches = list(pa.ipc.open_stream(source))
        except pa.ArrowInvalid as exc:
            raise InvalidInputError(f"{path} is not an Arrow IPC file: {exc}") from None
        names = batches[0].schema.names if batches else []
        if batches and self.column not in names:
            raise InvalidInputError(
                f"{path} has no column {self.column!r} (its columns: {', '.join(names)})"
            )
        return [_rows_of(b.column(self.column), self.column, path) for b in batches if b.num_rows]

    @property
    def array(self) -> None:
        # docstring inherited
        return None

    def _parts(self, lo: int, hi: int) -> list[np.ndarray]:
        first = int(np.searchsorted(self._starts, lo, side="right")) - 1
        out = []
        for k in range(first, len(self._batches)):
            a = int(self._starts[k])
            if a >= hi:
                break
            out.append(self._batches[k][max(lo - a, 0) : hi - a])
        return out

    def view_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        parts = self._parts(lo, hi)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def read_range(self, lo: int, hi: int) -> np.ndarray:
        # docstring inherited
        return np.concatenate(self._parts(lo, hi)) if hi > lo else self.buffer(0)

    def read_rows(self, dataset_indices: IndexArray) -> np.ndarray:
        # docstring inherited
        order = np.argsort(dataset_indices, kind="stable")
        out = self.buffer(len(dataset_indices))
        out[order] = self.read_sorted(dataset_indices[order])
        return out

    def read_sorted(self, dataset_indices: IndexArray, out: np.ndarray | None = None) -> np.ndarray:
        # docstring inherited
        n = len(dataset_indices)
        part = (self.buffer(n) if out is None else out)[:n]
        if n == 0:
            return part
        for k, a, b in block_spans(dataset_indices, self._starts[:-1]):  # per record batch
            take_rows(self._batches[k], dataset_indices[a:b] - self._starts[k], part[a:b])
        return part

    def describe(self) -> dict[str, Any]:
        # docstring inherited
        return {
            "kind": self.kind,
            "path": str(self.path),
            "paths": [str(p) for p in self.paths],
            "column": self.column,
            **self.fingerprint(),
            "file_size": sum(os.stat(p).st_size for p in self.paths),
        }
