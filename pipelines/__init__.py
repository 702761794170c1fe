"""The FTI pipelines, installed as `llmfti.pipelines`: one module (or package) per output, each
reading from the stores and writing to them only. They never import one another, except that the
evaluation pipeline (and later batch inference) runs the inference pipeline.

    feature            documents -> a feature-group commit                  (llmfti ingest)
    training_dataset   records + documents commits -> a training dataset     (llmfti td create)
    training           a training dataset -> a registered model version      (llmfti finetune)
    deployment         model version + feature group -> a gated deployment   (llmfti deploy)
    inference          a deployment -> answers, logged (the online pipeline: service, evals, batch)
    evaluation         a deployment + an eval suite -> a stored eval result   (llmfti eval)

Layers: `llmfti` core <- `llmfti.pipelines` <- `llmfti.agents` (the service) <- `llmfti.cli`;
import-linter contracts in pyproject.toml, checked by tests/test_layers.py.
"""

if __name__ != "llmfti.pipelines":  # this folder is installed as llmfti.pipelines (pyproject.toml)
    raise ImportError(f"import llmfti.pipelines, not {__name__!r}: the top-level name 'pipelines' belongs to nobody")
