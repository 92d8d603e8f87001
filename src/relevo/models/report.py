"""Human-readable rendering of an `EvaluationReport` (rich table)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from relevo.models.evaluation import EvaluationReport


def render_table(report: EvaluationReport, console: Console) -> None:
    """One row per model, metric columns in k order, the best value of each column bold."""
    if not report.results:
        console.print("no models evaluated")
        return
    metric_names = list(report.results[0].metrics)
    order = {"recall": 0, "ndcg": 1, "hr": 2, "coverage": 3}
    metric_names.sort(key=lambda m: (order.get(m.split("@")[0], 9), int(m.split("@")[1])))
    p = report.protocol
    table = Table(
        title=(
            f"relevo evaluate — {p.get('dataset') or 'dataset'}: {p['users']} users, "
            f"{p['items']} items, {p['interactions']} interactions; "
            f"{p['evaluated_users']} users evaluated"
        ),
        caption=(
            "temporal per-user split (last "
            f"{p['test_fraction']:.0%} to test); tuned on a validation split of train"
        ),
    )
    table.add_column("model")
    table.add_column("role")
    for m in metric_names:
        table.add_column(m.replace("coverage", "cov"), justify="right")
    table.add_column("train s", justify="right")
    table.add_column("tune s", justify="right")
    best = {m: max(r.metrics[m] for r in report.results) for m in metric_names}
    for r in report.results:
        cells = [
            f"[bold]{r.metrics[m]:.4f}[/bold]" if r.metrics[m] == best[m] else f"{r.metrics[m]:.4f}"
            for m in metric_names
        ]
        table.add_row(r.name, r.role, *cells, f"{r.train_seconds:.2f}", f"{r.tune_seconds:.2f}")
    console.print(table)
    comparison = p.get("comparison") or {}
    if comparison.get("ratio") is not None:
        console.print(
            f"relevo vs best baseline ({comparison['best_baseline']}) on "
            f"{comparison['metric']}: {comparison['ratio']:.3f}x"
        )
