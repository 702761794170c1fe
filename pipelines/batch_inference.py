"""The batch inference pipeline: a deployment over a file of requests -> a file of answers, every
prediction logged like an online request (`origin: batch` in the inference log).

    from llmfti.pipelines.batch_inference import batch_infer
    summary = batch_infer("python-docs", "questions.jsonl", "answers.jsonl", home=".llmfti")

CLI: `llmfti batch-infer NAME --input questions.jsonl --output answers.jsonl [--engine local|ray]`.

Input: JSONL, one request per line: the deployment's typed request, exactly what a client POSTs to
/v1/deployments/NAME/invoke (`{"question": "..."}`, plus filters, k, user fields). Output: JSONL, one
line per input line, in input order: `line`, `request_id`, `status` ("ok" or the error's type) and
either `answer`, `citations`, `versions`, `usage`, `timings_ms` (what the service answers) or
`error`. Each request runs through `llmfti.pipelines.inference.online.invoke`, the online pipeline
itself (on-demand features, retrieval at the deployment's commit, the registry's prompt encoder,
generation, the log row), so a batch answer is what the service would have answered.

Engines:
- `local`: a thread pool in this process; the deployment's generator batches concurrent requests
  (transformers: `backend.max_batch_size`; an OpenAI-compatible server batches on its side).
- `ray`: actors on a Ray cluster (`--ray-address`, default a local Ray), each loading the
  deployment once and flushing its log rows into the home's inference log after every batch.
- vLLM offline (`llmfti.pipelines.vllm_offline`; `--generator vllm`, or `auto` when vllm is installed and CUDA is present, for an
  in-process transformers deployment): `vllm.LLM(model=<base model folder>, enable_lora=True)`
  generates from the encoder's exact prompt token ids, with a `LoRARequest` per prompt for a model
  version that has an adapter. Requests reach it through the same `invoke`; a batching generator
  collects concurrent requests into one `LLM.generate` call. Tests drive this path with a stand-in
  engine (`vllm_api=`): no vLLM runs on the CPU machines of CI.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmfti.errors import ConfigError, LlmftiError, NotFoundError
from llmfti.logs import get_logger
from llmfti.pipelines.vllm_offline import VLLMOfflineGenerator

logger = get_logger(__name__)
ENGINES = ("local", "ray")
GENERATORS = ("auto", "deployment", "vllm")
ORIGIN = "batch"
VLLM_CONCURRENCY = 64  # requests in flight for vLLM: its scheduler batches them; more only queue


@dataclass
class BatchSummary:
    deployment: str
    version: int
    input: str
    output: str
    engine: str
    generator: str  # transformers | openai | vllm | override
    run_id: str
    requests: int = 0
    ok: int = 0
    failed: int = 0  # failed in the pipeline (logged, with the error in the output line)
    unreadable: int = 0  # lines that are not a JSON object (never reached the pipeline, not logged)
    duration_s: float = 0.0
    requests_per_s: float = 0.0
    errors: dict = field(default_factory=dict)  # error type -> count

    def to_dict(self) -> dict:
        return asdict(self)


def read_requests(path: str | Path) -> list[tuple[int, dict | None, str | None]]:
    """(line number, request object or None, why it is unreadable) per non-blank line."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise NotFoundError(f"input file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            out.append((n, None, f"not JSON: {exc.msg}"))
            continue
        out.append((n, raw, None) if isinstance(raw, dict) else (n, None, "not a JSON object"))
    return out


def resolve_record(home, name: str):
    """The deployment version to run: NAME (the active version) or NAME:VERSION (any recorded one)."""
    from llmfti.registry.deployments import DeploymentStore

    store = DeploymentStore(home)
    base, _, version = name.partition(":")
    if version:
        if not version.isdigit():
            raise ConfigError(f"deployment {name!r}: the version must be a number")
        return store.get(base, int(version))
    return store.active(base)


def batch_infer(name: str, input_path: str | Path, output_path: str | Path, *, home=None, engine: str = "local",
                generator: str = "auto", concurrency: int | None = None, ray_address: str | None = None,
                generator_override=None, vllm_api=None, progress: bool = False) -> BatchSummary:
    """Run deployment `name` over the requests in `input_path`, write the answers to `output_path`
    (atomically: a temporary file renamed at the end) and log every prediction (origin "batch")."""
    from llmfti.home import ProjectHome

    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    if generator not in GENERATORS:
        raise ConfigError(f"unknown generator {generator!r}: one of {', '.join(GENERATORS)}")
    home = ProjectHome.at(home)
    record = resolve_record(home, name)
    items = read_requests(input_path)
    run_id = uuid.uuid4().hex[:12]
    summary = BatchSummary(record["name"], int(record["version"]), str(input_path), str(output_path), engine, "", run_id)
    started = time.perf_counter()
    use_vllm = generator_override is None and _wants_vllm(record, generator, vllm_api)
    summary.generator = "override" if generator_override is not None else "vllm" if use_vllm else record.deployment_config.backend.kind
    todo = [(n, raw, f"batch-{run_id}-{n:06d}") for n, raw, _ in items if raw is not None]
    if engine == "ray":
        if generator_override is not None:
            raise ConfigError("a generator override runs in this process only: use --engine local")
        results = _run_ray(home, record, todo, ray_address, use_vllm, vllm_api, concurrency, progress)
    else:
        results = _run_local(home, record, todo, concurrency, generator_override, use_vllm, vllm_api, progress)
    results.update({n: {"line": n, "request_id": None, "status": "unreadable", "error": why} for n, raw, why in items if raw is None})
    _write_output(output_path, [results[n] for n, _, _ in items])
    summary.requests = len(items)
    summary.unreadable = sum(1 for _, raw, _ in items if raw is None)
    summary.ok = sum(1 for r in results.values() if r["status"] == "ok")
    summary.failed = summary.requests - summary.ok - summary.unreadable
    for r in results.values():
        if r["status"] not in ("ok", "unreadable"):
            summary.errors[r["status"]] = summary.errors.get(r["status"], 0) + 1
    summary.duration_s = round(time.perf_counter() - started, 3)
    summary.requests_per_s = round(len(todo) / max(summary.duration_s, 1e-9), 3)
    return summary


def _wants_vllm(record, generator: str, vllm_api) -> bool:
    """vLLM's offline engine: asked for, or `auto` with vllm installed and CUDA present, for an
    in-process (transformers) deployment. An OpenAI-compatible backend is already a server."""
    backend = record.deployment_config.backend
    if generator == "deployment":
        return False
    if generator == "vllm":
        if backend.kind != "transformers":
            raise ConfigError("--generator vllm replaces the in-process transformers backend; this deployment already calls a server (backend kind openai)")
        return True
    if backend.kind != "transformers":
        return False
    if vllm_api is not None:
        return True
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _one(runtime, log, n: int, raw: dict, request_id: str) -> dict:
    """One request through the online pipeline; a failure is an output line (invoke logged it)."""
    from llmfti.pipelines.inference.online import invoke

    try:
        out = invoke(runtime, raw, log=log, request_id=request_id)
    except Exception as exc:  # noqa: BLE001  the pipeline logged the failed row; the batch goes on
        if not isinstance(exc, LlmftiError):
            logger.warning("batch request line %d failed: %s: %s", n, type(exc).__name__, exc)
        return {"line": n, "request_id": request_id, "status": type(exc).__name__, "error": str(exc)[:2000]}
    return {"line": n, "request_id": out["request_id"], "status": "ok", **{k: v for k, v in out.items() if k != "request_id"}}


def _runtime(home, record, override, use_vllm: bool, vllm_api):
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime

    if override is None and use_vllm:
        override = VLLMOfflineGenerator.for_deployment(home, record.deployment_config, vllm_api)
    return build_runtime(home, record, RuntimeCache(), override)


def _concurrency(record, use_vllm: bool, concurrency: int | None) -> int:
    if concurrency:
        return concurrency
    backend = record.deployment_config.backend
    # transformers batches up to max_batch_size concurrent requests; more threads would only wait.
    return VLLM_CONCURRENCY if use_vllm else backend.max_batch_size if backend.kind == "transformers" else 8


def _log(home):
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    # No background maintenance: the service's flush thread does that; a batch only appends and flushes.
    return InferenceLog(FeatureStore(home), origin=ORIGIN, maintenance=False)


def _run_local(home, record, todo, concurrency, override, use_vllm, vllm_api, progress) -> dict[int, dict]:
    runtime = _runtime(home, record, override, use_vllm, vllm_api)
    log = _log(home).start()
    results: dict[int, dict] = {}
    try:
        with _bar(progress) as bar, ThreadPoolExecutor(max_workers=_concurrency(record, use_vllm, concurrency)) as pool:
            task = bar.add_task(f"batch {record['name']}:{record['version']}", total=len(todo))
            futures = [pool.submit(_one, runtime, log, n, raw, rid) for n, raw, rid in todo]
            for fut in futures:
                r = fut.result()
                results[r["line"]] = r
                bar.update(task, advance=1)
    finally:
        log.close()  # every row flushed into the log table before this returns
        if override is None:
            runtime.generator.close()
    return results


def _bar(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled)


def _write_output(path: str | Path, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


# -- Ray ----------------------------------------------------------------------------------------------


class _RayWorker:
    """A Ray actor: the deployment loaded once; each batch of requests runs through `invoke` on a few
    threads (so the generator can batch them) and its log rows are flushed before the batch returns."""

    def __init__(self, home, record, use_vllm: bool, vllm_api, threads: int):
        self.runtime = _runtime(home, record, None, use_vllm, vllm_api)
        self.log = _log(home)
        self.pool = ThreadPoolExecutor(max_workers=threads)

    def __call__(self, batch):
        import pyarrow as pa

        lines, raws, ids = batch.column("line").to_pylist(), batch.column("raw").to_pylist(), batch.column("request_id").to_pylist()
        out = list(self.pool.map(lambda a: _one(self.runtime, self.log, *a), zip(lines, (json.loads(r) for r in raws), ids)))
        self.log.flush()  # this worker may be on another host, and its buffer on that host's disk
        return pa.table({"line": pa.array(lines, pa.int64()), "result": pa.array([json.dumps(r, default=str) for r in out], pa.string())})


def _run_ray(home, record, todo, address, use_vllm, vllm_api, concurrency, progress) -> dict[int, dict]:
    import pyarrow as pa

    from llmfti.pipelines.ray_engine import connect

    if not todo:
        return {}
    ray = connect(address)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    data = pa.table({"line": pa.array([n for n, _, _ in todo], pa.int64()), "raw": pa.array([json.dumps(r) for _, r, _ in todo], pa.string()),
                     "request_id": pa.array([rid for _, _, rid in todo], pa.string())})
    actors = max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)
    threads = _concurrency(record, use_vllm, concurrency)
    out = ray.data.from_arrow(data).map_batches(
        _RayWorker, fn_constructor_args=(home, record, use_vllm, vllm_api, threads), batch_format="pyarrow", batch_size=max(threads, 8),
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors))
    return {r["line"]: json.loads(r["result"]) for r in out.take_all()}
