"""Training-time bench: ALS and the hybrid's ranker on 1M synthetic interactions.

    python -m bench.train [--interactions 1000000 --users 100000 --items 20000]

Data: `relevo.models.synthetic.latent_tastes` (users with hidden tastes over
50 topics, Zipf popularity inside a topic, event types view..purchase), so the
models have real structure to learn. Measured in the same run:

* reference: the popularity baseline's fit (builds the user x item matrix and
  counts: one plain pass over the same data), so numbers from a slower or
  busier machine can be read relative to it;
* als: relevo's CF (`ALSRecommender`, 64 factors, 15 iterations, BM25);
* ranker: the hybrid's ranker stage (candidate features + LightGBM
  lambdarank), with the hybrid's sources fitted at their default parameters
  (`tune_sources=False`: tuning is a separate, optional cost);
* hybrid fit: the whole default recommender, i.e. its sources fitted twice
  (early period for ranker labels, then everything) plus the ranker.

Target: als + ranker <= 60 s on a 2-core machine. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from relevo.models.als import ALSRecommender
from relevo.models.hybrid import HybridRecommender
from relevo.models.popularity import PopularityRecommender
from relevo.models.synthetic import latent_tastes

TARGET_SECONDS = 60.0


def run(n_interactions: int, n_users: int, n_items: int, seed: int) -> dict[str, Any]:
    console = Console(stderr=True)
    with console.status("generating interactions"):
        started = time.perf_counter()
        data = latent_tastes(n_users, n_items, n_interactions, n_topics=50, seed=seed).interactions
        generate_seconds = time.perf_counter() - started
    with console.status("reference: popularity baseline"):
        started = time.perf_counter()
        PopularityRecommender().fit(data)
        reference_seconds = time.perf_counter() - started
    with console.status("ALS"):
        started = time.perf_counter()
        ALSRecommender(factors=64, iterations=15, weighting="bm25").fit(data)
        als_seconds = time.perf_counter() - started
    with console.status("hybrid (sources + ranker)"):
        started = time.perf_counter()
        hybrid = HybridRecommender(tune_sources=False).fit(data)
        hybrid_seconds = time.perf_counter() - started
    ranker_seconds = hybrid.timings["features"] + hybrid.timings["ranker"]
    total = als_seconds + ranker_seconds
    return {
        "interactions": len(data),
        "users": data.n_users,
        "items": data.n_items,
        "generate_seconds": round(generate_seconds, 3),
        "reference_seconds": round(reference_seconds, 3),
        "als_seconds": round(als_seconds, 3),
        "ranker_seconds": round(ranker_seconds, 3),
        "ranker_features_seconds": round(hybrid.timings["features"], 3),
        "ranker_lightgbm_seconds": round(hybrid.timings["ranker"], 3),
        "ranker_trees": 0 if hybrid.booster is None else hybrid.booster.num_trees(),
        "hybrid_fit_seconds": round(hybrid_seconds, 3),
        "hybrid_sources": list(hybrid.models),
        "total_seconds": round(total, 3),
        "target_seconds": TARGET_SECONDS,
        "target_met": total <= TARGET_SECONDS,
    }


def render(result: dict[str, Any], console: Console) -> None:
    table = Table(
        title=(
            f"relevo training bench: {result['interactions']:,} interactions, "
            f"{result['users']:,} users, {result['items']:,} items"
        )
    )
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("x reference", justify="right")
    ref = max(result["reference_seconds"], 1e-9)
    rows = [
        ("reference (popularity fit)", "reference_seconds"),
        ("ALS (64 factors, 15 iterations)", "als_seconds"),
        ("ranker: candidate features", "ranker_features_seconds"),
        ("ranker: LightGBM lambdarank", "ranker_lightgbm_seconds"),
        ("ALS + ranker", "total_seconds"),
        ("whole hybrid fit (all sources x2 + ranker)", "hybrid_fit_seconds"),
    ]
    for label, key in rows:
        table.add_row(label, f"{result[key]:.2f}", f"{result[key] / ref:.0f}")
    console.print(table)
    verdict = "met" if result["target_met"] else "NOT met"
    console.print(f"target ALS + ranker <= {result['target_seconds']:.0f} s: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(args.interactions, args.users, args.items, args.seed)
    render(result, Console())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
