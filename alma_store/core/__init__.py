"""Pure logic, no I/O: the two index spaces, label values, journal records, overlays.

Everything here works on numpy arrays and bytes handed in by the layers above;
nothing opens a file. :mod:`alma_store.core._index` describes the two index
spaces (dataset indices and view positions) and the per-chunk count index,
:mod:`alma_store.core._events` the journal record, :mod:`alma_store.core._overlay`
how a chunk at one version is computed from a chunk file at another.
"""

from __future__ import annotations

from ._events import (
    KINDS,
    REC_HEADER,
    REC_MAGIC,
    AnnotationRows,
    LabelEvent,
    UnknownKindError,
    record_version,
    split_records,
)
from ._index import (
    Arena,
    BaseRanks,
    LabeledRows,
    Runs,
    block_spans,
    check_upper,
    chunk_members,
    chunk_sizes,
    distinct,
    locate_positions,
    merge_tail,
    n_chunks,
    parse_indices,
    ragged_arange,
)
from ._labels import (
    MAX_ROUND,
    STR_DTYPE,
    LabelSchema,
    Provenance,
    check_round,
    check_text,
    check_time,
    dtype_to_meta,
    infer_label_dtype,
    parse_classes,
    parse_label_dtype,
    parse_label_shape,
    parse_label_values,
    round_order,
    split_batch,
)
from ._overlay import (
    NO_UNDO,
    Overlay,
    Undo,
    carried_labels,
    chunk_labels,
    chunk_mask,
    undo_in_range,
)
from ._types import BoolArray, IndexArray, PathLike

__all__ = [
    "KINDS",
    "MAX_ROUND",
    "NO_UNDO",
    "REC_HEADER",
    "REC_MAGIC",
    "STR_DTYPE",
    "AnnotationRows",
    "Arena",
    "BaseRanks",
    "BoolArray",
    "IndexArray",
    "LabelEvent",
    "LabelSchema",
    "LabeledRows",
    "Overlay",
    "PathLike",
    "Provenance",
    "Runs",
    "Undo",
    "UnknownKindError",
    "block_spans",
    "carried_labels",
    "check_round",
    "check_text",
    "check_time",
    "check_upper",
    "chunk_labels",
    "chunk_mask",
    "chunk_members",
    "chunk_sizes",
    "distinct",
    "dtype_to_meta",
    "infer_label_dtype",
    "locate_positions",
    "merge_tail",
    "n_chunks",
    "parse_classes",
    "parse_indices",
    "parse_label_dtype",
    "parse_label_shape",
    "parse_label_values",
    "ragged_arange",
    "record_version",
    "round_order",
    "split_batch",
    "split_records",
    "undo_in_range",
]
