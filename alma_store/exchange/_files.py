"""Import and export of labels and history as CSV or JSON Lines.

Formats are chosen by file suffix: ``.csv``, ``.jsonl`` or ``.parquet`` (the
last with the ``parquet`` extra; its "lines" are 1-based row numbers). Labels files have one
row per labeled item, ``dataset_index,label``; history files one row per label
entry of every commit, ``version,kind,dataset_index,label,previous,annotator,
round,time``. Labels that are vectors are JSON lists (a JSON string in CSV).
With a class schema, labels are written as class names.

Export streams: memory stays bounded by one chunk (labels) or one journal
block (history). Import is one atomic commit: every row is read and checked
first, and a bad row is reported by line number with nothing written.

CSV cells a spreadsheet would evaluate as a formula (text starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return, as from a class or annotator
name ``=HYPERLINK(...)``) are written with a leading ``'``, as OWASP
recommends; so is text that starts with ``'`` itself, so that an import,
which drops one leading ``'``, reads back exactly what was exported. Numbers
are never touched. ``raw=True`` writes every cell as it is.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..core import LabelEvent, LabelSchema
from ..errors import AlmaError, AlreadyLabeledError, InvalidInputError, MissingExtraError

LABEL_FIELDS = ("dataset_index", "label")
HISTORY_FIELDS = (
    "version",
    "kind",
    "dataset_index",
    "label",
    "previous",
    "annotator",
    "round",
    "time",
)
Progress = Callable[[int], None] | None
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
"""Text starting so is escaped in CSV exports (a leading ``'``)."""


def csv_cell(value: Any, *, raw: bool = False) -> Any:
    """One CSV cell: lists as JSON, None as empty, formula-like text escaped unless ``raw``.

    >>> csv_cell("=1+1"), csv_cell(-3), csv_cell("'quoted"), csv_cell("=1", raw=True)
    ("'=1+1", -3, "''quoted", '=1')
    """
    if isinstance(value, list):
        return json.dumps(value)
    if value is None:
        return ""
    if not raw and isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(cell: str) -> str:
    """The text a CSV cell of an export holds (one leading ``'`` of the escape dropped)."""
    return cell.removeprefix("'")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".parquet"):
        raise InvalidInputError(
            f"{path} must end in .csv, .jsonl or .parquet, got {suffix or 'no suffix'!r}"
        )
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise MissingExtraError("parquet", "Parquet files (pyarrow)") from None
    return suffix[1:]


class _Writer:
    """Rows to CSV, JSON Lines or Parquet (buffered into row groups)."""

    def __init__(self, path: Path, fields: tuple[str, ...], *, raw: bool = False) -> None:
        self.kind = _format(path)
        self.fields = fields
        self.raw = raw
        self.path = path
        self.buffer: list[dict[str, Any]] = []
        self.parquet: Any = None
        if self.kind != "parquet":
            self.file = path.open("w", newline="", encoding="utf-8")
        if self.kind == "csv":
            self.csv = csv.writer(self.file)
            self.csv.writerow(fields)

    def row(self, values: tuple[Any, ...]) -> None:
        if self.kind == "csv":
            self.csv.writerow([csv_cell(v, raw=self.raw) for v in values])
        elif self.kind == "jsonl":
            self.file.write(json.dumps(dict(zip(self.fields, values, strict=True))) + "\n")
        else:
            self.buffer.append(dict(zip(self.fields, values, strict=True)))
            if len(self.buffer) >= 65536:
                self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.buffer and self.parquet is not None:
            return
        schema = None if self.parquet is None else self.parquet.schema
        table = pa.Table.from_pylist(self.buffer, schema=schema)
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.path, table.schema)
        self.parquet.write_table(table)
        self.buffer = []

    def close(self) -> None:
        if self.kind == "parquet":
            self._flush()
            self.parquet.close()
        else:
            self.file.close()


def export_labels(
    chunks: Iterable[tuple[int, np.ndarray, np.ndarray]],
    schema: LabelSchema,
    path: Path,
    progress: Progress = None,
    *,
    raw: bool = False,
) -> int:
    """Write ``(chunk, dataset_indices, labels)`` chunk by chunk; returns the number of rows.

    ``raw``: CSV cells as they are, formula-like text not escaped.
    """
    writer = _Writer(path, LABEL_FIELDS, raw=raw)
    rows = 0
    try:
        for _, idx, labels in chunks:
            for i, y in zip(idx.tolist(), labels, strict=True):
                writer.row((i, schema.to_python(y)))
            rows += len(idx)
            if progress:
                progress(len(idx))
    finally:
        writer.close()
    return rows


def export_history(
    events: Iterable[LabelEvent],
    schema: LabelSchema,
    path: Path,
    progress: Progress = None,
    *,
    raw: bool = False,
) -> int:
    """Write every label entry of ``events``; returns the number of rows (``raw``: as above)."""
    writer = _Writer(path, HISTORY_FIELDS, raw=raw)
    rows = 0
    try:
        for event in events:
            previous = event.previous if event.previous is not None else [None] * len(event.values)
            n = len(event.dataset_indices)
            who = event.row_annotators or (event.annotator,) * n
            when = event.row_times or (event.time,) * n
            for k, i in enumerate(event.dataset_indices.tolist()):
                prev = None if previous[k] is None else schema.to_python(previous[k])
                writer.row(
                    (
                        event.version,
                        event.kind,
                        i,
                        schema.to_python(event.values[k]),
                        prev,
                        who[k],
                        event.round,
                        when[k],
                    )
                )
            rows += len(event.dataset_indices)
            if progress:
                progress(len(event.dataset_indices))
    finally:
        writer.close()
    return rows


def _records(kind: str, f: Any, path: Path, schema: LabelSchema) -> Iterator[tuple[int, Any, Any]]:
    """``(line or row number, dataset_index, label)`` of each record, as read."""
    if kind == "csv":
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:2]) != LABEL_FIELDS:
            raise InvalidInputError(
                f"{path}: line 1: the header must start with 'dataset_index,label', got {header!r}"
            )
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 2:
                raise InvalidInputError(f"{path}: line {line}: expected 2 fields, got {row!r}")
            yield (
                line,
                _parse_index(row[0], path, line),
                parse_label_text(csv_text(row[1]), schema, path, line),
            )
    elif kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(f)
        if not set(LABEL_FIELDS) <= set(table.column_names):
            raise InvalidInputError(
                f"{path}: the table must have columns 'dataset_index' and 'label', "
                f"got {table.column_names}"
            )
        for row_number, obj in enumerate(table.select(list(LABEL_FIELDS)).to_pylist(), start=1):
            yield row_number, obj["dataset_index"], obj["label"]
    else:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                raise InvalidInputError(f"{path}: line {line}: not JSON: {exc}") from None
            if not isinstance(obj, dict) or not set(LABEL_FIELDS) <= obj.keys():
                raise InvalidInputError(
                    f"{path}: line {line}: expected an object with 'dataset_index' and 'label'"
                )
            yield line, obj["dataset_index"], obj["label"]


def count_rows(path: Path) -> int | None:
    """About how many records a labels file holds (for a progress total), or None.

    One pass over the bytes for CSV and JSON Lines (line ends, less the CSV
    header), the footer for Parquet; None where the file cannot be read (the
    import that follows reports why).
    """
    try:
        kind = _format(path)
        if kind == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        with path.open("rb") as f:
            lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
        return max(lines - (kind == "csv"), 0)
    except (OSError, AlmaError, ValueError):
        return None


def read_labels_file(
    path: Path, n_items: int, schema: LabelSchema, progress: Progress = None
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Read and check every row: (dataset indices, labels, line numbers)."""
    kind = _format(path)
    unit = "row" if kind == "parquet" else "line"
    indices: list[int] = []
    labels: list[Any] = []
    lines: list[int] = []
    try:
        opened = path.open("rb") if kind == "parquet" else path.open(encoding="utf-8", newline="")
        with opened as f:
            for line, index, label in _records(kind, f, path, schema):
                if not isinstance(index, int) or isinstance(index, bool):
                    raise InvalidInputError(
                        f"{path}: {unit} {line}: dataset_index must be an integer, got {index!r}"
                    )
                indices.append(index)
                labels.append(label)
                lines.append(line)
    except FileNotFoundError:
        raise InvalidInputError(f"{path} does not exist") from None
    if progress is not None:
        progress(len(indices))
    idx = np.array(indices, dtype=np.int64)
    for k, i in enumerate(indices):
        if not 0 <= i < n_items:
            raise InvalidInputError(
                f"{path}: {unit} {lines[k]}: dataset_index {i} is out of range [0, {n_items})"
            )
    seen: dict[int, int] = {}
    for k, i in enumerate(indices):
        if i in seen:
            raise InvalidInputError(
                f"{path}: {unit} {lines[k]}: dataset_index {i} repeats {unit} {seen[i]}"
            )
        seen[i] = lines[k]
    try:
        values = schema.parse_values(labels, len(labels))
    except InvalidInputError:
        for k, y in enumerate(labels):  # each label alone, to name the line of the bad one
            try:
                schema.parse_values([y], 1)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{path}: {unit} {lines[k]}: {exc}") from None
        raise
    return idx, values, lines


def _parse_index(text: str, path: Path, line: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{path}: line {line}: dataset_index must be an integer, got {text!r}"
        ) from None


def parse_label_text(text: str, schema: LabelSchema, path: object, line: int | None = None) -> Any:
    """A CSV (or command-line) label as the value the store expects.

    Errors name ``path`` and ``line`` (or ``path`` alone: a place named already)."""
    at = str(path) if line is None else f"{path}: line {line}"
    dtype = schema.dtype
    if schema.shape:
        try:
            return json.loads(text)
        except ValueError:
            raise InvalidInputError(f"{at}: label {text!r} is not a JSON list") from None
    if schema.classes is not None or dtype.kind in "TU":
        return text
    try:
        if dtype.kind in "iu":
            return int(text)
        if dtype.kind == "b":
            if text not in ("True", "False", "true", "false", "0", "1"):
                raise ValueError(text)
            return text in ("True", "true", "1")
        value = float(text)
        if dtype.kind == "c" or not math.isnan(value) or text.strip().lower() == "nan":
            return value
        raise ValueError(text)
    except ValueError:
        raise InvalidInputError(f"{at}: label {text!r} is not a {dtype}") from None


def name_line(
    exc: AlreadyLabeledError, idx: np.ndarray, lines: list[int], path: Path
) -> AlreadyLabeledError:
    """``exc`` restated with the file line of the first labeled item it names."""
    where = dict(zip(idx.tolist(), lines, strict=True))
    first = exc.positions[0]
    return AlreadyLabeledError(
        exc.positions,
        reason=f"{path}: line {where[first]}: dataset_index {first} is labeled already "
        f"({len(exc.positions)} rows in all); nothing was written",
    )
