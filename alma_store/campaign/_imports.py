"""Importing a file of labels into a store as one commit: plain files and tool exports.

The file is read and every row checked first (:mod:`alma_store.exchange`); then
its labels are one :meth:`~alma_store.campaign.Campaign.label` commit, so a bad
row, or a row naming a labeled item, writes nothing, and the error names the
line or the task.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..core import IndexArray, Provenance, parse_indices
from ..errors import AlreadyLabeledError, InvalidInputError
from ..exchange import ToolBatch, check_format, name_line, read_labels_file, read_tool_export
from ._campaign import Campaign

__all__ = ["import_labels"]


def import_labels(
    campaign: Campaign,
    path: Path,
    fmt: str | None,
    provenance: Provenance,
    progress: Callable[[int], None] | None,
) -> IndexArray:
    """Add the labels of ``path`` in one commit; see :meth:`alma_store.Store.import_labels`.

    Plain files name no annotator: ``provenance.annotator`` labels every row.
    A tool export (``fmt``) names each label's annotator and time itself.
    """
    n_items, schema = campaign.engine.n_items, campaign.schema
    if fmt is None:
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
    rows = read_tool_export(path, check_format(fmt))
    batch = ToolBatch.check(rows, schema, n_items, one_per_item=campaign.per_item == 1)
    try:
        return campaign.label(
            batch.dataset_indices,
            batch.values,
            Provenance(None, provenance.round, provenance.expected_version),
            "dataset",
            annotators=batch.annotators,
            times=batch.times,
        )
    except AlreadyLabeledError as exc:
        raise AlreadyLabeledError(
            exc.positions, reason=f"{batch.where_of(exc.positions)}: {exc}"
        ) from None
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None
