"""The `relevo` command line: thin typer commands over library calls."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.table import Table

from relevo.config import Settings
from relevo.errors import RelevoError

app = typer.Typer(
    name="relevo",
    help="relevo: a self-hosted, real-time personalization engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)

SERVE_HELP = """Run the HTTP API (OpenAPI docs at /docs).

Settings come from the environment, and options override them:

\b
  RELEVO_STORE      `embedded` (default: one process, state in memory, log in SQLite)
                    or `redis://host:port/db` (state in Redis, log in a Redis Stream)
  RELEVO_DATA_DIR   where the embedded log, snapshots and the archive live
                    (default: ./relevo-data)
  RELEVO_HOST       interface to bind (default: 127.0.0.1)
  RELEVO_PORT       port (default: 8000)

\b
  RELEVO_WRITE_KEY  write keys (comma-separated): events, consent, catalog reads
  RELEVO_ADMIN_KEY  admin keys (comma-separated): everything
                    Without any key the API is open and only loopback is allowed.

\b
Others: RELEVO_SESSION_TIMEOUT (30m), RELEVO_RETENTION (90d), RELEVO_DEDUPE_HORIZON (7d),
RELEVO_MAX_BATCH (10000), RELEVO_ARCHIVE_DIR, RELEVO_REDIS_PREFIX, RELEVO_LOG_LEVEL.
"""


def _settings(**overrides: Any) -> Settings:
    """Environment settings with the command line's explicit options on top."""
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValueError as error:
        _fail(f"invalid settings: {error}")


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command(help=SERVE_HELP)
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [env RELEVO_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env RELEVO_PORT].")] = None,
    store: Annotated[
        str | None, typer.Option(help="`embedded` or redis://... [env RELEVO_STORE].")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory [env RELEVO_DATA_DIR].")
    ] = None,
    demo_catalog: Annotated[
        bool | None,
        typer.Option("--demo-catalog/--no-demo-catalog", help="Load the demo catalog if empty."),
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
) -> None:
    import uvicorn

    from relevo.api.app import create_app

    settings = _settings(
        host=host,
        port=port,
        store=store,
        data_dir=data_dir,
        demo_catalog=demo_catalog,
        log_level=log_level,
    )
    _check_exposure(settings)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        application = create_app(settings)
    except RelevoError as error:
        _fail(error.message)
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def _check_exposure(settings: Settings) -> None:
    """Without keys the API is open: allow that on loopback only, and say so loudly."""
    from relevo.auth import KeyRing, is_loopback

    if KeyRing.from_settings(settings).enabled:
        return
    if not is_loopback(settings.host):
        _fail(
            f"refusing to serve on {settings.host} without API keys: anyone could read "
            "profiles and erase users. Set RELEVO_WRITE_KEY and RELEVO_ADMIN_KEY, or bind "
            "to 127.0.0.1."
        )
    err.print(
        "[bold yellow]WARNING: no API keys are set; the API is open to anyone on this "
        "machine.[/bold yellow] Set RELEVO_WRITE_KEY and RELEVO_ADMIN_KEY before exposing it.",
        highlight=False,
    )


@app.command("import")
def import_events(
    file: Annotated[
        Path, typer.Argument(help="Events as JSONL, CSV or Parquet.", exists=True, dir_okay=False)
    ],
    file_format: Annotated[
        str, typer.Option("--format", help="auto (from the file name), jsonl, csv or parquet.")
    ] = "auto",
    url: Annotated[
        str | None,
        typer.Option(
            help="Send to a running server (http://127.0.0.1:8000) instead of the data dir."
        ),
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="API key for --url.", envvar="RELEVO_WRITE_KEY")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events per batch.")] = 1000,
    output: Annotated[str, typer.Option("--output", help="table or json.")] = "table",
    store: Annotated[str | None, typer.Option(help="`embedded` or redis://...")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
) -> None:
    """Backfill historical events, keeping their timestamps.

    Bad lines are reported with their line numbers while good lines are imported;
    importing the same file again imports nothing twice. Exit code 1 when some lines
    were rejected.
    """
    from relevo import importer

    try:
        fmt = importer.detect_format(file, file_format)  # type: ignore[arg-type]
    except ValueError as error:
        _fail(str(error))
    settings = _settings(store=store, data_dir=data_dir)
    try:
        report = asyncio.run(_import(file, fmt, url, key, batch_size, settings))
    except (RelevoError, RuntimeError, OSError) as error:
        _fail(getattr(error, "message", str(error)))
    if output == "json":
        typer.echo(orjson.dumps(report.to_dict()).decode())
    else:
        _print_import(report)
    raise typer.Exit(1 if report.rejected else 0)


async def _import(
    file: Path, fmt: str, url: str | None, key: str | None, batch_size: int, settings: Settings
) -> Any:
    from rich.progress import Progress
    from rich.progress import open as progress_open

    from relevo import importer

    engine = None
    client = None
    if url is not None:
        send, client = importer.http_sender(url, key)
    else:
        from relevo.engine import Engine

        engine = Engine(settings)
        await engine.start(background=False)

        async def send(events: list[Any]) -> dict[str, Any]:
            assert engine is not None
            return (await engine.ingest(events, batch=True)).to_dict()

    try:
        with Progress(console=err, transient=True) as progress:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                task = progress.add_task("importing", total=pq.ParquetFile(file).metadata.num_rows)
                rows = importer.read_parquet(file, lambda n: progress.advance(task, n))
                return await importer.run_import(rows, send, batch_size)
            with progress_open(
                file, "rt", encoding="utf-8", newline="", description="importing"
            ) as handle:
                reader = importer.read_csv if fmt == "csv" else importer.read_jsonl
                return await importer.run_import(reader(handle), send, batch_size)
    finally:
        if client is not None:
            await client.aclose()
        if engine is not None:
            await engine.stop()


def _print_import(report: Any) -> None:
    console = Console()
    console.print(
        f"imported [bold]{report.imported}[/bold], duplicates {report.duplicates}, "
        f"rejected {len(report.rejected)}"
    )
    if report.rejected:
        table = Table("line", "field", "reason", title="rejected lines")
        for entry in report.rejected[:50]:
            table.add_row(str(entry["line"]), entry["field"] or "", entry["message"] or "")
        console.print(table)
        if len(report.rejected) > 50:
            console.print(f"... and {len(report.rejected) - 50} more (use --output json)")


@app.command()
def version() -> None:
    """Print relevo's version."""
    from relevo import __version__

    typer.echo(__version__)


def main() -> None:  # pragma: no cover - the console script
    app(prog_name="relevo")
    sys.exit(0)
