"""The `relevo` command line: thin typer commands over library calls."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

from relevo.config import Settings
from relevo.errors import RelevoError

if TYPE_CHECKING:
    from relevo.marks_sweep import SweepPass
    from relevo.store.redis import RedisStore

app = typer.Typer(
    name="relevo",
    help="relevo: a self-hosted, real-time personalization engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


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


def _tune_gc() -> None:
    """Collect garbage less often: ingestion allocates many short-lived objects, and the
    default thresholds spend about half the CPU on collections (measured with
    `bench.ingest`); relevo's own data has few reference cycles."""
    import gc

    gc.set_threshold(100_000, 50, 100)


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
    log_format: Annotated[
        str | None,
        typer.Option(
            help="text, or json: one object per line with request and decision ids "
            "[env RELEVO_LOG_FORMAT]."
        ),
    ] = None,
    retrain_every: Annotated[
        str | None,
        typer.Option(
            help="Retrain the served and propensity models this often (24h) in a worker "
            "process, promoting a version unless its holdout is clearly worse "
            "[env RELEVO_RETRAIN_EVERY]. Off by default."
        ),
    ] = None,
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
        log_format=log_format,
        retrain_every=retrain_every,
    )
    _check_exposure(settings)
    _configure_logs(settings)
    _tune_gc()
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
        log_config=None,  # keep the handlers `_configure_logs` installed (JSON or text)
    )


def _configure_logs(settings: Settings) -> None:
    from relevo.monitoring.logs import configure

    try:
        configure(settings.log_level, settings.log_format)
    except ValueError as error:
        _fail(str(error))


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


@app.command()
def worker(
    store: Annotated[str | None, typer.Option(help="redis://... [env RELEVO_STORE].")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
) -> None:
    """Apply logged events (RELEVO_APPLY=worker): run as many as the load needs.

    Workers share the log's partitions through leases; a dead worker's partitions are
    taken over within seconds, and what it had read but not applied is applied again
    (idempotently). Stop with SIGTERM or Ctrl-C: the current batch finishes first.
    """
    import signal

    from relevo.engine import Engine
    from relevo.worker import Worker

    settings = _settings(store=store, log_level=log_level, apply="worker")
    _configure_logs(settings)
    _tune_gc()
    if settings.worker_nice and hasattr(os, "nice"):  # decisions first (RELEVO_WORKER_NICE)
        os.nice(settings.worker_nice)

    async def run() -> None:
        engine = Engine(settings)
        worker = Worker(engine, lease_ms=settings.worker_lease, linger_ms=settings.worker_linger)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await engine.start(housekeeping=True)
        try:
            await worker.run(stop)
        finally:
            await engine.stop()

    try:
        asyncio.run(run())
    except RelevoError as error:
        _fail(error.message)


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
    _tune_gc()
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
        send, client = importer.http_sender(url, _first_key(key))
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


users_app = typer.Typer(help="Users: erasure.", no_args_is_help=True)
archive_app = typer.Typer(
    help="The Parquet archive: compaction and retention.", no_args_is_help=True
)
store_app = typer.Typer(help="The state store: what it holds.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(archive_app, name="archive")
app.add_typer(store_app, name="store")

UrlOption = Annotated[
    str | None,
    typer.Option(help="A running server (http://127.0.0.1:8000) instead of the data dir."),
]
AdminKeyOption = Annotated[
    str | None,
    typer.Option("--key", help="Admin key for --url.", envvar="RELEVO_ADMIN_KEY"),
]


@users_app.command("erase")
def erase_user(
    user_id: Annotated[str, typer.Argument(help="The user id (or anonymous id) to erase.")],
    url: UrlOption = None,
    key: AdminKeyOption = None,
    compact: Annotated[
        bool, typer.Option(help="Compact the archive right away (else: at the next pass).")
    ] = False,
    store: Annotated[str | None, typer.Option(help="`embedded` or redis://...")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
) -> None:
    """Erase a user everywhere and print the receipt (JSON)."""
    settings = _settings(store=store, data_dir=data_dir)
    try:
        result = asyncio.run(_erase(user_id, url, _first_key(key), compact, settings))
    except (RelevoError, RuntimeError, OSError) as error:
        _fail(getattr(error, "message", str(error)))
    typer.echo(orjson.dumps(result).decode())


@archive_app.command("compact")
def compact_archive(
    grace: Annotated[
        str, typer.Option(help="Leave tombstones younger than this (e.g. 5m; 0s for all).")
    ] = "5m",
    url: UrlOption = None,
    key: AdminKeyOption = None,
    store: Annotated[str | None, typer.Option(help="`embedded` or redis://...")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
) -> None:
    """Remove erased users' rows from the Parquet files; drop days past RELEVO_EVENT_RETENTION."""
    from relevo.config import parse_duration_ms

    settings = _settings(store=store, data_dir=data_dir)
    try:
        grace_ms = parse_duration_ms(grace)
    except ValueError as error:
        _fail(str(error))
    try:
        if url is not None:
            from relevo.client import Client

            with Client(url, _first_key(key)) as client:
                report = client.compact_archive(grace_seconds=grace_ms // 1000)
        else:
            from relevo.clock import SystemClock
            from relevo.eventlog.compaction import compact

            report = compact(
                settings.archive_path, SystemClock().now_ms(), settings.event_retention, grace_ms
            ).to_dict()
    except (RelevoError, RuntimeError, OSError) as error:
        _fail(getattr(error, "message", str(error)))
    typer.echo(orjson.dumps(report).decode())


@store_app.command("stats")
def store_stats(
    url: UrlOption = None,
    key: AdminKeyOption = None,
    sample: Annotated[
        int, typer.Option(min=1, max=10_000, help="Keys measured per kind (the rest extrapolated).")
    ] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    store: Annotated[str | None, typer.Option(help="`embedded` or redis://...")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
) -> None:
    """Keys and bytes per structure (profiles, marks, items, live models, log, ...), per-user
    keys without a TTL (should be 0), and Redis used_memory."""
    settings = _settings(store=store, data_dir=data_dir)
    try:
        report = asyncio.run(_store_usage(url, _first_key(key), sample, settings))
    except (RelevoError, RuntimeError, OSError, httpx.HTTPError) as error:
        _fail(getattr(error, "message", str(error)))
    if as_json:
        typer.echo(orjson.dumps(report).decode())
    else:
        _print_store_usage(report)
    if report["totals"]["user_keys_without_ttl"]:
        raise typer.Exit(1)


@store_app.command("train-dictionary")
def train_dictionary(
    sample: Annotated[
        int,
        typer.Option(min=200, max=100_000, help="Profiles to train on (a fifth more measure it)."),
    ] = 2_000,
    size: Annotated[int, typer.Option(min=1024, max=1 << 20, help="Dictionary bytes.")] = 16_384,
    activate: Annotated[
        bool,
        typer.Option(
            "--activate/--no-activate",
            help="Make new profiles use it if it beats the active one on held-out profiles.",
        ),
    ] = True,
    store: Annotated[str | None, typer.Option(help="redis://... [env RELEVO_STORE].")] = None,
) -> None:
    """Train a profile dictionary on the store's own profiles and store it under a new
    number (Redis). Running processes write with it within seconds; every document stays
    readable. Prints the number and the mean profile bytes before and after."""
    settings = _settings(store=store)
    if not settings.is_redis:
        _fail("profile dictionaries are a Redis matter: the embedded store keeps profiles plain")
    try:
        trained = asyncio.run(_train_dictionary(settings, sample, size, activate))
    except (RelevoError, RuntimeError, OSError) as error:
        _fail(getattr(error, "message", str(error)))
    typer.echo(orjson.dumps(trained).decode())


async def _train_dictionary(
    settings: Settings, sample: int, size: int, activate: bool
) -> dict[str, Any]:
    from relevo.features import site_dictionaries

    async with _redis_store(settings) as redis_store:
        await site_dictionaries.refresh(redis_store)
        trained = await site_dictionaries.train(
            redis_store, sample=sample, size=size, activate=activate
        )
    return trained.to_dict()


@contextlib.asynccontextmanager
async def _redis_store(settings: Settings) -> AsyncIterator[RedisStore]:
    """The Redis store alone, for a command on its keys: no engine, nothing recovered."""
    from relevo.store.redis import RedisStore

    redis_store = RedisStore(settings.store, prefix=settings.redis_prefix)
    try:
        yield redis_store
    finally:
        await redis_store.close()


async def _store_usage(
    url: str | None, key: str | None, sample: int, settings: Settings
) -> dict[str, Any]:
    if url is not None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as client:
            response = await client.get("/v1/store/stats", params={"sample": sample})
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {response.text}")
        report: dict[str, Any] = response.json()
        return report
    from relevo.store.usage import usage_report

    if settings.is_redis:  # the store alone: nothing to recover, nothing started
        async with _redis_store(settings) as redis_store:
            return usage_report(await redis_store.usage(sample))
    from relevo.engine import Engine

    engine = Engine(settings)  # embedded: the state is rebuilt from the snapshot and the log
    await engine.start(background=False)
    try:
        report = usage_report(await engine.store.usage(sample))
    finally:
        await engine.stop()
    report["disk"] = _disk_usage(settings.data_dir)
    return report


@store_app.command("sweep-marks")
def sweep_marks(
    store: Annotated[str | None, typer.Option(help="redis://... (else RELEVO_STORE)")] = None,
) -> None:
    """Drop the dedupe marks past RELEVO_DEDUPE_HORIZON from every profile on Redis now (a
    whole pass; servers run one every RELEVO_MARKS_SWEEP_EVERY) and print its totals (JSON)."""
    settings = _settings(store=store, data_dir=None)
    if not settings.is_redis:
        _fail("the embedded store's marks expire on their own; sweep-marks is for Redis")
    try:
        done = asyncio.run(_sweep_marks(settings))
    except (RelevoError, RuntimeError, OSError) as error:
        _fail(getattr(error, "message", str(error)))
    if done is None:
        _fail("another process is sweeping the marks; try again later")
    typer.echo(orjson.dumps(dataclasses.asdict(done)).decode())


async def _sweep_marks(settings: Settings) -> SweepPass | None:
    from relevo.clock import SystemClock
    from relevo.marks_sweep import MarksSweeper

    async with _redis_store(settings) as redis_store:
        sweeper = MarksSweeper(
            redis_store, SystemClock(), settings.dedupe_horizon, settings.marks_sweep_every
        )
        return await sweeper.run(force=True)


def _disk_usage(directory: Path) -> dict[str, int]:
    """Bytes on disk under the data directory, by top-level entry (log, snapshots, archive)."""
    sizes: dict[str, int] = {}
    for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
        files = [entry] if entry.is_file() else [f for f in entry.rglob("*") if f.is_file()]
        sizes[entry.name] = sum(f.stat().st_size for f in files)
    return sizes


def _print_store_usage(report: dict[str, Any]) -> None:
    console = Console()
    table = Table(
        "structure", "keys", "bytes", "bytes/key", "measured", "no TTL",
        title=f"store: {report['backend']}, bytes by {report['measure']}",
    )  # fmt: skip
    for kind, entry in report["kinds"].items():
        measured = "all" if entry["exact"] else f"{entry['sampled']} (extrapolated)"
        no_ttl = str(entry["without_ttl"]) if entry["per_user"] else f"({entry['without_ttl']})"
        table.add_row(
            kind + (" (per user)" if entry["per_user"] else ""),
            f"{entry['keys']:,}",
            f"{entry['bytes']:,}",
            f"{entry['bytes'] / max(1, entry['keys']):,.0f}",
            measured,
            no_ttl,
        )
    totals = report["totals"]
    table.add_section()
    table.add_row(
        "total", f"{totals['keys']:,}", f"{totals['bytes']:,}", "", "",
        str(totals["user_keys_without_ttl"]),
    )  # fmt: skip
    console.print(table)
    memory = report["memory"]
    if memory["used_memory"] is not None:
        console.print(f"used_memory: {memory['used_memory']:,} bytes ({memory['source']})")
    for name, size in report.get("disk", {}).items():
        console.print(f"on disk: {name}: {size:,} bytes")
    console.print(
        "no TTL: per-user keys without expiry (should be 0); in parentheses for shared "
        "keys, which need none."
    )


def _first_key(keys: str | None) -> str | None:
    """RELEVO_ADMIN_KEY may list several keys (rotation); a client sends the first."""
    return None if keys is None else (keys.split(",")[0].strip() or None)


async def _erase(
    user_id: str, url: str | None, key: str | None, compact: bool, settings: Settings
) -> dict[str, Any]:
    if url is not None:
        from relevo.client import ApiError, AsyncClient

        async with AsyncClient(url, key) as client:
            try:
                receipt = await client.erase_user(user_id)
                report = await client.compact_archive(grace_seconds=0) if compact else None
            except ApiError as error:
                raise RuntimeError(str(error)) from None
        body: dict[str, Any] = {
            "receipt_id": receipt.receipt_id,
            "user_id": receipt.user_id,
            "erased_at": receipt.erased_at,
            "removed": receipt.removed,
            "pending": receipt.pending,
        }
        return body if report is None else {**body, "compaction": report}
    from relevo.engine import Engine

    engine = Engine(settings)
    await engine.start(background=False)
    try:
        result = (await engine.erase(user_id)).to_dict()
        if compact:
            result["compaction"] = (await engine.compact(grace_ms=0)).to_dict()
            result["pending"] = []
        return result
    finally:
        await engine.stop()


@app.command()
def demo(
    url: Annotated[str, typer.Option(help="The relevo server to drive.")] = "http://127.0.0.1:8000",
    users: Annotated[int, typer.Option(min=1, help="Simulated shoppers.")] = 2000,
    pages: Annotated[int, typer.Option(min=1, help="Page loads per shopper.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic shoppers.")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, max=256)] = 16,
    admin_key: Annotated[str | None, typer.Option(envvar="RELEVO_ADMIN_KEY")] = None,
    write_key: Annotated[str | None, typer.Option(envvar="RELEVO_WRITE_KEY")] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table or json.")
    ] = OutputFormat.table,
) -> None:
    """Run the synthetic storefront against a live server: default vs rules vs ml.

    Shoppers with hidden tastes browse, see what relevo decides, click, buy and
    abandon carts. The last line with --format json is
    {"experiment": ID, "arms": {"default": {...}, "rules": {...}, "ml": {...}}}.
    """
    from rich.progress import Progress

    from relevo.demo.runner import Demo

    started = time.perf_counter()
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("shoppers", total=users)
        runner = Demo(
            url,
            users=users,
            pages=pages,
            seed=seed,
            concurrency=concurrency,
            admin_key=admin_key,
            write_key=write_key,
            progress=lambda n: bar.advance(task, n),
        )
        try:
            result = asyncio.run(runner.run())
        except (httpx.HTTPError, RuntimeError) as error:
            _fail(f"the demo could not run against {url}: {error}")
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["requests"] = runner.requests
    if output is OutputFormat.json:
        typer.echo(orjson.dumps(result).decode())
        return
    table = Table(
        "arm",
        "users",
        "exposures",
        "CTR",
        "conversion",
        "p vs control",
        title=f"experiment {result['experiment']}",
    )
    for name, arm in result["arms"].items():
        table.add_row(
            name,
            str(arm["users"]),
            str(arm["exposures"]),
            _percent(arm["ctr"]),
            _percent(arm["conversion"]),
            "-" if arm["p_value_vs_control"] is None else f"{arm['p_value_vs_control']:.2g}",
        )
    Console().print(table)
    srm = result["srm"]["flagged"]
    Console().print(f"{runner.requests} requests in {result['seconds']} s; SRM flagged: {srm}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@app.command()
def version() -> None:
    """Print relevo's version."""
    from relevo import __version__

    typer.echo(__version__)


@app.command()
def evaluate(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="MovieLens u.data file, or relevo events as .jsonl (or .parquet archive).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for machines.")
    ] = OutputFormat.table,
    k: Annotated[
        list[int] | None, typer.Option("--k", help="Cut-offs (repeatable); 10 is always added.")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated model names (default: all, see the catalog)."),
    ] = None,
    test_fraction: Annotated[
        float, typer.Option(min=0.01, max=0.99, help="Share of each user's history to test.")
    ] = 0.2,
) -> None:
    """Replay a dataset, split each user's history by time, train and score every model."""
    import json

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from relevo.models.evaluation import DEFAULT_KS, run_evaluation
    from relevo.models.interactions import InteractionsError, load_interactions
    from relevo.models.report import render_table

    err = Console(stderr=True)
    try:
        interactions = load_interactions(data)
    except InteractionsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("loading", total=None)

        def on_step(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total)

        try:
            report = run_evaluation(
                interactions,
                ks=k or DEFAULT_KS,
                models=names,
                test_fraction=test_fraction,
                dataset=str(data),
                progress=on_step,
            )
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    if output is OutputFormat.json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        out = Console()
        # A pipe reports 80 columns, which would squeeze 13 columns into ellipses.
        render_table(report, out if out.is_terminal else Console(width=160))


# -- models ------------------------------------------------------------------------------
models_app = typer.Typer(
    help="Model versions: list, promote, roll back.", no_args_is_help=True, add_completion=False
)
app.add_typer(models_app, name="models")

StoreOption = Annotated[str | None, typer.Option(help="`embedded` or redis://...")]
DataDirOption = Annotated[Path | None, typer.Option(help="Data directory.")]


async def _with_engine(settings: Settings, work: Any) -> Any:
    """Run `work(engine)` on an engine opened on the data (no background jobs)."""
    from relevo.engine import Engine

    engine = Engine(settings)
    await engine.start(background=False)
    try:
        return await work(engine)
    finally:
        await engine.stop()


def _http(url: str, key: str | None, method: str, path: str, body: Any = None) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, json=body, headers=headers, timeout=None
        )
    except httpx.HTTPError as error:
        _fail(f"could not reach {url}: {error}")
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        _fail(f"the server answered {response.status_code}: {message}")
    return response.json()


@app.command()
def train(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Model to train (repeatable): relevo (the default recommender), propensity, "
            "or any model of `relevo evaluate`. Default: relevo and propensity.",
        ),
    ] = None,
    promote: Annotated[
        bool, typer.Option("--promote/--no-promote", help="Serve the new version at once.")
    ] = False,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for machines.")
    ] = OutputFormat.table,
    url: UrlOption = None,
    key: AdminKeyOption = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Train models from the Parquet archive, evaluate them on a temporal holdout, register.

    Each run registers a new version (metrics, training window, data counts) under
    <data dir>/models/<name>/<version>; `relevo models promote` serves it.
    """
    from relevo.models.training import DEFAULT_TRAINED, check_name

    names = list(model or DEFAULT_TRAINED)
    try:
        for name in names:
            check_name(name)
    except RelevoError as error:
        _fail(error.message)
    explicit = model is not None
    if url is not None:
        results = []
        for name in names:
            with err.status(f"training {name} on the server"):
                results.append(
                    _http(url, key, "POST", f"/v1/models/{name}/train", {"promote": promote})
                )
    else:
        results = asyncio.run(
            _train_here(names, promote, explicit, _settings(store=store, data_dir=data_dir))
        )
    if output is OutputFormat.json:
        typer.echo(orjson.dumps(results).decode())
    else:
        _print_trained(results)


async def _train_here(
    names: list[str], promote: bool, explicit: bool, settings: Settings
) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    async def work(engine: Any) -> list[dict[str, Any]]:
        results = []
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            for name in names:
                task = bar.add_task(f"{name}: reading the archive", total=None)

                def step(what: str, done: int, total: int, task: Any = task) -> None:
                    bar.update(task, description=what, completed=done, total=total)

                try:
                    results.append(await engine.train_model(name, promote=promote, progress=step))
                except RelevoError as error:
                    if explicit or error.code != "not_enough_data":
                        raise
                    err.print(f"[yellow]skipped {name}:[/yellow] {error.message}", highlight=False)
                bar.remove_task(task)
        return results

    try:
        found: list[dict[str, Any]] = await _with_engine(settings, work)
    except RelevoError as error:
        _fail(error.message)
    return found


def _print_trained(results: list[dict[str, Any]]) -> None:
    console = Console()
    table = Table("model", "version", "promoted", "window", "events", "holdout", "seconds")
    for meta in results:
        window = meta.get("training_window", {})
        table.add_row(
            meta["name"],
            meta["version"],
            "yes" if meta.get("promoted") else "no",
            f"{(window.get('from') or '')[:10]} → {(window.get('to') or '')[:10]}",
            str(meta.get("counts", {}).get("events", "")),
            _headline(meta),
            f"{meta.get('train_seconds', 0):.1f}",
        )
    console.print(table)


def _headline(meta: dict[str, Any]) -> str:
    """The metrics a person wants first: NDCG/recall@20, or calibrated log loss per target."""
    metrics = meta.get("metrics", {})
    holdout = metrics.get("holdout")
    if isinstance(holdout, dict):
        if not holdout:
            return "no evaluable users"
        return (
            f"ndcg@20 {holdout.get('ndcg@20', 0):.4f}  recall@20 {holdout.get('recall@20', 0):.4f}"
        )
    parts = []
    for target, found in metrics.items():
        if isinstance(found, dict) and "calibrated" in found:
            calibrated = found["calibrated"]
            parts.append(
                f"{target}: auc {calibrated.get('auc') or 0:.3f} brier {calibrated['brier']:.4f} "
                f"log loss {calibrated['log_loss']:.4f}"
            )
    return "; ".join(parts)


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Argument(help="One model name (default: all).")] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for machines.")
    ] = OutputFormat.table,
    url: UrlOption = None,
    key: AdminKeyOption = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Registered versions with their metrics; * marks the promoted one."""
    if url is not None:
        query = f"?name={name}" if name else ""
        listing = _http(url, key, "GET", f"/v1/models{query}")["models"]
    else:

        async def work(engine: Any) -> Any:
            return await engine.model_versions(name)

        try:
            listing = asyncio.run(_with_engine(_settings(store=store, data_dir=data_dir), work))
        except RelevoError as error:
            _fail(error.message)
    if output is OutputFormat.json:
        typer.echo(orjson.dumps({"models": listing}).decode())
        return
    table = Table("model", "version", "created", "window", "holdout", "promoted")
    for entry in listing:
        for meta in entry["versions"]:
            window = meta.get("training_window", {})
            table.add_row(
                entry["name"],
                ("* " if meta["active"] else "  ") + meta["version"],
                meta["created_at"][:19],
                f"{(window.get('from') or '')[:10]} → {(window.get('to') or '')[:10]}",
                _headline(meta),
                (meta.get("promoted_at") or "")[:19]
                + (" (rolled back)" if meta.get("rolled_back") else ""),
            )
    Console().print(table)


def _change(
    action: str,
    name: str | None,
    version: str | None,
    url: str | None,
    key: str | None,
    settings: Any,
) -> None:
    name = name or _settings().serving_model
    if url is not None:
        body = {"version": version} if version is not None else {}
        result = _http(url, key, "POST", f"/v1/models/{name}/{action}", body)
    else:

        async def work(engine: Any) -> Any:
            if action == "promote":
                assert version is not None
                return await engine.promote_model(name, version)
            return await engine.rollback_model(name, version)

        try:
            result = asyncio.run(_with_engine(settings(), work))
        except RelevoError as error:
            _fail(error.message)
    typer.echo(f"{result['name']}: serving {result['version']} (was {result['previous']})")


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="The version to serve, e.g. v3.")],
    name: Annotated[
        str | None, typer.Option(help="Model name (default: the served one, RELEVO_SERVING_MODEL).")
    ] = None,
    url: UrlOption = None,
    key: AdminKeyOption = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Serve VERSION: every API process swaps to it without dropping a request."""
    _change("promote", name, version, url, key, lambda: _settings(store=store, data_dir=data_dir))


@models_app.command("rollback")
def models_rollback(
    version: Annotated[str | None, typer.Argument(help="Default: the previous one.")] = None,
    name: Annotated[
        str | None, typer.Option(help="Model name (default: the served one, RELEVO_SERVING_MODEL).")
    ] = None,
    url: UrlOption = None,
    key: AdminKeyOption = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Serve the previously promoted version again (or VERSION)."""
    _change("rollback", name, version, url, key, lambda: _settings(store=store, data_dir=data_dir))


monitoring_app = typer.Typer(
    help="Monitoring: drift baselines and reports (see docs/monitoring.md).", no_args_is_help=True
)
app.add_typer(monitoring_app, name="monitoring")


class BaselineSource(StrEnum):
    archive = "archive"
    live = "live"


@monitoring_app.command("baseline")
def monitoring_baseline(
    source: Annotated[
        BaselineSource,
        typer.Option(help="archive: archived events; live: values observed recently."),
    ] = BaselineSource.archive,
    since: Annotated[
        str | None, typer.Option(help="Archive events from this ISO-8601 time on.")
    ] = None,
    url: UrlOption = None,
    key: AdminKeyOption = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Capture the drift baseline (used while the served model has no references)."""
    body: dict[str, Any] = {"source": source.value}
    if since is not None:
        body["since"] = since
    if url is not None:
        result = _http(url, key, "POST", "/v1/monitoring/baseline", body)
    else:
        from relevo.monitoring import baseline

        try:
            chosen, since_ms = baseline.parse_request(body)  # before opening the data
        except RelevoError as error:
            _fail(error.message)

        async def work(engine: Any) -> Any:
            return await baseline.capture(engine, chosen, since_ms)

        try:
            result = asyncio.run(_with_engine(_settings(store=store, data_dir=data_dir), work))
        except RelevoError as error:
            _fail(error.message)
    typer.echo(
        f"baseline {result['id']}: {len(result['features'])} features from "
        f"{result['values']} {result['source']} values"
    )


@monitoring_app.command("drift")
def monitoring_drift(
    evaluate: Annotated[
        bool, typer.Option("--evaluate/--no-evaluate", help="Evaluate new windows first.")
    ] = True,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for machines.")
    ] = OutputFormat.table,
    url: UrlOption = None,
    key: AdminKeyOption = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Drift status per monitored feature (statistic, p-value, PSI, status)."""
    if url is not None:
        if evaluate:
            _http(url, key, "POST", "/v1/monitoring/evaluate")
        report = _http(url, key, "GET", "/v1/monitoring/drift")
    else:

        async def work(engine: Any) -> Any:
            if evaluate:
                await engine.monitoring.evaluate()
            return await engine.monitoring.drift_report()

        try:
            report = asyncio.run(_with_engine(_settings(store=store, data_dir=data_dir), work))
        except RelevoError as error:
            _fail(error.message)
    if output is OutputFormat.json:
        typer.echo(orjson.dumps(report).decode())
        return
    reference = report["reference"]
    typer.echo(
        f"status: {report['status']}; reference: "
        + (
            "none (train a model or run `relevo monitoring baseline`)"
            if reference is None
            else f"{reference['id']} ({reference['source']})"
        )
    )
    table = Table("feature", "test", "statistic", "p-value", "PSI", "status", "windows")
    for feature in report["features"]:
        table.add_row(
            feature["feature"],
            str(feature.get("test", "")),
            _number(feature.get("statistic")),
            _number(feature.get("p_value")),
            _number(feature.get("psi")),
            str(feature.get("status") or "pending"),
            str(feature["windows"]),
        )
    Console().print(table)


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.4g}"
