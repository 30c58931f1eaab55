"""alma_store: persistent, crash-safe, out-of-core bookkeeping for active learning.

Keep the dataset ``D`` where it is, keep a labeled mask and the labels on disk,
and see the Labeled and Unlabeled parts as views of ``D``::

    import alma_store
    store = alma_store.create("campaign.alma", "features.npy")
    pos = my_acquisition(store.unlabeled)          # positions in the Unlabeled view
    store.add_labels(pos, labels_for(pos), expected_version=store.version)
"""

from __future__ import annotations

from ._entry import copy, create, open
from ._store_version import StoreVersion
from .campaign import Annotation, Claim, Consensus, Replay, Simulation
from .compat import ActiveLearningManager
from .core import LabelEvent
from .errors import (
    AlmaError,
    AlreadyLabeledError,
    ClaimedError,
    CorruptStoreError,
    InvalidIndexError,
    InvalidInputError,
    LocalCopyError,
    LockTimeoutError,
    MissingExtraError,
    NotLabeledError,
    ReadOnlyError,
    SourceChangedError,
    SourceMissingError,
    StaleIndexError,
    StorageFullError,
    StorageUnavailableError,
    StoreClosedError,
    StoreExistsError,
    StoreNotFoundError,
    ToolServerError,
    UnsupportedPlatformError,
    UnsupportedStorageError,
)
from .scoring import Selection, TopK
from .store import Store
from .views import LabeledMask, LabeledView, UnlabeledView

__version__ = "0.1.0"

__all__ = [
    "ActiveLearningManager",
    "AlmaError",
    "AlreadyLabeledError",
    "Annotation",
    "Claim",
    "ClaimedError",
    "Consensus",
    "CorruptStoreError",
    "InvalidIndexError",
    "InvalidInputError",
    "LabelEvent",
    "LabeledMask",
    "LabeledView",
    "LocalCopyError",
    "LockTimeoutError",
    "MissingExtraError",
    "NotLabeledError",
    "ReadOnlyError",
    "Replay",
    "Selection",
    "Simulation",
    "SourceChangedError",
    "SourceMissingError",
    "StaleIndexError",
    "StorageFullError",
    "StorageUnavailableError",
    "Store",
    "StoreClosedError",
    "StoreExistsError",
    "StoreNotFoundError",
    "StoreVersion",
    "ToolServerError",
    "TopK",
    "UnlabeledView",
    "UnsupportedPlatformError",
    "UnsupportedStorageError",
    "__version__",
    "copy",
    "create",
    "open",
]
