"""Exchange: labels and history in files, and tasks and exports of annotation tools.

:mod:`._files` reads and writes labels and history as CSV, JSON Lines or
Parquet, streaming; :mod:`._tools` writes tasks for Label Studio and Prodigy
and reads their exports back, with each label's annotator and time. Nothing
here opens a store: the layers above hand in what to write and commit what
was read. A new format is a new module here.
"""

from __future__ import annotations

from ._files import (
    count_rows,
    export_history,
    export_labels,
    name_line,
    parse_label_text,
    read_labels_file,
)
from ._tools import (
    FORMATS,
    ToolBatch,
    ToolRow,
    check_format,
    labelstudio_config,
    labelstudio_task_index,
    read_tool_export,
    tool_task,
    user_map,
    write_tasks,
)

__all__ = [
    "FORMATS",
    "ToolBatch",
    "ToolRow",
    "check_format",
    "count_rows",
    "export_history",
    "export_labels",
    "labelstudio_config",
    "labelstudio_task_index",
    "name_line",
    "parse_label_text",
    "read_labels_file",
    "read_tool_export",
    "tool_task",
    "user_map",
    "write_tasks",
]
