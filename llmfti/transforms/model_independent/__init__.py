"""Model-independent transformations (feature pipelines): clean, chunk, embed.

Their outputs are stored in feature groups and reused by every model; each carries a fingerprint
so that a feature-group version is only ever written by one cleaner/chunker/embedder.
"""
