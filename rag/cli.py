"""The `rag` command: serve the API, or ingest files from the shell through the same pipeline."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rag.settings import Settings

if TYPE_CHECKING:
    from ingest.service import Submitted

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


def _when_queue_has_room(submit: Callable[[], Submitted]) -> Submitted:
    """Submit; a full queue (more files than RAG_INGEST_QUEUE_MAX) waits for the worker to make room."""
    from ingest.errors import QueueFull

    while True:
        try:
            return submit()
        except QueueFull:
            time.sleep(0.5)


def _submit_file(runtime, path: Path, collection: str, *, replace: bool = False) -> Submitted:
    with path.open("rb") as content:
        return runtime.ingest.submit(content, path.name, collection, {}, replace=replace)


def _submit_archived(runtime, originals, document, collection: str) -> Submitted:
    prepared = runtime.ingest.prepare(
        originals.open(document), document.filename, document_id=document.id, version=document.version
    )
    return runtime.ingest.commit([prepared], collection, document.metadata, source=document.source, action="import")[0]


def _wait_for_documents(runtime, ids: list[str], console) -> list[str]:
    """Progress bars (documents, chunks) until every document is ready or failed, a new version of one
    included (swapped in, or failed); the failures' reasons."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ingest.storage.records import Status

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        documents_bar = progress.add_task("documents", total=len(ids))
        chunks_bar = progress.add_task("chunks", total=None)
        while True:
            versions = runtime.records.pending_versions(ids)
            records = [versions.get(document_id) or runtime.records.get(document_id) for document_id in ids]
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
    # The last look found every one finished: its records are the final state.
    return [f"{r.filename}: {r.error}" for r in records if r is not None and r.status is Status.FAILED]


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    collection: Annotated[str, typer.Option(help="Collection to add the documents to.")] = "default",
    replace: Annotated[
        bool,
        typer.Option("--replace", help="A file whose name is a document's source replaces it (its next version)."),
    ] = False,
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
                submitted = _when_queue_has_room(partial(_submit_file, runtime, path, collection, replace=replace))
            except DocumentError as exc:
                failures.append(f"{path}: {exc}")
                continue
            if submitted.duplicate:
                console.print(f"[dim]{path}: already in {collection!r} as {submitted.document_id}[/dim]")
            ids.append(submitted.document_id)
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


ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="RAG_API_KEY", help="The service's API key, when it has keys (RAG_API_KEY)."),
]
UrlOption = Annotated[str, typer.Option(envvar="RAG_URL", help="The running service.")]
DEFAULT_URL = "http://127.0.0.1:8000"


@app.command()
def sync(
    folder: Annotated[Path, typer.Argument(help="The folder to mirror (searched recursively).", file_okay=False)],
    collection: Annotated[str, typer.Option(help="The collection to keep in step with it.")] = "default",
    delete: Annotated[bool, typer.Option("--delete", help="Also delete documents whose file left the folder.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be done, and do nothing.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the uploads are ingested.")] = True,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Make a collection of a running service hold exactly a folder's files, over its HTTP API.

    New files are uploaded, changed ones replace their document in place (same id, next version), and with
    --delete documents whose file is gone are deleted. Each file's source is its path under the folder.
    Safe to interrupt and run again; a second run finds nothing to do. Exits 1 if anything failed.
    """
    import httpx
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rag.sync import ServiceClient, SyncError, execute, local_files, make_plan, wait_for_ingestion

    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder", param_hint="FOLDER")
    console = Console(stderr=True)
    client = ServiceClient(url, api_key)
    try:
        plan = make_plan(local_files(folder), client.documents(collection), delete=delete)
        for line in plan.lines():
            typer.echo(line)
        summary = (
            f"{len(plan.add)} to add, {len(plan.replace)} to replace, {len(plan.delete)} to delete,"
            f" {plan.unchanged} unchanged"
        )
        if dry_run or not plan.steps:
            typer.echo(f"{summary}{' (dry run: nothing done)' if dry_run and plan.steps else ''}")
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            steps = progress.add_task("syncing", total=plan.steps)
            outcome = execute(client, plan, collection, lambda _: progress.advance(steps))
            if wait and outcome.uploaded:
                ingested = progress.add_task("ingesting", total=len(outcome.uploaded))
                wait_for_ingestion(client, outcome, lambda: progress.advance(ingested))
    except SyncError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        typer.echo(f"no service answers at {url} ({exc}): start it with `make serve` (or `rag serve`)", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()
    uploaded = len(outcome.uploaded)
    typer.echo(f"done: {summary}; {uploaded} uploaded, {outcome.deleted} deleted, {len(outcome.failures)} failed")
    for failure in outcome.failures:
        typer.echo(f"failed: {failure}", err=True)
    if outcome.failures:
        raise typer.Exit(1)


@app.command("export")
def export_collection(
    collection: Annotated[str, typer.Argument(help="The collection to export.")],
    archive: Annotated[Path, typer.Argument(help="The tar to write (.tar.gz or .tgz: compressed).")],
) -> None:
    """Write a collection's originals, with their sources, metadata and versions, to a tar with a manifest.

    No vectors: `rag import` embeds the originals again. Reads only the records and the kept originals of
    the deployment the settings name, so it runs beside a live service, whatever its store.
    """
    from ingest.archive import export_collection as export
    from ingest.storage.db import open_database
    from ingest.storage.files import FileStore
    from ingest.storage.records import DocumentRecords

    storage = Settings().storage
    records = DocumentRecords(open_database(storage.database_dsn, storage.records_path))
    try:
        if not records.collection_exists(collection):
            raise typer.BadParameter(f"there is no collection {collection!r}", param_hint="COLLECTION")
        manifest = export(records, FileStore(storage.originals_dir), collection, archive)
    finally:
        records.close()
    typer.echo(f"exported {len(manifest.documents)} documents of {collection!r} to {archive}")


@app.command("import")
def import_collection(
    archive: Annotated[Path, typer.Argument(help="A tar written by `rag export`.", exists=True, dir_okay=False)],
    collection: Annotated[str | None, typer.Option(help="Import into this collection (default: its own name).")] = None,
) -> None:
    """Ingest an archive of `rag export` into the deployment the settings name (embedded or server Chroma,
    SQLite or PostgreSQL), keeping sources, metadata, versions and, where free, ids. Content the collection
    holds already is skipped. Stop `rag serve` first when Chroma is embedded (as for `rag ingest`)."""
    from rich.console import Console

    from ingest.archive import InvalidArchive, open_archive
    from ingest.errors import DocumentError
    from ingest.service import validate_collection
    from rag.runtime import Runtime

    settings = Settings()
    _configure_logging("WARNING")
    console = Console(stderr=True)
    ids: list[str] = []
    failures: list[str] = []
    try:
        with open_archive(archive) as (manifest, originals), Runtime(settings) as runtime:
            target = validate_collection(collection or manifest.collection)
            runtime.start(wait=True)
            for document in manifest.documents:
                try:
                    submitted = _when_queue_has_room(partial(_submit_archived, runtime, originals, document, target))
                except DocumentError as exc:
                    failures.append(f"{document.source}: {exc}")
                    continue
                if not submitted.duplicate:
                    ids.append(submitted.document_id)
            console.print(f"importing {len(ids)} documents into {target!r}")
            failures += _wait_for_documents(runtime, ids, console)
    except (InvalidArchive, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"imported {len(ids) - len(failures)} of {len(manifest.documents)} documents into {target!r}")
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
    mode: Annotated[
        str, typer.Option(help="dense, bm25, hybrid, adaptive, all, or several joined by commas (dense,adaptive).")
    ] = "all",
    split: Annotated[str | None, typer.Option(help="Only the questions of this split (dev or test).")] = None,
    baseline: Annotated[bool, typer.Option(help="Also run the plain LangChain recipe, as the baseline.")] = True,
) -> None:
    """Measure retrieval on a folder and a questions file: recall@k, MRR, page hits, abstention, latency."""
    from rag.evaluation.retrieval_eval import MODES, evaluate, markdown

    modes = MODES if mode == "all" else tuple(mode.split(","))
    if not set(modes) <= set(MODES):
        raise typer.BadParameter(f"choose among {', '.join(MODES)}, or all", param_hint="--mode")
    _configure_logging("WARNING")
    report = evaluate(
        docs,
        questions,
        settings=Settings(),
        collection=collection,
        out_dir=out,
        modes=modes,
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
    url: UrlOption = DEFAULT_URL,
    top_k: Annotated[int | None, typer.Option(help="Chunks to retrieve.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, in tokens.")] = None,
    api_key: ApiKeyOption = None,
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
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(600, connect=5)
        with httpx.stream("POST", f"{url.rstrip('/')}/v1/query", json=body, headers=headers, timeout=timeout) as r:
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
