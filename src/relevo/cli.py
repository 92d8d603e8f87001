"""The `relevo` command line: thin typer commands over library calls."""

from __future__ import annotations

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
