"""Monitoring: per-stage timing of the whole pipeline, Prometheus metrics, log analytics."""
