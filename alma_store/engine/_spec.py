"""What a new store is: the one spec of ``create``'s options.

:func:`alma_store.create` takes these options as keyword arguments, ``alma
init`` as command-line options built from the fields below (their help text
included), and the builders (:mod:`alma_store.engine._create`) take the
:class:`StoreSpec` itself. A new option is a new field here.

Examples
--------
>>> StoreSpec(label_dtype="int8", classes=["cat", "dog"]).classes
('cat', 'dog')
>>> StoreSpec(annotations_per_item=0)
Traceback (most recent call last):
...
alma_store.errors.InvalidInputError: annotations_per_item must be a positive int, got 0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..core import parse_classes, parse_label_dtype, parse_label_shape
from ..errors import InvalidInputError

__all__ = ["StoreSpec"]


def _shape_from_text(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise InvalidInputError(
            f"--label-shape must be ints separated by commas, got {text!r}"
        ) from None


def _names_from_text(text: str) -> list[str]:
    return [c.strip() for c in text.split(",")]


def _cli(
    help: str, *, cli_type: type = str, from_text: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """A spec field's help text, and how the command line gives its value."""
    return {"help": help, "cli_type": cli_type, "from_text": from_text}


def _positive_int(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class StoreSpec:
    """The options of a new store, checked and normalised on construction.

    Parameters
    ----------
    n_items
        Without features: the number of items of an index-only store.
    column
        The features' column in an Arrow file, table or Hugging Face dataset.
    label_dtype
        dtype of one label: numeric, bool, fixed-width ``"U<n>"`` or ``"str"``.
    label_shape
        Shape of one label; ``()`` for scalar labels.
    classes
        Class names: labels are stored as codes into them.
    annotations_per_item
        Annotations an item needs; above 1, labels are decided by majority.
    chunk_rows
        Rows per chunk of the mask and label arrays (default: 32,768).

    Raises
    ------
    InvalidInputError
        A value of the wrong type or out of range (the message names it).
    """

    n_items: int | None = field(
        default=None,
        metadata=_cli("Without FEATURES: an index-only store of N items.", cli_type=int),
    )
    column: str | None = field(
        default=None, metadata=_cli("The features' column in an Arrow file (.arrow).")
    )
    label_dtype: Any = field(
        default="int64",
        metadata=_cli("numpy dtype of a label, or 'str' for variable-length strings."),
    )
    label_shape: tuple[int, ...] = field(
        default=(),
        metadata=_cli("Shape of one label, e.g. '10' or '2,3'.", from_text=_shape_from_text),
    )
    classes: Sequence[str] | None = field(
        default=None,
        metadata=_cli(
            "Comma-separated class names (labels become codes).", from_text=_names_from_text
        ),
    )
    annotations_per_item: int = field(
        default=1,
        metadata=_cli(
            "Annotations an item needs; above 1, labels are decided by majority.", cli_type=int
        ),
    )
    chunk_rows: int | None = field(
        default=None, metadata=_cli("Rows per mask/label chunk.", cli_type=int)
    )

    def __post_init__(self) -> None:
        _positive_int("n_items", self.n_items, optional=True)
        if self.column is not None and not isinstance(self.column, str):
            raise InvalidInputError(f"column must be a str, got {self.column!r}")
        dtype = parse_label_dtype(self.label_dtype)
        shape = parse_label_shape(self.label_shape)
        classes = parse_classes(self.classes)
        if classes is not None and dtype.kind not in "iu":
            raise InvalidInputError(
                f"with classes, label_dtype must be an integer dtype, got {dtype}"
            )
        _positive_int("annotations_per_item", self.annotations_per_item, optional=False)
        if self.annotations_per_item > 1 and shape:
            raise InvalidInputError("annotations_per_item > 1 takes scalar labels (label_shape=())")
        if self.chunk_rows is not None and (
            not isinstance(self.chunk_rows, int) or isinstance(self.chunk_rows, bool)
        ):
            raise InvalidInputError(f"chunk_rows must be a positive int, got {self.chunk_rows!r}")
        _positive_int("chunk_rows", self.chunk_rows, optional=True)
        object.__setattr__(self, "label_dtype", dtype)
        object.__setattr__(self, "label_shape", shape)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "annotations_per_item", int(self.annotations_per_item))
        if self.n_items is not None:
            object.__setattr__(self, "n_items", int(self.n_items))

    @classmethod
    def options(cls) -> list[tuple[str, Any, str, type, Callable[[str], Any] | None]]:
        """``(name, default, help, command-line type, from_text)`` of every option, in order."""
        return [
            (f.name, f.default, f.metadata["help"], f.metadata["cli_type"], f.metadata["from_text"])
            for f in fields(cls)
        ]
