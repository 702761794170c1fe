"""Embedders and generators. Heavy libraries load in `warm_up()`, never at import time."""
