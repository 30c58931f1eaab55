"""Bytes on storage: durable files, the writer lock, the journal, objects, the shared log.

The on-disk format of a store (``docs/format.md``) lives here and nowhere
else: the journal file (:mod:`._journal`), the checkpoint and marks index
(:mod:`._marks`), the mask and label chunk files (:mod:`._chunkfiles`),
``meta.json`` (:mod:`._meta`), the campaign log (:mod:`._recordlog`) and, for
shared stores, the commit objects and segments (:mod:`._shared`) reached
through five operations of a directory or object storage (:mod:`._objects`).
Every durable write goes through :func:`atomic_write` or an ``fdatasync`` of
the journal; every read is checked.
"""

from __future__ import annotations

from ._chunkfiles import ChunkCodec, StateArrays, create_arrays
from ._clock import StorageClock, boottime, storage_now
from ._crc import crc_body, with_crc
from ._envelope import chain_crc
from ._fs import (
    atomic_write,
    crash_point,
    durable,
    forget_volatile,
    fsync_fd,
    fsync_path,
    shared_mode,
    storage_errors,
    volatile,
    will_need,
    write_fd,
    writes_refused,
)
from ._journal import FILE_HEADER_SIZE, Journal
from ._layout import init_state
from ._location import Location, is_url, local_path, parse_storage_options
from ._lock import LockTimeout, WriterLock
from ._marks import (
    ENTRY,
    NO_FILE,
    Checkpoint,
    MarksIndex,
    file_checksum,
    marks_path,
    marks_versions,
    open_marks,
    parse_checkpoint,
    read_checkpoint,
    remove_marks_except,
    write_checkpoint,
    write_marks,
)
from ._meta import (
    ENVELOPES_FORMAT,
    FORMAT_VERSION,
    GROUPS_FORMAT,
    READABLE_VERSIONS,
    SHARED_CHECKPOINTS_FORMAT,
    SHARED_FORMAT_VERSION,
    SHARED_FORMATS,
    TAIL_FILES_FORMAT,
    StoreMeta,
    meta_bytes,
    parse_meta,
    read_meta,
    write_meta,
)
from ._mirror import MirrorJournal, make_mirror, remove_dead_mirrors
from ._objects import DirObjects, Listed, Objects, RemoteObjects, open_objects
from ._options import obstore_config
from ._platform import advise_mapping, advise_will_need
from ._recordlog import RecordLog, SharedRecordLog, encode_record, open_campaign_log
from ._shared import (
    DEFAULT_GRACE,
    GROUP_MAX,
    GROUP_WINDOW,
    LostRace,
    Pending,
    SharedLog,
    check_conditional_create,
    create_shared,
    is_shared,
    log_name,
    occupied,
    read_shared_meta,
    segment_name,
    shared_log,
)
from ._sharedckpt import (
    SharedCheckpoint,
    checkpoints_listed,
    latest_checkpoint,
    publish_checkpoint,
)
from ._tailfile import (
    TailFile,
    newest_tail_version,
    read_tail_file,
    remove_tail_files,
    write_tail_file,
)

__all__ = [
    "DEFAULT_GRACE",
    "ENTRY",
    "ENVELOPES_FORMAT",
    "FILE_HEADER_SIZE",
    "FORMAT_VERSION",
    "GROUPS_FORMAT",
    "GROUP_MAX",
    "GROUP_WINDOW",
    "NO_FILE",
    "READABLE_VERSIONS",
    "SHARED_CHECKPOINTS_FORMAT",
    "SHARED_FORMATS",
    "SHARED_FORMAT_VERSION",
    "TAIL_FILES_FORMAT",
    "Checkpoint",
    "ChunkCodec",
    "DirObjects",
    "Journal",
    "Listed",
    "Location",
    "LockTimeout",
    "LostRace",
    "MarksIndex",
    "MirrorJournal",
    "Objects",
    "Pending",
    "RecordLog",
    "RemoteObjects",
    "SharedCheckpoint",
    "SharedLog",
    "SharedRecordLog",
    "StateArrays",
    "StorageClock",
    "StoreMeta",
    "TailFile",
    "WriterLock",
    "advise_mapping",
    "advise_will_need",
    "atomic_write",
    "boottime",
    "chain_crc",
    "check_conditional_create",
    "checkpoints_listed",
    "crash_point",
    "crc_body",
    "create_arrays",
    "create_shared",
    "durable",
    "encode_record",
    "file_checksum",
    "forget_volatile",
    "fsync_fd",
    "fsync_path",
    "init_state",
    "is_shared",
    "is_url",
    "latest_checkpoint",
    "local_path",
    "log_name",
    "make_mirror",
    "marks_path",
    "marks_versions",
    "meta_bytes",
    "newest_tail_version",
    "obstore_config",
    "occupied",
    "open_campaign_log",
    "open_marks",
    "open_objects",
    "parse_checkpoint",
    "parse_meta",
    "parse_storage_options",
    "publish_checkpoint",
    "read_checkpoint",
    "read_meta",
    "read_shared_meta",
    "read_tail_file",
    "remove_dead_mirrors",
    "remove_marks_except",
    "remove_tail_files",
    "segment_name",
    "shared_log",
    "shared_mode",
    "storage_errors",
    "storage_now",
    "volatile",
    "will_need",
    "with_crc",
    "write_checkpoint",
    "write_fd",
    "write_marks",
    "write_meta",
    "write_tail_file",
    "writes_refused",
]
