"""Importing a file of labels into a store as one commit: plain files and tool exports.

The file is read and every row checked first (:mod:`alma_store.exchange`); then
its labels are one commit, so a bad row writes nothing, and the error names the
line or the task. A plain file's row naming a labeled item is an error. A tool's
export is imported *incrementally* (:meth:`~alma_store.campaign.Campaign.label_new`):
its exports are cumulative (next week's holds this week's annotations too), so a
row the store holds as it is is skipped, and importing the same export twice
writes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

import numpy as np

from ..core import IndexArray, Provenance, parse_indices
from ..errors import AlreadyLabeledError, InvalidInputError
from ..exchange import ToolBatch, check_format, name_line, read_labels_file, read_tool_export
from ._campaign import Campaign

__all__ = ["ImportResult", "import_labels"]


class ImportResult(np.ndarray):
    """What an import of a tool's export did: the dataset indices it added (the array
    itself, as before), and ``relabeled`` (dataset indices) and ``skipped`` (rows already
    in the store) beside them."""

    relabeled: IndexArray
    skipped: int

    def __new__(cls, added: IndexArray, relabeled: IndexArray, skipped: int) -> Self:
        out = np.asarray(added, np.int64).view(cls)
        out.relabeled, out.skipped = relabeled, skipped
        return out

    def __array_finalize__(self, obj: object) -> None:
        self.relabeled = getattr(obj, "relabeled", np.empty(0, np.int64))
        self.skipped = getattr(obj, "skipped", 0)


def import_labels(
    campaign: Campaign,
    path: Path | Sequence[object],
    fmt: str | None,
    provenance: Provenance,
    progress: Callable[[int], None] | None,
    on_change: str = "error",
    annotators: Mapping[object, str] | None = None,
) -> IndexArray:
    """Add the labels of ``path`` in one commit; see :meth:`alma_store.Store.import_labels`.

    Plain files name no annotator: ``provenance.annotator`` labels every row.
    A tool export (``fmt``) names each label's annotator and time itself.
    """
    n_items, schema = campaign.engine.n_items, campaign.schema
    if fmt is None and annotators is not None:
        raise InvalidInputError("annotators= maps a tool's user ids: give format=")
    if fmt is None and not isinstance(path, Path):
        raise InvalidInputError(
            "labels given as objects are a tool's tasks: give format= (plain labels go "
            "to add_labels)"
        )
    if fmt is None:
        assert isinstance(path, Path)
        idx, values, lines = read_labels_file(path, n_items, schema, progress)
        try:
            return campaign.label(
                parse_indices(idx, name="dataset_indices", upper=None),
                values,
                provenance,
                "dataset",
            )
        except AlreadyLabeledError as exc:
            raise name_line(exc, idx, lines, path) from None
    fmt = check_format(fmt)
    rows = read_tool_export(
        path,
        fmt,
        annotator=provenance.annotator,
        annotators=annotators,
    )
    batch = ToolBatch.check(rows, schema, n_items, one_per_item=campaign.per_item == 1)
    try:
        added, relabeled, skipped = campaign.label_new(
            batch,
            Provenance(None, provenance.round, provenance.expected_version),
            on_change=on_change,
        )
    except AlreadyLabeledError as exc:
        raise AlreadyLabeledError(
            exc.positions, reason=f"{batch.where_of(exc.positions)}: {exc}"
        ) from None
    except InvalidInputError as exc:
        text = str(exc)
        if isinstance(path, Path) and not text.startswith(str(path)):
            text = f"{path}: {text}"
        raise InvalidInputError(text) from None
    return ImportResult(added, relabeled, skipped)
