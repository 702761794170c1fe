"""Sources for feature pipelines: discover files and load them into documents or quarantine items."""

from llmfti.sources.discovery import discover_files
from llmfti.sources.items import QuarantineItem, SourceDocument
from llmfti.sources.loaders import load_sources

__all__ = ["QuarantineItem", "SourceDocument", "discover_files", "load_sources"]
