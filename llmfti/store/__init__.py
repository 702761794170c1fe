"""The feature store: versioned feature groups, their metadata, ingest runs and quarantine, in LanceDB.

    from llmfti.store import FeatureStore
    fs = FeatureStore()                       # $LLMFTI_HOME or ./.llmfti
    fg = fs.feature_group("docs", version=1)
    fg.ingest(["corpus/"])
    fg.search("how do context managers work", k=5, as_of="v1-release")
"""

from llmfti.store.feature_store import FeatureStore, parse_ref

__all__ = ["FeatureStore", "parse_ref"]
