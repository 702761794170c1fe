"""Training datasets: versioned, point-in-time-correct tables of encoded examples, with lineage.

    from llmfti.store import FeatureStore
    ds = FeatureStore().training_dataset("qa-train:1")
    ds.describe()                 # sources + commits, bounds, encoder fingerprint, seed, split, content hash
    ds.examples("train")          # rows: input_ids, labels (-100 on the prompt), split, question, ...

Storage only. Building (`create`) and verifying (`recreate`) are the training-dataset pipeline:
`llmfti.pipelines.training_dataset` (CLI: `llmfti td create|recreate`).
"""

from llmfti.store.training_datasets.datasets import TrainingDataset, TrainingDatasets
from llmfti.store.training_datasets.spec import TrainingDatasetSpec

__all__ = ["TrainingDataset", "TrainingDatasetSpec", "TrainingDatasets"]
