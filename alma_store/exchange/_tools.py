"""Exchange with annotation tools: Label Studio and Prodigy files, without a store.

Tasks go out carrying ``dataset_index``; the tools keep a task's fields in
their exports, which is how labels find their way back:

- **Label Studio** imports a JSON list of tasks ``{"data": {...}}``. Its three
  export formats are told apart by their content:

  - "JSON": the tasks with their ``annotations``: each has a ``result`` list,
    ``completed_by`` (a user id, or an object with ``email`` in a snapshot
    export made with ``only_id: false``), ``created_at``/``updated_at`` (ISO
    8601) and ``was_cancelled``. A classification is a result of type
    ``choices`` (``value.choices``, one of them); ``rating``, ``number`` and
    ``textarea`` results give numeric or text labels. Any labeling config.
  - "JSON-MIN": one flat object per annotation: the task's data fields,
    ``annotator`` (a user id), ``annotation_id``, ``created_at``,
    ``updated_at``, and each control by its name in the labeling config: the
    one named ``label`` (what :func:`labelstudio_config` writes) is the label.
  - "CSV": the same columns as JSON-MIN, as text.

  Skipped (cancelled) annotations are no labels; JSON-MIN and CSV leave them out.
  A label's time is when its value was last set (``updated_at``).
- **Prodigy** reads JSON Lines tasks and ``prodigy db-out`` writes them back
  with ``answer`` (``accept``, ``reject``, ``ignore``), ``_annotator_id`` and
  ``_timestamp`` (Unix seconds). The label is ``accept`` (choice interface,
  one option) or ``label`` (classification interface). Only accepted answers
  are labels; rejected and ignored ones are skipped.
- **doccano** exports a text-classification project as JSON Lines, one file per
  annotator: ``{"id", "text", "label": ["cat"], ...}`` with the task's other
  fields (``dataset_index``) kept at the top level. It records neither who nor
  when: the importer names the annotator, and the import time is recorded. An
  empty ``label`` list is no label.
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import numbers
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..core import IndexArray, LabelSchema, check_text, check_time, parse_indices
from ..errors import AlmaError, InvalidInputError
from ..storage import atomic_write
from ._files import parse_label_text

__all__ = [
    "FORMATS",
    "ToolBatch",
    "ToolRow",
    "check_format",
    "labelstudio_config",
    "labelstudio_task_index",
    "read_tool_export",
    "tool_task",
    "user_map",
    "write_tasks",
]

FORMATS = ("label-studio", "prodigy", "doccano")
_LS_TYPES = {"choices": "choices", "rating": "rating", "number": "number", "textarea": "text"}


@dataclass(frozen=True, slots=True)
class ToolRow:
    """One annotation read from a tool's export."""

    dataset_index: int
    value: object
    annotator: str
    time: float
    where: str  # names the task in messages
    from_text: bool = False  # a CSV cell: the label is parsed as the store's dtype


@dataclass(frozen=True, slots=True)
class ToolBatch:
    """The rows of an export, checked against a store: one commit's worth."""

    dataset_indices: IndexArray
    values: np.ndarray
    annotators: tuple[str, ...]
    times: tuple[float, ...]
    where: tuple[str, ...]

    @classmethod
    def check(
        cls, rows: list[ToolRow], schema: LabelSchema, n_items: int, *, one_per_item: bool
    ) -> ToolBatch:
        """Check every row (index, label, one label per item if so); errors name the task."""
        if one_per_item:  # the same label twice (an overlap that agrees) counts once
            first: dict[int, ToolRow] = {}
            kept = []
            for r in rows:
                before = first.setdefault(r.dataset_index, r)
                if before is r:
                    kept.append(r)
                elif before.value != r.value:
                    raise InvalidInputError(
                        f"{r.where}: dataset index {r.dataset_index} is labeled {r.value!r} by "
                        f"{r.annotator} and {before.value!r} by {before.annotator} "
                        f"({before.where}); this store keeps one label per item (create it "
                        "with annotations_per_item=k to keep several annotators' labels); "
                        "nothing was written"
                    )
            rows = kept
        out_of_range = [r for r in rows if r.dataset_index >= n_items]
        if out_of_range:
            r = out_of_range[0]
            raise InvalidInputError(
                f"{r.where}: dataset_index {r.dataset_index} is not in [0, {n_items}); "
                "nothing was written"
            )
        values = _parse_values(rows, schema)
        idx = parse_indices(
            [r.dataset_index for r in rows], name="dataset_indices", upper=n_items, unique=False
        )
        return cls(
            idx,
            values,
            tuple(r.annotator for r in rows),
            tuple(r.time for r in rows),
            tuple(r.where for r in rows),
        )

    def where_of(self, dataset_indices: list[int]) -> str:
        """The task of the first row naming one of ``dataset_indices``."""
        wanted = set(dataset_indices)
        return next(
            (
                w
                for i, w in zip(self.dataset_indices.tolist(), self.where, strict=True)
                if i in wanted
            ),
            "",
        )


def _parse_values(rows: list[ToolRow], schema: LabelSchema) -> np.ndarray:
    """The rows' labels as the store's values: in one call where they are all of one Python
    type (an export's usual case), row by row otherwise, so that a mix is never coerced
    (``[True, 2]`` is not ``[1, 2]``); an error names the first bad row."""
    try:
        raw = [
            parse_label_text(str(r.value), schema, r.where) if r.from_text else r.value
            for r in rows
        ]
    except AlmaError as exc:
        raise InvalidInputError(f"{exc}; nothing was written") from None
    if not rows:
        return np.empty((0, *schema.shape), schema.dtype)
    if len({type(v) for v in raw}) == 1:
        with contextlib.suppress(AlmaError):
            return schema.parse_values(raw, len(raw))
    values = []
    for r, value in zip(rows, raw, strict=True):
        try:
            values.append(schema.parse_values([value], 1)[0])
        except AlmaError as exc:
            raise InvalidInputError(f"{r.where}: {exc}; nothing was written") from None
    return np.stack(values)


def check_format(fmt: object) -> str:
    """``fmt`` if it is a known tool format."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"format must be one of {FORMATS}, got {fmt!r}")
    return str(fmt)


def tool_task(i: int, fmt: str, data: Callable[[int], dict[str, Any]] | None) -> dict[str, Any]:
    """Item ``i``'s task for tool ``fmt``: its display fields ``data(i)`` and ``dataset_index``."""
    fields = {} if data is None else data(i)
    if not isinstance(fields, dict) or "dataset_index" in fields:
        raise InvalidInputError(
            f"data({i}) must return a dict of display fields without 'dataset_index', "
            f"got {fields!r}"
        )
    if fmt == "label-studio":
        return {"data": {"dataset_index": i, **fields}}
    if fmt == "doccano":  # its import keeps extra fields, and its export gives them back
        return {"dataset_index": i, **fields}
    return {"dataset_index": i, **fields, "meta": {"dataset_index": i}}


def write_tasks(
    path: Path,
    dataset_indices: Iterable[int],
    fmt: str,
    data: Callable[[int], dict[str, Any]] | None,
) -> int:
    """Write one task per item to ``path`` (atomically); returns the number written."""
    tasks = [tool_task(i, fmt, data) for i in dataset_indices]
    try:
        if fmt == "label-studio":
            text = json.dumps(tasks, indent=1)
        else:
            text = "".join(json.dumps(t) + "\n" for t in tasks)
    except TypeError as exc:
        raise InvalidInputError(f"data(...) returned fields that are not JSON: {exc}") from None
    atomic_write(path, text.encode())
    return len(tasks)


_LS_OBJECTS = ("Text", "Image", "HyperText", "Audio", "Video", "Table", "Paragraphs", "TimeSeries")


def labelstudio_config(classes: Sequence[object], field: str, show: str) -> str:
    """A Label Studio labeling config (``<View>``) for one choice among ``classes``.

    ``show`` is the object tag that shows the task's ``data[field]`` (``"Text"``,
    ``"Image"``, ...); the choices are named ``label``, which is what
    :func:`read_tool_export` reads back from every export format.
    """
    if show not in _LS_OBJECTS:
        raise InvalidInputError(f"show must be one of {_LS_OBJECTS}, got {show!r}")
    if not isinstance(field, str) or not field.isidentifier() or field == "dataset_index":
        raise InvalidInputError(
            f"field must name a display field of the tasks (an identifier), got {field!r}"
        )
    names = [check_text(str(c), "a class name") for c in classes]
    if not names:
        raise InvalidInputError(
            "a labeling config needs the classes: the store has no class names; give "
            "classes=[...] (the values its labels take)"
        )
    choices = "".join(f'    <Choice value="{html.escape(n, quote=True)}"/>\n' for n in names)
    return (
        "<View>\n"
        f'  <{show} name="item" value="${field}"/>\n'
        '  <Choices name="label" toName="item" choice="single" showInline="true">\n'
        f"{choices}"
        "  </Choices>\n"
        "</View>\n"
    )


def read_tool_export(
    source: Path | Sequence[object],
    fmt: str,
    *,
    annotator: str | None = None,
    annotators: Mapping[object, str] | None = None,
) -> list[ToolRow]:
    """Every labeling annotation of a tool's export, checked for shape (not yet for the store).

    ``source`` is the export file, or its tasks as Python objects (a Label Studio
    task as its API returns it, a Prodigy or doccano record). ``annotator`` names
    who made a doccano export (its files are per annotator); ``annotators`` maps
    the tools' user ids (as they appear, e.g. ``2`` or ``"2"``) to names.
    Anything malformed is an :class:`~alma_store.errors.InvalidInputError` naming
    the task (or line), the annotation and the field.
    """
    names = user_map(annotators)
    if (fmt == "doccano") != (annotator is not None):
        raise InvalidInputError(
            "a doccano export is one annotator's: name them with annotator=..."
            if fmt == "doccano"
            else f"annotator= is for doccano exports; a {fmt} export names its annotators"
        )
    if isinstance(source, Path):
        if fmt == "label-studio":
            rows = _label_studio_file(source)
        else:
            objects = (
                (f"{source} line {n}", _json(line, f"{source} line {n}"))
                for n, line in enumerate(_text(source).splitlines(), 1)
                if line.strip()
            )
            rows = _records(objects, fmt, str(annotator))
    else:
        objects = ((f"task {n}", obj) for n, obj in enumerate(source))
        if fmt == "label-studio":
            rows = [row for where, obj in objects for row in _label_studio(obj, where)]
        else:
            rows = _records(objects, fmt, str(annotator))
    if names:
        rows = [replace(r, annotator=names.get(r.annotator, r.annotator)) for r in rows]
    return rows


def _records(objects: Iterable[tuple[str, object]], fmt: str, annotator: str) -> list[ToolRow]:
    """The rows of Prodigy or doccano records (``(where, object)`` pairs)."""
    now = time.time()
    rows = []
    for where, obj in objects:
        row = _prodigy(obj, where) if fmt == "prodigy" else _doccano(obj, where, annotator, now)
        if row is not None:
            rows.append(row)
    return rows


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError(f"{path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path} is not UTF-8 text (byte {exc.start})") from None


def user_map(annotators: Mapping[object, str] | None) -> dict[str, str]:
    """Names for the tools' user ids, keyed by the id as a str (``2`` and ``"2"`` alike), checked."""
    if annotators is None:
        return {}
    if not isinstance(annotators, Mapping):
        raise InvalidInputError(
            f"annotators must map user ids to names, got a {type(annotators).__name__}"
        )
    out = {}
    for key, name in annotators.items():
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise InvalidInputError(f"annotators: a user id is an int or a str, got {key!r}")
        out[str(key)] = check_text(name, f"annotators[{key!r}]")
    return out


def _label_studio_file(path: Path) -> list[ToolRow]:
    """A Label Studio export of any of its formats (JSON, JSON-MIN, CSV), told by content.

    JSON is parsed as a stream, task by task (:func:`_array_items`): memory follows the
    annotations kept, not the size of the file (a JSON export is about 500 bytes per
    annotation).
    """
    where = str(path)
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise InvalidInputError(f"{path} does not exist") from None
    with stream:
        head = stream.read(4096)
        skip = 3 if head.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 byte order mark
        first = head[skip:].lstrip()[:1]
        if first not in (b"[", b"{"):
            return _label_studio_csv(_text(path), where)
        if first == b"{":
            raise InvalidInputError(
                f"{where}: a Label Studio export is a JSON list (the JSON or JSON-MIN export) "
                "or a CSV file; export the project again in one of those"
            )
        stream.seek(skip)
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        rows: list[ToolRow] = []
        minimal = False
        try:
            for n, task in enumerate(_array_items(text)):
                if n == 0:  # JSON-MIN: flat objects, one per annotation
                    minimal = isinstance(task, dict) and "data" not in task
                if minimal:
                    row = _flat(task, f"{where} item {n}", False)
                    if row is not None:
                        rows.append(row)
                else:
                    rows.extend(_label_studio(task, f"{where} task {n}"))
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{where} is not UTF-8 text ({exc.reason})") from None
        except _Shape as exc:
            raise InvalidInputError(f"{where} is not JSON: {exc}") from None
    return rows


class _Shape(Exception):
    """A JSON document that is not an export's shape (turned into a named error)."""


READ_CHARS = 1 << 20
"""Characters read at a time from a JSON export (doubled while one task does not fit)."""
MAX_TASK_CHARS = 64 << 20
"""A task of an export larger than this is refused (memory stays bounded by it)."""


def _no_constant(name: str) -> float:
    raise _Shape(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _array_items(text: io.TextIOBase) -> Iterator[Any]:
    """The items of a top-level JSON array, decoded one at a time by the standard
    library's JSON scanner from a window of the text.

    Memory follows the window (about :data:`READ_CHARS`, or the largest task), not
    the file. A task cut by the window's end is decoded again once more is read; a
    task that still does not decode at the end of the file, or past
    :data:`MAX_TASK_CHARS`, is an error. (ijson's ``items`` keeps a dotted path per
    event, which grows with the depth, and building items from its events in
    Python took two thirds of an import.)
    """
    buf, pos, eof = "", 0, False

    def fill(need: int) -> bool:
        """Read until ``need`` characters lie ahead of ``pos`` (or the file ends)."""
        nonlocal buf, pos, eof
        if pos:
            buf, pos = buf[pos:], 0
        while not eof and len(buf) < need:
            chunk = text.read(max(READ_CHARS, need - len(buf)))
            eof = not chunk
            buf += chunk
        return len(buf) > 0

    def next_char() -> str:
        """The next character that is not white space (``""`` at the end), not consumed."""
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\n\r":
                pos += 1
            if pos < len(buf) or not fill(1):
                return buf[pos] if pos < len(buf) else ""

    if next_char() != "[":
        raise _Shape("a Label Studio export is a JSON list")
    pos += 1
    if next_char() == "]":
        pos += 1
    else:
        while True:
            want = READ_CHARS
            while True:
                try:
                    item, end = _DECODER.raw_decode(buf, pos)
                    if end < len(buf) or eof:  # a number may go on past the window
                        break
                    error = "the file ends inside a task"
                except json.JSONDecodeError as exc:
                    error = f"{exc.msg} (line {exc.lineno} of the window)"
                except RecursionError:
                    raise _Shape("nested too deeply") from None
                if eof or len(buf) - pos >= MAX_TASK_CHARS:
                    raise _Shape(error)
                want = min(2 * want, MAX_TASK_CHARS)
                fill(want)
            pos = end
            yield item
            after = next_char()
            pos += 1
            if after == "]":
                break
            if after != ",":
                raise _Shape(f"expected ',' or ']' after a task, found {after or 'the end'!r}")
            next_char()
    if next_char():
        raise _Shape("trailing garbage after the list")


def _label_studio_csv(text: str, where: str) -> list[ToolRow]:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        table = list(reader)
    except csv.Error as exc:
        raise InvalidInputError(f"{where} is neither JSON nor CSV: {exc}") from None
    if not reader.fieldnames or "dataset_index" not in reader.fieldnames:
        raise InvalidInputError(
            f"{where}: not a Label Studio export of tasks written by export_tasks (JSON, "
            "JSON-MIN or CSV with a dataset_index column)"
        )
    rows = (_flat(row, f"{where} line {n}", True) for n, row in enumerate(table, 2))
    return [r for r in rows if r is not None]


def _flat(item: object, where: str, from_text: bool) -> ToolRow | None:
    """One annotation of a JSON-MIN or CSV export (None: a task without one)."""
    if not isinstance(item, dict):
        raise InvalidInputError(f"{where}: an item of a JSON-MIN export is an object")
    if item.get("annotation_id") in (None, ""):
        return None  # a task nobody annotated (exported with all tasks)
    if "id" in item:
        where = f"{where} (task {item['id']}, annotation {item['annotation_id']})"
    raw = item.get("dataset_index")
    if from_text:
        raw = int(raw) if isinstance(raw, str) and raw.isdigit() else raw
    index = _dataset_index(raw, where)
    if "label" not in item:
        raise InvalidInputError(
            f"{where}: no 'label' field. JSON-MIN and CSV exports name each control by its "
            "name in the labeling config, and the label is read from the one named 'label' "
            "(store.labelstudio_config() writes it); export as JSON to import any config"
        )
    value: Any = item["label"]
    if from_text and isinstance(value, str) and value.startswith("{"):
        value = _json(value, f"{where}: label")
        from_text = False
    if isinstance(value, dict):  # several values of one control: {"choices": [...]}
        inner = [v for v in value.values() if isinstance(v, list)]
        if len(inner) != 1 or len(inner[0]) != 1:
            raise InvalidInputError(f"{where}: expected exactly one choice, got {value!r}")
        value = inner[0][0]
    return ToolRow(
        index,
        check_text(value, f"{where}: the label") if from_text else _label(value, where),
        _who(item.get("annotator"), f"{where}: annotator", empty=False),
        _iso_time(item.get("updated_at") or item.get("created_at"), where),
        where,
        from_text,
    )


def _who(value: object, what: str, *, empty: bool = True) -> str:
    """Who annotated, as a Label Studio export names them: a user id, or an object with
    ``email`` (a snapshot export) or ``id``. ``what`` names the field in errors."""
    if isinstance(value, dict):
        value = value.get("email") or value.get("id")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidInputError(f"{what} must name who annotated, got {value!r}")
    return sys.intern(check_text(str(value), what, empty=empty))  # one str per annotator


def _iso_time(text: object, where: str) -> float:
    try:
        when = datetime.fromisoformat(text).timestamp()  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise InvalidInputError(f"{where}: the time is not ISO 8601: {text!r}") from None
    return check_time(when, f"{where}: the time")


def _doccano(obj: object, where: str, annotator: str, now: float) -> ToolRow | None:
    if not isinstance(obj, dict):
        raise InvalidInputError(f"{where}: a line of a doccano export is an object")
    meta = _field(obj, "meta", dict, where) or {}
    raw = obj.get("dataset_index", meta.get("dataset_index"))
    if raw is None:
        raise InvalidInputError(f"{where}: the item has no dataset_index (nor meta.dataset_index)")
    index = _dataset_index(raw, where)
    labels = obj.get("label", obj.get("cats"))
    if labels in (None, []):
        return None  # not labeled yet
    if not isinstance(labels, list) or len(labels) != 1:
        raise InvalidInputError(f"{where}: expected exactly one label, got {labels!r}")
    return ToolRow(index, _label(labels[0], where), annotator, now, where)


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidInputError(f"{where} is not JSON: {what}") from None


def _dataset_index(obj: object, where: str) -> int:
    if type(obj) is int and obj >= 0:  # what JSON gives, without the ABC check
        return obj
    if not isinstance(obj, numbers.Integral) or isinstance(obj, bool) or int(obj) < 0:
        raise InvalidInputError(f"{where}: dataset_index must be a non-negative int, got {obj!r}")
    return int(obj)


def _field(obj: dict[str, Any], key: str, kinds: type | tuple[type, ...], where: str) -> Any:
    """``obj[key]`` if absent (None) or of ``kinds``; anything else names the field."""
    value = obj.get(key)
    if value is not None and not isinstance(value, kinds):
        raise InvalidInputError(f"{where}: {key} must be {_kind(kinds)}, got {value!r}")
    return value


def _kind(kinds: type | tuple[type, ...]) -> str:
    names = [k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,))]
    return {"list": "a list", "dict": "an object", "str": "a str"}.get(names[0], " or ".join(names))


def _label(value: object, where: str) -> object:
    """A label value as an export holds it: a str, a number or a bool (one value)."""
    if isinstance(value, str):  # one str per class, not one per row of a large export
        return sys.intern(check_text(value, f"{where}: the label"))
    if isinstance(value, bool | int | float):
        return value
    raise InvalidInputError(f"{where}: a label is a str, a number or a bool, got {value!r}")


def labelstudio_task_index(task: object, where: str) -> tuple[int, str]:
    """A Label Studio task's dataset index, and ``where`` naming the task's id too."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise InvalidInputError(f"{where}: a task is an object with 'data'")
    if "id" in task:
        where = f"{where} (id {task['id']!r})"
    if "dataset_index" not in task["data"]:
        raise InvalidInputError(f"{where}: its data has no 'dataset_index'")
    return _dataset_index(task["data"]["dataset_index"], where), where


def _label_studio(task: object, where: str) -> list[ToolRow]:
    index, where = labelstudio_task_index(task, where)
    assert isinstance(task, dict)
    rows = []
    for k, ann in enumerate(_field(task, "annotations", list, where) or []):
        at = f"{where} annotation {ann.get('id', k) if isinstance(ann, dict) else k!r}"
        if not isinstance(ann, dict):
            raise InvalidInputError(f"{at}: an annotation is an object")
        if ann.get("was_cancelled"):
            continue  # skipped in the tool: no label
        values = [
            r["value"].get(_LS_TYPES[r["type"]])
            for r in _field(ann, "result", list, at) or []
            if isinstance(r, dict)
            and r.get("type") in _LS_TYPES
            and isinstance(r.get("value"), dict)
        ]
        if len(values) != 1:
            raise InvalidInputError(
                f"{at}: expected one choices/rating/number/textarea result, found {len(values)}"
            )
        value = values[0]
        if isinstance(value, list):  # choices and textarea hold lists
            if len(value) != 1:
                raise InvalidInputError(f"{at}: expected exactly one choice, got {value!r}")
            value = value[0]
        when = _iso_time(ann.get("updated_at") or ann.get("created_at"), at)
        rows.append(
            ToolRow(
                index,
                _label(value, at),
                _who(ann.get("completed_by"), f"{at}: completed_by"),
                when,
                at,
            )
        )
    return rows


def _prodigy(task: object, where: str) -> ToolRow | None:
    if not isinstance(task, dict):
        raise InvalidInputError(f"{where}: a task is an object")
    answer = task.get("answer")
    if answer not in ("accept", "reject", "ignore"):
        raise InvalidInputError(f"{where}: answer must be accept, reject or ignore, got {answer!r}")
    if answer != "accept":
        return None
    meta = _field(task, "meta", dict, where) or {}
    raw_index = task.get("dataset_index", meta.get("dataset_index"))
    if raw_index is None:
        raise InvalidInputError(f"{where}: the task has no dataset_index (nor meta.dataset_index)")
    index = _dataset_index(raw_index, where)
    if "accept" in task:
        if not isinstance(task["accept"], list) or len(task["accept"]) != 1:
            raise InvalidInputError(
                f"{where}: expected exactly one accepted option, got {task['accept']!r}"
            )
        value = task["accept"][0]
    elif "label" in task:
        value = task["label"]
    else:
        raise InvalidInputError(f"{where}: an accepted task needs 'accept' or 'label'")
    who = task.get("_annotator_id") or task.get("_session_id")
    if not isinstance(who, str | int) or isinstance(who, bool):
        raise InvalidInputError(f"{where}: needs an _annotator_id (or _session_id), got {who!r}")
    stamp = task.get("_timestamp")
    return ToolRow(
        index,
        _label(value, where),
        check_text(str(who), f"{where}: _annotator_id"),
        check_time(stamp, f"{where}: _timestamp"),
        where,
    )
