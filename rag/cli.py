"""The `rag` command: serve the API, or ingest files from the shell through the same pipeline."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from rag.settings import Settings

log = logging.getLogger("rag.worker")
app = typer.Typer(help="Self-hosted retrieval-augmented question answering.", no_args_is_help=True)


def _configure_logging(level: str, fmt: str = "text") -> None:
    from rag.server.observability import configure_logging

    configure_logging(level, fmt)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (RAG_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (RAG_PORT).")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Also ingest in this process (--no-worker: the API only).")
    ] = True,
) -> None:
    """Start the HTTP API (and, unless --no-worker, the ingestion worker in the same process)."""
    import uvicorn

    from rag.server.app import create_app

    settings = Settings()
    _configure_logging(settings.server.log_level, settings.server.log_format)
    uvicorn.run(
        create_app(settings, run_worker=worker),
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_config=None,  # our handlers: structured, with request ids
        log_level=settings.server.log_level.lower(),
        timeout_graceful_shutdown=10,
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Documents ingested at once (RAG_INGEST_ACTIVE_DOCUMENTS)."),
    ] = None,
) -> None:
    """Ingest queued documents, and nothing else, until stopped (SIGTERM or Ctrl-C finish the current batch
    and put unfinished documents back in the queue). Run any number beside `rag serve --no-worker`."""
    import signal
    import threading

    from rag.runtime import Runtime

    settings = Settings()
    if concurrency is not None:
        settings = settings.replace(ingest_active_documents=concurrency)
    _configure_logging(settings.server.log_level, settings.server.log_format)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with Runtime(settings) as runtime:
        runtime.start(wait=True)
        log.info(
            "ingestion worker %s: %d documents at once", runtime.ingest.identity, settings.ingestion.active_documents
        )
        while not stopping.wait(1):  # a timed wait lets the signal handlers run
            pass


def _collect_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts))
            )
        elif path.is_file():
            files.append(path)
        else:
            raise typer.BadParameter(f"{path} does not exist")
    return files


def _submit_when_queue_has_room(runtime, path: Path, collection: str):
    """Submit one file; a full queue (more files than RAG_INGEST_QUEUE_MAX) waits for the worker to make room."""
    from ingest.errors import QueueFull

    while True:
        try:
            with path.open("rb") as source:
                return runtime.ingest.submit(source, path.name, collection, {})
        except QueueFull:
            time.sleep(0.5)


def _wait_for_documents(runtime, ids: list[str], console) -> list[str]:
    """Progress bars (documents, chunks) until every document is ready or failed; the failures' reasons."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ingest.storage.records import Status

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        documents_bar = progress.add_task("documents", total=len(ids))
        chunks_bar = progress.add_task("chunks", total=None)
        while True:
            records = [runtime.records.get(document_id) for document_id in ids]
            finished = [r for r in records if r is None or r.status in (Status.READY, Status.FAILED)]
            progress.update(documents_bar, completed=len(finished))
            progress.update(
                chunks_bar,
                total=sum(r.chunks or 0 for r in records if r) or None,
                completed=sum((r.chunks or 0) if r.status is Status.READY else r.chunks_written for r in records if r),
            )
            if len(finished) == len(ids):
                break
            time.sleep(0.2)
    final = [record for record in map(runtime.records.get, ids) if record is not None]
    return [f"{r.filename}: {r.error}" for r in final if r.status is Status.FAILED]


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    collection: Annotated[str, typer.Option(help="Collection to add the documents to.")] = "default",
) -> None:
    """Ingest files and folders, showing progress; exits 1 if any document failed."""
    from rich.console import Console

    from ingest.errors import DocumentError
    from ingest.service import validate_collection
    from ingest.storage.records import Status
    from rag.runtime import Runtime

    settings = Settings()
    _configure_logging("WARNING")
    console = Console(stderr=True)
    try:
        validate_collection(collection)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--collection") from exc
    files = _collect_files(paths)
    failures: list[str] = []
    ids: list[str] = []
    with Runtime(settings) as runtime:
        runtime.start(wait=True)
        for path in files:
            try:
                submitted = _submit_when_queue_has_room(runtime, path, collection)
            except DocumentError as exc:
                failures.append(f"{path}: {exc}")
                continue
            if submitted.duplicate:
                console.print(f"[dim]{path}: already in {collection!r} as {submitted.record.id}[/dim]")
            ids.append(submitted.record.id)
        failures += _wait_for_documents(runtime, ids, console)
        ready = sum(1 for r in map(runtime.records.get, ids) if r is not None and r.status is Status.READY)
    console.print(f"{ready} of {len(files)} documents ready in collection {collection!r}")
    for failure in failures:
        console.print(f"[red]failed[/red] {failure}")
    if failures:
        raise typer.Exit(1)


@app.command()
def reindex(
    collections: Annotated[list[str] | None, typer.Argument(help="Collections to embed again.")] = None,
    all_collections: Annotated[bool, typer.Option("--all", help="Every collection.")] = False,
) -> None:
    """Embed collections again from their kept originals, with the configured model and chunking.

    Needed after changing RAG_EMBEDDING_MODEL (a collection never mixes vectors of two models: queries and
    uploads to it are refused until it is re-indexed) or the chunking settings. Stop `rag serve` first when
    Chroma is embedded (as for `rag ingest`). Exits 1 if any document failed.
    """
    from rich.console import Console

    from rag.runtime import Runtime

    settings = Settings()
    _configure_logging("WARNING")
    console = Console(stderr=True)
    with Runtime(settings) as runtime:
        runtime.start(wait=True)
        names = runtime.records.collections() if all_collections else (collections or [])
        if not names:
            raise typer.BadParameter("name the collections to re-index, or pass --all")
        ids = [document_id for name in names for document_id in runtime.ingest.reindex(name)]
        console.print(f"re-indexing {len(ids)} documents in {', '.join(names)} with {settings.embedding.model}")
        failures = _wait_for_documents(runtime, ids, console)
    for failure in failures:
        console.print(f"[red]failed[/red] {failure}")
    if failures:
        raise typer.Exit(1)


@app.command("eval")
def evaluate_retrieval(
    docs: Annotated[Path, typer.Argument(help="Folder of documents to ingest.", exists=True, file_okay=False)],
    questions: Annotated[Path, typer.Argument(help="JSON Lines of questions with gold docs.", exists=True)],
    collection: Annotated[str | None, typer.Option(help="Collection name (default: a fresh one).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write report.json, report.md and a plot here.")] = None,
    mode: Annotated[str, typer.Option(help="dense, bm25, hybrid, or all.")] = "all",
    split: Annotated[str | None, typer.Option(help="Only the questions of this split (dev or test).")] = None,
    baseline: Annotated[bool, typer.Option(help="Also run the plain LangChain recipe, as the baseline.")] = True,
) -> None:
    """Measure retrieval on a folder and a questions file: recall@k, MRR, page hits, abstention, latency."""
    from rag.evaluation.retrieval_eval import MODES, evaluate, markdown

    if mode != "all" and mode not in MODES:
        raise typer.BadParameter(f"choose one of {', '.join(MODES)} or all", param_hint="--mode")
    _configure_logging("WARNING")
    report = evaluate(
        docs,
        questions,
        settings=Settings(),
        collection=collection,
        out_dir=out,
        modes=MODES if mode == "all" else (mode,),
        split=split,
        baseline=baseline,
    )
    typer.echo(markdown(report))
    if out is not None:
        typer.echo(f"report written to {out}/report.json, report.md, recall_at_k.png")


def _sse_events(lines):
    """(event, data) pairs from a text/event-stream, as they arrive."""
    import json

    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    collection: Annotated[str, typer.Option(help="Collection to search.")] = "default",
    url: Annotated[str, typer.Option(envvar="RAG_URL", help="The running service.")] = "http://127.0.0.1:8000",
    top_k: Annotated[int | None, typer.Option(help="Chunks to retrieve.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, in tokens.")] = None,
) -> None:
    """Ask the running service a question; the answer streams in, then its sources with pages."""
    import httpx

    body = {"question": question, "collection": collection, "stream": True}
    if top_k:
        body["top_k"] = top_k
    if max_tokens:
        body["max_tokens"] = max_tokens
    citations: list[dict] = []
    done: dict = {}
    try:
        with httpx.stream("POST", f"{url.rstrip('/')}/v1/query", json=body, timeout=httpx.Timeout(600, connect=5)) as r:
            if r.status_code != 200:
                r.read()
                typer.echo(f"error {r.status_code}: {r.json().get('detail', r.text)}", err=True)
                raise typer.Exit(1)
            for event, data in _sse_events(r.iter_lines()):
                if event == "citations":
                    citations = data["citations"] or data.get("closest") or []
                elif event == "delta":
                    typer.echo(data["text"], nl=False)
                elif event == "done":
                    done = data
                    citations = data.get("citations") or citations
                elif event == "error":
                    typer.echo(f"\nerror: {data['detail']}", err=True)
                    raise typer.Exit(1)
    except httpx.ConnectError:
        typer.echo(f"no service answers at {url}: start it with `make serve` (or `rag serve`)", err=True)
        raise typer.Exit(1) from None
    typer.echo()
    for line in answer_notes(done):
        typer.echo(line)
    if citations:
        typer.echo("\nSources, best first:")
        for c in citations:
            typer.echo(citation_line(c))


def answer_notes(done: dict) -> list[str]:
    """What a reader must know about the answer: it was cut off, or a sentence has no source behind it."""
    notes = []
    if done.get("finish_reason") == "length":
        notes.append("\n[cut off: the answer reached its length limit (--max-tokens)]")
    for sentence in done.get("grounding") or []:
        if not sentence["supported"]:
            notes.append(f'[unsupported: no source backs "{sentence["text"]}"]')
    return notes


def citation_line(citation: dict) -> str:
    page = f", page {citation['page']}" if citation.get("page") is not None else ""
    cited = " cited" if citation.get("cited") else ""
    line = f"  [{citation['n']}] {citation['filename']}{page}  (score {citation['score']:.2f}{cited})"
    quote = citation.get("quote")
    if quote:
        text = " ".join(quote["text"].split())
        line += f'\n      "{text[:300]}{"..." if len(text) > 300 else ""}"'
    return line


if __name__ == "__main__":
    app()
