"""Sources for feature pipelines: discover files and load them into documents or quarantine items."""

from llmfti.sources.loaders import QuarantineItem, SourceDocument, discover_files, load_sources

__all__ = ["QuarantineItem", "SourceDocument", "discover_files", "load_sources"]
