"""The `relevo` command line: thin typer commands over library calls."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="relevo",
    help="relevo: a self-hosted, real-time personalization engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


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
