"""`llmfti serve`, `llmfti ask`, `llmfti logs`, `llmfti replay`."""

from __future__ import annotations

from typing import Optional

import typer

from llmfti.cli.output import console, emit, esc, home_of, table

JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0: any free port; --json prints the one chosen)."),
    max_in_flight: Optional[int] = typer.Option(None, "--max-in-flight", min=1, help="Requests generating at once; more get 503 (default: LLMFTI_MAX_IN_FLIGHT or 32)."),
    protect_docs: Optional[bool] = typer.Option(None, "--protect-docs/--no-protect-docs", help="Put /docs, /openapi.json and /metrics behind the API keys (default: LLMFTI_PROTECT_DOCS)."),
    header_timeout: float = typer.Option(10.0, "--header-timeout", min=0.1, help="Seconds a client has to send its request headers."),
    json_out: bool = typer.Option(False, "--json", help="When ready, print one JSON document (url, pid, deployments) on stdout; logs go to stderr."),
):
    """Serve every active deployment over HTTP (OpenAPI at /docs). Picks up deploys and rollbacks live."""
    import json
    import os
    import sys
    import threading
    import time

    from llmfti.agents.app import create_app
    from llmfti.agents.serve import build_server
    from llmfti.logs import configure_logging

    configure_logging(os.environ.get("LLMFTI_LOG_LEVEL") or "info")
    app = create_app(home_of(ctx), max_in_flight=max_in_flight, protect_docs=protect_docs)
    server = build_server(app, host, port, header_timeout_s=header_timeout)

    def announce():
        # uvicorn binds in its own loop: wait until it serves, then read the real port (for --port 0).
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started and server.servers:
            bound = server.servers[0].sockets[0].getsockname()[1]
            doc = {"url": f"http://{host}:{bound}", "host": host, "port": bound, "pid": os.getpid(),
                   "deployments": app.state.manager.status()["active"]}
            if json_out:
                sys.stdout.write(json.dumps(doc) + "\n")
                sys.stdout.flush()
            else:
                console(stderr=True).print(f"serving {len(doc['deployments'])} deployment(s) at {doc['url']} (OpenAPI: {doc['url']}/docs)")

    threading.Thread(target=announce, name="llmfti-announce", daemon=True).start()
    server.run()


def ask(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    question: str = typer.Argument(..., help="The question."),
    url: Optional[str] = typer.Option(None, "--url", help="Server URL (e.g. http://127.0.0.1:8000); in-process when omitted."),
    k: Optional[int] = typer.Option(None, "-k", help="Contexts to retrieve (default: the deployment's)."),
    json_out: bool = JSON,
):
    """Ask a deployment a question and show the answer with citations and per-stage latency."""
    body = {"question": question} | ({"k": k} if k is not None else {})
    if url:
        import os

        import httpx

        from llmfti.errors import LlmftiError

        headers = {"Authorization": f"Bearer {os.environ['LLMFTI_API_KEY']}"} if os.environ.get("LLMFTI_API_KEY") else {}
        try:
            resp = httpx.post(f"{url.rstrip('/')}/v1/deployments/{name}/invoke", json=body, headers=headers, timeout=300)
            result = resp.json()
        except httpx.HTTPError as exc:
            raise LlmftiError(f"cannot reach {url}: {exc}") from None
        except ValueError:
            raise LlmftiError(f"{url} answered HTTP {resp.status_code} with a body that is not JSON") from None
        if resp.status_code != 200:
            raise LlmftiError(f"HTTP {resp.status_code}: {result.get('error', result) if isinstance(result, dict) else result}")
    else:
        from llmfti.pipelines.inference.online import invoke
        from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
        from llmfti.home import ProjectHome
        from llmfti.registry.deployments import DeploymentStore
        from llmfti.store import FeatureStore
        from llmfti.store.inference_log import InferenceLog

        home = ProjectHome.at(home_of(ctx))
        err = console(stderr=True)
        with err.status(f"loading deployment {name}..."):
            runtime = build_runtime(home, DeploymentStore(home).active(name), RuntimeCache())
        log = InferenceLog(FeatureStore(home))
        try:
            result = invoke(runtime, body, log=log)
        finally:
            log.close()
    emit(result, json_out, _render_answer)


def _render_answer(r: dict) -> None:
    out = console()
    out.print(f"[bold]{esc(r['answer'])}[/]\n", markup=True)
    for i, c in enumerate(r.get("citations", []), 1):
        out.print(f"  [{i}] {c['source']} (score {c['score']:.3f}, {c['chunk_id'][:12]})", markup=False)
    v = r["versions"]
    out.print(f"\n  versions: deployment {v['deployment']}, model {v['model']}, feature group {v['feature_group']} @ commit {v['commit']}")
    out.print("  latency ms: " + ", ".join(f"{k}={val:.1f}" for k, val in r["timings_ms"].items()))


def logs(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    since: Optional[str] = typer.Option(None, "--since", help="ISO-8601 time."),
    limit: int = typer.Option(20, "--limit", min=1, help="Newest N rows."),
    json_out: bool = JSON,
):
    """Inference log rows of a deployment, newest first."""
    from llmfti.errors import ConfigError
    from llmfti.sources.timeparse import parse_time
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    try:
        cutoff = parse_time(since) if since else None
    except ValueError:
        raise ConfigError(f"--since {since!r} is not an ISO-8601 time (e.g. 2026-11-26T08:00:00Z)") from None
    log = InferenceLog(FeatureStore(home_of(ctx)))
    try:
        log.flush()
        rows = log.query(name, since=cutoff, limit=limit)
    finally:
        log.close()

    def render(d):
        t = table("time", "request", "status", "commit", "total ms", "request", "output")
        for r in d["rows"]:
            t.add_row(str(r["time"])[:23], r["request_id"][:12], r["status"], str(r["commit"]), str((r["timings_ms"] or {}).get("total", "")),
                      str(r["request"])[:40], (r["output"] or r["error"] or "")[:50])
        console().print(t)

    emit({"deployment": name, "rows": rows}, json_out, render)


def replay(ctx: typer.Context, request_id: str = typer.Argument(..., help="A logged request id."), json_out: bool = JSON):
    """Re-run a logged request against exactly the versions it used; exit 1 unless identical."""
    from llmfti.pipelines.inference.replay import replay as run_replay
    from llmfti.home import ProjectHome

    result = run_replay(ProjectHome.at(home_of(ctx)), request_id)
    emit(result, json_out, lambda d: console().print(
        f"replay of {d['request_id']} on {d['deployment']} @ commit {d['commit']}: prompt fingerprint "
        f"{'identical' if d['prompt_fingerprint_identical'] else 'DIFFERENT'}, prompt {'identical' if d['prompt_identical'] else 'DIFFERENT'}, "
        f"output {'identical' if d['output_identical'] else 'DIFFERENT'}"))
    if not result["identical"]:
        raise typer.Exit(1)
