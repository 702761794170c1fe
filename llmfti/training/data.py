"""Encoded training examples: `{"input_ids": [...], "labels": [...]}` with labels -100 on prompt tokens.

`load_encoded_examples(source)` returns `(train, eval, info)` from an in-memory list (with its
`DatasetInfo`) or a JSONL or parquet file. Training datasets `NAME:VERSION` are read from the store by
the training pipeline (`llmfti.pipelines.training`), which hands the rows here: the engine never
imports the store. Rows may carry `split` ("train"/"eval"); without it, a seeded `eval_fraction` is held out.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from llmfti.errors import ConfigError, NotFoundError

IGNORE = -100


@dataclass
class DatasetInfo:
    """What the run records about its data: the reference (lineage) and the encoder that made it."""

    ref: str
    encoder: dict | None = None  # e.g. {"fingerprint": ..., "prompt_template": ...} from the training dataset
    extra: dict = field(default_factory=dict)
    # Rebuilds the exact PromptEncoder the examples were encoded with, for registration (the registry
    # pins it with the model version). None for sources that do not know their encoder.
    encoder_factory: Callable[[], object] | None = field(default=None, repr=False)
    # The training dataset's lineage (feature-group commits, encoder...), registered with the model version.
    lineage: dict | None = None




def validate_example(row: dict, index: int) -> dict:
    """Check one encoded example; returns it with plain int lists. Errors name the row."""
    try:
        ids = [int(x) for x in row["input_ids"]]
        labels = [int(x) for x in row["labels"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"example {index}: needs integer lists 'input_ids' and 'labels' ({exc})") from exc
    if len(ids) != len(labels):
        raise ConfigError(f"example {index}: input_ids ({len(ids)}) and labels ({len(labels)}) differ in length")
    if len(ids) < 2:
        raise ConfigError(f"example {index}: fewer than 2 tokens")
    # labels[0] can never be predicted (nothing precedes it); an example whose only labels sit there trains nothing.
    if all(x == IGNORE for x in labels[1:]):
        raise ConfigError(f"example {index}: no loss-bearing (answer) tokens", hint="labels must not all be -100")
    out = {"input_ids": ids, "labels": labels}
    if "split" in row and row["split"] is not None:
        out["split"] = str(row["split"])
    return out


def _read_file(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ConfigError(f"{path}:{n}: invalid JSON: {exc}") from exc
        return rows
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise ConfigError(f"{path}: encoded examples must be .jsonl or .parquet")


def split_examples(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Use the rows' `split` when present, else hold out a seeded fraction (at least 1 row when asked)."""
    if any("split" in r for r in rows):
        train = [r for r in rows if r.get("split", "train") == "train"]
        evals = [r for r in rows if r.get("split") == "eval"]
        return train, evals
    if eval_fraction <= 0 or len(rows) < 2:
        return list(rows), []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, int(round(len(rows) * eval_fraction)))
    held = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def load_encoded_examples(
    source: str | Path | Iterable[dict],
    *,
    info: DatasetInfo | None = None,
    eval_fraction: float = 0.05,
    seed: int = 0,
) -> tuple[list[dict], list[dict], DatasetInfo]:
    """(train, eval, info) from a list of dicts (described by `info`) or a .jsonl/.parquet path."""
    if isinstance(source, (str, Path)) and Path(source).is_file():
        from llmfti.hashing import sha256_file

        path = Path(source)
        # The content hash goes into the checkpoint resume key: the same path with other data is other data.
        rows, info = _read_file(path), DatasetInfo(ref=f"file:{path.resolve()}", extra={"content_sha256": sha256_file(path)})
        sidecar = path.with_suffix(path.suffix + ".meta.json")  # artifacts carry their config
        if sidecar.is_file():
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            info.encoder = meta.get("encoder")
            info.ref = meta.get("ref", info.ref)
    elif isinstance(source, (str, Path)):
        raise NotFoundError(f"encoded examples not found: {source} is not a file",
                            hint="a training dataset NAME:VERSION goes in the config's `dataset` field")
    else:
        rows, info = list(source), info or DatasetInfo(ref="memory")
    rows = [validate_example(r, i) for i, r in enumerate(rows)]
    if not rows:
        raise ConfigError(f"{info.ref}: no examples")
    train, evals = split_examples(rows, eval_fraction, seed)
    if not train:
        raise ConfigError(f"{info.ref}: no training examples (all rows are split=eval)")
    return train, evals, info
