"""The `relevo` command line: thin typer commands over library calls."""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
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
        retrain_every=retrain_every,
    )
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


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


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

UrlOption = Annotated[
    str | None,
    typer.Option(
        help="Talk to a running server (http://127.0.0.1:8000) instead of opening the data "
        "(needed for the embedded store while a server runs)."
    ),
]
KeyOption = Annotated[
    str | None, typer.Option(help="Admin API key for --url.", envvar="RELEVO_ADMIN_KEY")
]
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
    key: KeyOption = None,
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
    key: KeyOption = None,
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
    key: KeyOption = None,
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
    key: KeyOption = None,
    store: StoreOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Serve the previously promoted version again (or VERSION)."""
    _change("rollback", name, version, url, key, lambda: _settings(store=store, data_dir=data_dir))
