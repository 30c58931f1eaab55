"""Validation of label dtypes and label values (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInputError

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
        dtype = np.dtype(value)  # type: ignore[call-overload]
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
    with np.errstate(all="ignore"):
        out = arr.astype(dtype)
        back = out.astype(arr.dtype)
    if not np.array_equal(back, arr, equal_nan=arr.dtype.kind in "fc"):
        bad = arr.reshape(-1)[(back != arr).reshape(-1)]
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
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise InvalidInputError(f"classes repeats {dup}")
    return names


def encode_classes(values: Any, classes: tuple[str, ...]) -> Any:
    """Turn class names into their codes; codes pass through (checked later for range).

    >>> encode_classes(["cat", 1, "dog"], ("cat", "dog"))
    [0, 1, 1]
    """
    codes: Any
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        codes = values
    else:
        lookup = {name: code for code, name in enumerate(classes)}
        flat = values.tolist() if isinstance(values, np.ndarray) else list(values)
        codes = []
        for v in flat:
            if isinstance(v, str):
                if v not in lookup:
                    raise InvalidInputError(
                        f"unknown class {v!r}; the store's classes are {list(classes)}"
                    )
                codes.append(lookup[v])
            else:
                codes.append(v)
    arr = np.asarray(codes)
    if arr.dtype.kind in "iu" and arr.size and ((arr < 0) | (arr >= len(classes))).any():
        bad = arr[(arr < 0) | (arr >= len(classes))][0]
        raise InvalidInputError(
            f"class code {int(bad)} is out of range for {len(classes)} classes {list(classes)}"
        )
    return codes if not isinstance(values, np.ndarray) or values.dtype.kind not in "iu" else values


def parse_provenance(annotator: object, round: object, expected_version: object) -> dict[str, Any]:
    """Validate the provenance arguments shared by every write."""
    if annotator is not None and not isinstance(annotator, str):
        raise InvalidInputError(f"annotator must be a str or None, got {annotator!r}")
    for name, value in (("round", round), ("expected_version", expected_version)):
        if value is not None and (
            not isinstance(value, int | np.integer) or isinstance(value, bool)
        ):
            raise InvalidInputError(f"{name} must be an int or None, got {value!r}")
    return {
        "annotator": annotator,
        "round": None if round is None else int(round),  # type: ignore[call-overload]
        "expected_version": None if expected_version is None else int(expected_version),  # type: ignore[call-overload]
    }


def split_batch(labels: Any, values: Any) -> tuple[Any, Any]:
    """Normalise the two ``add_labels`` spellings to (indices, values)."""
    if values is not None:
        if np.ndim(labels) != 1:
            raise InvalidInputError(
                "with values given, labels must be a 1-D sequence of indices, "
                f"got {type(labels).__name__} of shape {np.shape(labels)}"
            )
        if np.ndim(values) == 0:
            raise InvalidInputError(f"values must be a sequence of labels, got {values!r}")
        if len(values) != len(labels):
            raise InvalidInputError(
                f"values has length {len(values)} but indices has length {len(labels)}"
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
