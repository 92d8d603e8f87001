"""Quality bench: `relevo evaluate` on MovieLens-100K, with the acceptance check.

    python -m bench.quality [--data ../shared/datasets/ml-100k/u.data]

Runs the full evaluation (every baseline tuned on a validation split of the
training period, relevo's models, the same temporal split) and checks that
relevo's default recommender reaches NDCG@20 >= 1.05 x the best baseline. The
dataset is read from where it lies and never copied (its licence forbids
redistribution); when it is absent the bench says so and exits 0. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from relevo.models.evaluation import run_evaluation
from relevo.models.interactions import load_interactions
from relevo.models.report import render_table

# beside the project, never inside it (its licence forbids redistribution)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-100k" / "u.data"
TARGET_RATIO = 1.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"skipped: {args.data} not found")
        print(json.dumps({"skipped": True, "data": str(args.data)}))
        return
    console = Console(width=160)
    with Console(stderr=True).status("evaluating (tuning and training every model)"):
        report = run_evaluation(load_interactions(args.data), dataset=str(args.data))
    render_table(report, console)
    comparison = report.protocol["comparison"]
    ratio = comparison["ratio"]
    print(
        json.dumps(
            {
                "data": str(args.data),
                "metric": comparison["metric"],
                "relevo": comparison["relevo"],
                "best_baseline": comparison["best_baseline"],
                "best_baseline_value": comparison["best_baseline_value"],
                "ratio": ratio,
                "target_ratio": TARGET_RATIO,
                "passed": ratio is not None and ratio >= TARGET_RATIO,
                "ndcg@20": {r.name: round(r.metrics["ndcg@20"], 6) for r in report.results},
                "train_seconds": {r.name: round(r.train_seconds, 3) for r in report.results},
            }
        )
    )


if __name__ == "__main__":
    main()
