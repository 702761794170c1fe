"""The feature store: versioned feature groups, their metadata, ingest runs and quarantine, in LanceDB.

    from llmfti.store import FeatureStore
    fs = FeatureStore()                       # $LLMFTI_HOME or ./.llmfti
    fg = fs.feature_group("docs", version=1)
    fg.search("how do context managers work", k=5, as_of="v1-release")

Storage only: feature groups (metadata, commits, time travel, search), training datasets, the
inference log and quarantine. Pipelines (`llmfti.pipelines`) write them.
"""

from llmfti.store.feature_store import FeatureStore
from llmfti.store.names import parse_ref

__all__ = ["FeatureStore", "parse_ref"]
