"""Run folders of the training pipeline, shared by the SFT run and the alignment run:
`<home>/artifacts/runs/finetune/<name>/run-<UTC time>/`, where result.json (written last) marks a
finished run and a folder without it is an unfinished, resumable one."""

from __future__ import annotations

import time
from pathlib import Path

from llmfti.errors import ConfigError

RESULT = "result.json"


def run_dir(cfg, home, resume: bool) -> Path:
    """`output_dir` as given, else the latest unfinished run of this name (with `resume`), else a new one."""
    from llmfti.home import ProjectHome

    if cfg.output_dir:
        d = Path(cfg.output_dir)
        if (d / RESULT).is_file():
            raise ConfigError(f"{d} already holds a finished run", hint="choose another output_dir")
        return d
    root = ProjectHome.at(home).artifacts / "runs" / "finetune" / cfg.name
    if resume and root.is_dir():
        unfinished = sorted(p for p in root.glob("run-*") if p.is_dir() and not (p / RESULT).exists())
        if unfinished:
            return unfinished[-1]
    return root / time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime())


def shared_run_dir(cfg, home, resume: bool, d) -> Path:
    """Rank 0 chooses the folder (timestamps differ between processes) and broadcasts it."""
    if not d.enabled:
        return run_dir(cfg, home, resume)
    import torch.distributed as dist

    box = [str(run_dir(cfg, home, resume)) if d.main else None]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])
