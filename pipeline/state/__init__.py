"""The state of one archive: the SQLite store, its single writer, the lock (one run at a time)."""

from pipeline.state.lock import LockInfo, StateLock, lock_path
from pipeline.state.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    ImageId,
    Row,
    State,
    Status,
    Tombstone,
    Unsettled,
    encode_metadata,
)
from pipeline.state.writer import DiscardingWriter, StateWriter, Writer

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "DiscardingWriter",
    "ImageId",
    "LockInfo",
    "Row",
    "State",
    "StateLock",
    "StateWriter",
    "Status",
    "Tombstone",
    "Unsettled",
    "Writer",
    "encode_metadata",
    "lock_path",
]
