"""Validation of label dtypes, label values and write provenance (pure, no I/O)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError

STR_DTYPE = np.dtypes.StringDType()


def parse_label_dtype(value: object) -> np.dtype:
    """Normalise a label dtype: numeric, bool, fixed ``"U<n>"``, or ``"str"`` (variable length).

    >>> parse_label_dtype("str")
    StringDType()
    >>> parse_label_dtype("int16")
    dtype('int16')
    """
    if value is str or value == "str" or isinstance(value, np.dtypes.StringDType):
        return STR_DTYPE
    try:
        dtype: np.dtype[Any] = np.dtype(value)  # type: ignore[call-overload]
    except TypeError as exc:
        raise InvalidInputError(f"label_dtype {value!r} is not a numpy dtype: {exc}") from None
    if dtype.kind not in "biufcU" or dtype.fields is not None or dtype.itemsize == 0:
        raise InvalidInputError(
            "label_dtype must be numeric, bool, fixed-width 'U<n>' or 'str', "
            f"got {value!r} ({dtype})"
        )
    return dtype


def dtype_to_meta(dtype: np.dtype) -> str:
    """The string recorded in ``meta.json`` for a label dtype."""
    return "str" if dtype.kind == "T" else dtype.str


def parse_label_shape(value: object) -> tuple[int, ...]:
    """Validate ``label_shape``: a tuple of positive ints (``()`` for scalar labels)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise InvalidInputError(f"label_shape must be a tuple of positive ints, got {value!r}")
    return tuple(value)


def parse_label_values(values: Any, n: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Validate labels for ``n`` items and return them as an array of ``dtype``.

    Nothing is coerced: a value that would change when stored (``1.5`` into an
    integer dtype, ``300`` into ``uint8``, a string into a number, a string
    longer than a ``U<n>`` dtype holds) is an error.

    >>> parse_label_values([1, 2], 2, np.dtype("int8"), ())
    array([1, 2], dtype=int8)
    >>> parse_label_values([1.5], 1, np.dtype("int64"), ())
    Traceback (most recent call last):
    ...
    alma_store.errors.InvalidInputError: labels cannot be stored as int64 without change: 1.5
    """
    want = (n, *shape)
    if dtype.kind in "TU":
        flat = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else values
        if shape == () and isinstance(flat, list | tuple):
            bad = [v for v in flat if not isinstance(v, str)]
            if bad:
                raise InvalidInputError(
                    f"labels must be strings for label dtype {dtype}, got {bad[0]!r}"
                )
        arr = np.array(values, dtype=STR_DTYPE if dtype.kind == "T" else object)
        if arr.shape != want:
            raise InvalidInputError(f"labels has shape {arr.shape}, expected {want}")
        if arr.dtype == object:
            bad = [v for v in arr.reshape(-1) if not isinstance(v, str)]
            if bad:
                raise InvalidInputError(
                    f"labels must be strings for label dtype {dtype}, got {bad[0]!r}"
                )
            width = dtype.itemsize // 4
            long = [v for v in arr.reshape(-1) if len(v) > width]
            if long:
                raise InvalidInputError(
                    f"label {long[0]!r} is longer than the {width} characters label dtype {dtype} holds"
                )
        return arr.astype(dtype)
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"labels is not an array of numbers: {exc}") from None
    if arr.shape != want:
        raise InvalidInputError(f"labels has shape {arr.shape}, expected {want}")
    if arr.dtype.kind not in "biufc":
        raise InvalidInputError(
            f"labels must be numbers for label dtype {dtype}, got dtype {arr.dtype}"
            + (f" (e.g. {arr.reshape(-1)[0]!r})" if arr.size else "")
        )
    if arr.dtype == dtype:
        return arr.copy()  # nothing to check: the same dtype holds the same values
    with np.errstate(all="ignore"):
        out = arr.astype(dtype)
        back = out.astype(arr.dtype)
    # Both ways: a round trip misses wrapping (uint8 255 -> int8 -1 -> uint8 255), and a
    # comparison across dtypes misses rounding (int64 2**53 + 1 -> float64 -> equal).
    nan = arr.dtype.kind in "fc"
    same = (back == arr) & (out == arr)
    if nan:
        same |= np.isnan(arr) & np.isnan(out)
    if not same.all():
        bad = arr.reshape(-1)[~same.reshape(-1)]
        raise InvalidInputError(
            f"labels cannot be stored as {dtype} without change: {bad[0].item()!r}"
        )
    return out


def infer_label_dtype(values: list[Any]) -> np.dtype:
    """The label dtype for a first batch of untyped labels (the compatibility layer).

    Strings give ``"str"``, booleans ``bool``, integers ``int64``, other numbers ``float64``.
    """
    if values and all(isinstance(v, str) for v in values):
        return STR_DTYPE
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return np.dtype(bool)
    if arr.dtype.kind in "iu":
        return np.dtype(np.int64)
    if arr.dtype.kind == "f":
        return np.dtype(np.float64)
    raise InvalidInputError(
        f"cannot infer a label dtype from labels of dtype {arr.dtype}; pass labels_dtype"
    )


def parse_classes(value: object) -> tuple[str, ...] | None:
    """Validate a class schema: a non-empty sequence of distinct, non-empty strings."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidInputError(f"classes must be a list of class names, got {value!r}")
    names = tuple(value)
    if not names or not all(isinstance(c, str) and c for c in names):
        raise InvalidInputError(f"classes must be non-empty strings, got {list(names)!r}")
    for name in names:
        check_text(name, "a class name")
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise InvalidInputError(f"classes repeats {dup}")
    return names


def encode_classes(values: Any, classes: tuple[str, ...]) -> np.ndarray:
    """Turn class names and integer codes into an int64 array of codes.

    Floats (even ``1.0``), booleans and codes outside ``[0, len(classes))``
    are refused: a class is named, or given by its exact integer code.

    >>> encode_classes(["cat", 1, "dog"], ("cat", "dog"))
    array([0, 1, 1])
    >>> encode_classes([1.0], ("cat", "dog"))
    Traceback (most recent call last):
    ...
    alma_store.errors.InvalidInputError: labels must be class names or integer codes in [0, 2), got 1.0
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        flat: list[Any] = values.reshape(-1).tolist()
    elif isinstance(values, np.ndarray):
        flat = values.reshape(-1).tolist()
    elif isinstance(values, list | tuple):
        flat = list(values)
    else:
        raise InvalidInputError(
            f"labels must be a sequence of class names or codes, got {type(values).__name__}"
        )
    lookup = {name: code for code, name in enumerate(classes)}
    codes = []
    for v in flat:
        if isinstance(v, str):
            if v not in lookup:
                raise InvalidInputError(
                    f"unknown class {v!r}; the store's classes are {list(classes)}"
                )
            codes.append(lookup[v])
        elif isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
            if not 0 <= int(v) < len(classes):
                raise InvalidInputError(
                    f"class code {int(v)} is out of range for {len(classes)} classes "
                    f"{list(classes)}"
                )
            codes.append(int(v))
        else:
            raise InvalidInputError(
                f"labels must be class names or integer codes in [0, {len(classes)}), got {v!r}"
            )
    return np.array(codes, dtype=np.int64)


class LabelSchema:
    """What a store's labels are: dtype, shape and optional class names.

    The one place that turns user labels into stored values
    (:meth:`parse_values`) and stored values back into what a person reads
    (:meth:`to_python`, :meth:`class_names`).
    """

    def __init__(
        self, dtype: np.dtype[Any], shape: tuple[int, ...], classes: tuple[str, ...] | None
    ) -> None:
        self.dtype = dtype
        self.shape = shape
        self.classes = classes

    def parse_values(self, values: object, n: int) -> np.ndarray:
        """Labels for ``n`` items as an array of the label dtype (class names encoded)."""
        if self.classes is not None:
            if self.shape:
                raise InvalidInputError("class schemas take scalar labels")
            values = encode_classes(values, self.classes)
        return parse_label_values(values, n, self.dtype, self.shape)

    def counts(self, labels: np.ndarray) -> dict[str, int]:
        """How many of ``labels`` (scalar labels) each value has, by class name when there are classes."""
        values, counts = np.unique(labels, return_counts=True)
        names = self.class_names(values) if self.classes is not None else values
        return {str(k): int(c) for k, c in zip(names.tolist(), counts.tolist(), strict=True)}

    def class_names(self, codes: object) -> np.ndarray:
        """Class names of label codes (stores created with ``classes`` only)."""
        if self.classes is None:
            raise InvalidInputError("the store has no class schema")
        codes_arr = np.asarray(codes)
        if codes_arr.dtype.kind not in "iu" or (
            codes_arr.size and ((codes_arr < 0) | (codes_arr >= len(self.classes))).any()
        ):
            raise InvalidInputError(
                f"codes must be ints in [0, {len(self.classes)}), got {codes!r}"
            )
        names: np.ndarray = np.array(self.classes, dtype=object)[codes_arr]
        return names

    def to_python(self, value: Any) -> Any:
        """A label as a JSON-ready Python value (the class name where there is a schema)."""
        if self.classes is not None and np.ndim(value) == 0:
            return self.classes[int(value)]
        return np.asarray(value).tolist()


MAX_ROUND = 2**31 - 1
"""Rounds are ints from 0 to this (what every export, the report and the plot can show)."""


def check_text(value: object, what: str, *, empty: bool = True) -> str:
    """``value`` as a str that every export can write: valid Unicode (no lone surrogate).

    >>> check_text("ann", "annotator")
    'ann'
    """
    if not isinstance(value, str) or (not empty and not value):
        kind = "a str" if empty else "a non-empty str"
        raise InvalidInputError(f"{what} must be {kind}, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} is not valid Unicode (a lone surrogate at {exc.start}): {value!r}"
        ) from None
    return value


def check_round(value: object, what: str = "round") -> int | None:
    """A round tag: None, or an int from 0 to :data:`MAX_ROUND`.

    >>> check_round(np.int64(3))
    3
    """
    if value is None:
        return None
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise InvalidInputError(f"{what} must be an int or None, got {value!r}")
    if not 0 <= int(value) <= MAX_ROUND:
        raise InvalidInputError(f"{what} must be from 0 to {MAX_ROUND}, got {value!r}")
    return int(value)


def check_time(value: object, what: str) -> float:
    """A Unix time: a finite real number (NaN and infinities cannot be exported)."""
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not math.isfinite(float(value))
    ):
        raise InvalidInputError(f"{what} must be a finite number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Provenance:
    """Who makes a write, in which round, and the version it expects (all optional)."""

    annotator: str | None = None
    round: int | None = None
    expected_version: int | None = None

    @classmethod
    def parse(cls, annotator: object, round: object, expected_version: object) -> Provenance:
        """Validate the provenance arguments shared by every write.

        >>> Provenance.parse("ann", np.int64(3), None)
        Provenance(annotator='ann', round=3, expected_version=None)
        """
        if annotator is not None:
            annotator = check_text(annotator, "annotator")
        if expected_version is not None and (
            not isinstance(expected_version, int | np.integer) or isinstance(expected_version, bool)
        ):
            raise InvalidInputError(
                f"expected_version must be an int or None, got {expected_version!r}"
            )
        return cls(
            annotator,
            check_round(round),
            None if expected_version is None else int(expected_version),
        )


def round_order(round: int | None) -> tuple[bool, int]:
    """Sort key of round tags: numeric order, "no round" (None) last.

    >>> sorted([2, None, 10, 1], key=round_order)
    [1, 2, 10, None]
    """
    return (round is None, round or 0)


def split_batch(
    labels: Any, values: Any, *, names: tuple[str, str] = ("labels", "values")
) -> tuple[Any, Any]:
    """Normalise the two ``add_labels`` spellings to (indices, values).

    ``names`` are the argument names the messages use for the indices and values.
    """
    index_name, value_name = names
    if values is not None or index_name != "labels":
        if np.ndim(labels) > 1 or isinstance(labels, str | bytes):
            raise InvalidInputError(
                f"{index_name} must be a 1-D sequence of indices, "
                f"got {type(labels).__name__} of shape {np.shape(labels)}"
            )
        if np.ndim(values) == 0 or isinstance(values, str | bytes):
            raise InvalidInputError(
                f"{value_name} must be a sequence of labels, one per index, got {values!r}"
            )
        n_indices = 1 if np.ndim(labels) == 0 else len(labels)
        if len(values) != n_indices:
            raise InvalidInputError(
                f"{value_name} has {len(values)} labels but {index_name} has {n_indices} indices"
            )
        return labels, values
    if isinstance(labels, tuple):
        labels = [labels]
    if not isinstance(labels, list):
        raise InvalidInputError(
            "labels must be an (index, label) tuple or a list of them, or indices with values; "
            f"got {type(labels).__name__}"
        )
    for item in labels:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidInputError(f"each label must be an (index, label) pair, got {item!r}")
    return [item[0] for item in labels], [item[1] for item in labels]
