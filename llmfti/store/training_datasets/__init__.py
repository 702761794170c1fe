"""Training datasets: versioned, point-in-time-correct tables of encoded examples, with lineage.

    from llmfti.store import FeatureStore
    fs = FeatureStore()
    ds = fs.training_datasets.create(name="qa-train", source="qa:1", event_time_until="2026-01-01",
                                     contexts="docs:1@release-1", top_k=4, model="smol", prompt_template="rag-default")
    ds.describe()                 # sources + commits, bounds, encoder fingerprint, seed, split, content hash
    ds.examples("train")          # rows: input_ids, labels (-100 on the prompt), split, question, ...
    fs.training_dataset("qa-train:1").recreate()["identical"]   # rebuilt from the lineage only

CLI: `llmfti td create|show|list|recreate`. The fine-tuning pipeline reads `NAME:VERSION` through
`read_examples` (registered with `llmfti.training.data.register_example_reader`).
"""

from llmfti.store.training_datasets.datasets import TrainingDataset, TrainingDatasets, read_examples
from llmfti.store.training_datasets.spec import TrainingDatasetSpec


def register() -> None:
    """Make `FinetuneConfig.dataset: NAME:VERSION` readable by the training pipeline."""
    from llmfti.training.data import register_example_reader

    register_example_reader("dataset", read_examples)


__all__ = ["TrainingDataset", "TrainingDatasetSpec", "TrainingDatasets", "read_examples", "register"]
