"""relevo's default recommender: many candidate sources, one learned ranker.

Each source is good at something different — EASE and item-kNN at "people who
liked these liked that", ALS at broad taste, co-visitation at "what comes next",
content at items nobody touched yet, popularity at what everyone wants — and
none is best for every user. The hybrid lets each propose candidates and has
LightGBM's ``lambdarank`` order the union by features of the (user, candidate)
pair (see `candidates`).

Training never sees the test period: `fit` splits the *training* interactions
by time per user (`validation_split`); sources fitted on the early part
propose candidates, the late part labels them, and the ranker learns from
that. The same early/late split tunes each source's hyper-parameters. Then the
sources are refitted on all training interactions with the chosen parameters
and the ranker is kept as learned.

Extra (user, item) features can be appended to the candidates' columns through a
`PairFeatures` provider: relevo's training passes point-in-time profile features
replayed from the archive, and serving the same features from the live profile
(`relevo.models.profile_features`), so the ranker sees one definition in both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp

from relevo.models.als import ALSRecommender
from relevo.models.base import Recommender, State
from relevo.models.candidates import (
    Candidates,
    FeatureContext,
    build_candidates,
    feature_names,
)
from relevo.models.content import ContentRecommender
from relevo.models.covisitation import CovisitationRecommender
from relevo.models.ease import MAX_ITEMS as EASE_MAX_ITEMS
from relevo.models.ease import EASERecommender
from relevo.models.evaluation import Split, validation_split
from relevo.models.interactions import FloatArray, IntArray, Interactions
from relevo.models.knn import ItemKNNRecommender
from relevo.models.popularity import PopularityRecommender
from relevo.models.tuning import Grid, tune

#: Source name -> (model class, default params, tuning grid). The grids are small on
#: purpose: each point is one fit on the early training period.
SOURCES: dict[str, tuple[type[Recommender], dict[str, Any], Grid]] = {
    "ease": (
        EASERecommender,
        {"regularization": 300.0},
        {"regularization": [100.0, 300.0, 1000.0]},
    ),
    "als": (
        ALSRecommender,
        {"factors": 64, "regularization": 1.0, "weighting": "bm25", "iterations": 15},
        {"factors": [32, 64, 128], "regularization": [0.1, 1.0]},
    ),
    "item_knn": (ItemKNNRecommender, {"neighbors": 100}, {"neighbors": [50, 200]}),
    "covisitation": (
        CovisitationRecommender,
        {"window": 30, "recent": 10, "recency_decay": 0.95},
        {"window": [10, 30, 60], "recent": [10, 30]},
    ),
    "popularity": (PopularityRecommender, {}, {}),
    "content": (ContentRecommender, {}, {}),
}

#: Below this many training rows the ranker trains single-threaded.
SMALL_RANKER_ROWS = 200_000

DEFAULT_RANKER_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [20],
    "lambdarank_truncation_level": 30,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbosity": -1,
    "deterministic": True,
    "force_row_wise": True,
}


class PairFeatures(Protocol):
    """Extra features of (user, item) pairs as of a time, appended to the candidates' columns.

    Called with the candidates' user and item indices and, per row, the time the
    user's features are for (the user's last interaction in the data being fitted
    or scored); returns one row of ``len(names)`` values per pair (NaN = missing).
    """

    names: tuple[str, ...]

    def __call__(self, users: IntArray, at_ms: IntArray, items: IntArray) -> FloatArray: ...


class HybridRecommender(Recommender):
    """Candidates from several sources, ordered by a LightGBM lambdarank ranker.

    Parameters: `sources` names the candidate sources (default: all that fit
    the data — EASE only up to its catalog limit, content only with item
    text); `per_source` candidates each; `tune_sources` picks each source's
    parameters on the early/late training split; `max_ranker_users` caps the
    users whose candidates train the ranker (a fixed random sample), which
    bounds training time on large datasets.

    After `fit`, `source_params` holds the parameters chosen for each source,
    so ``HybridRecommender(**model.params())`` (what `load` does) rebuilds the
    same model without tuning again; `timings` and `tuning_report` say where
    the time went and what each grid point scored.

    `pair_feature_names` declares extra ranker columns; set `pair_features` (a
    `PairFeatures` with those names) before `fit` to provide them. A loaded
    model scores without a provider with those columns missing (NaN); serving
    passes one to `rank_candidates`.
    """

    kind = "hybrid"

    def __init__(
        self,
        sources: list[str] | None = None,
        per_source: int = 50,
        tune_sources: bool = True,
        max_ranker_users: int = 10_000,
        num_boost_round: int = 300,
        early_stopping_rounds: int = 30,
        validation_fraction: float = 0.2,
        source_params: dict[str, dict[str, Any]] | None = None,
        ranker_params: dict[str, Any] | None = None,
        random_state: int = 42,
        pair_feature_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.sources = sources
        self.per_source = per_source
        self.tune_sources = tune_sources
        self.max_ranker_users = max_ranker_users
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.source_params = source_params
        self.ranker_params = ranker_params
        self.random_state = random_state
        self.pair_feature_names = pair_feature_names
        #: Provides the `pair_feature_names` columns (not saved: it is data, not model).
        self.pair_features: PairFeatures | None = None
        self.models: dict[str, Recommender] = {}
        self.booster: lgb.Booster | None = None
        self.context: FeatureContext | None = None
        #: Seconds spent per stage of the last `fit`, for benches and reports.
        self.timings: dict[str, float] = {}
        #: Validation trials per source (params, ndcg) from the last `fit`.
        self.tuning_report: dict[str, list[tuple[dict[str, Any], float]]] = {}

    def params(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "per_source": self.per_source,
            "tune_sources": self.tune_sources,
            "max_ranker_users": self.max_ranker_users,
            "num_boost_round": self.num_boost_round,
            "early_stopping_rounds": self.early_stopping_rounds,
            "validation_fraction": self.validation_fraction,
            "source_params": self.source_params,
            "ranker_params": self.ranker_params,
            "random_state": self.random_state,
            "pair_feature_names": self.pair_feature_names,
        }

    # ------------------------------------------------------------ fitting
    def source_names(self, interactions: Interactions) -> list[str]:
        """The sources used for `interactions`: the configured ones that can work on it."""
        if self.sources is not None:
            unknown = set(self.sources) - set(SOURCES)
            if unknown:
                raise ValueError(f"unknown hybrid sources {sorted(unknown)}")
            return list(self.sources)
        names = list(SOURCES)
        if interactions.n_items > EASE_MAX_ITEMS:
            names.remove("ease")
        if interactions.item_text is None:
            names.remove("content")
        return names

    def _fit(self, interactions: Interactions) -> None:
        if self.pair_features is not None and list(self.pair_features.names) != list(
            self.pair_feature_names or []
        ):
            raise ValueError("pair_features provides other columns than pair_feature_names")
        self.timings = {}
        names = self.source_names(interactions)
        inner = validation_split(interactions, self.validation_fraction)
        chosen = self._choose_params(names, inner)
        # Stage 1: sources on the early part propose candidates the late part labels.
        early = self._fit_sources(chosen, inner.train, "sources_early")
        started = time.perf_counter()
        train_rows, valid_rows = self._ranker_rows(early, inner)
        self.timings["features"] = time.perf_counter() - started
        started = time.perf_counter()
        self.booster = self._train_ranker(train_rows, valid_rows, names)
        self.timings["ranker"] = time.perf_counter() - started
        # Stage 2: the same sources, refitted on everything, serve with that ranker.
        self.models = self._fit_sources(chosen, interactions, "sources_full")
        self.context = FeatureContext.build(interactions)
        self.source_params = chosen

    def _choose_params(self, names: list[str], inner: Split) -> dict[str, dict[str, Any]]:
        started = time.perf_counter()
        chosen: dict[str, dict[str, Any]] = {}
        self.tuning_report = {}
        for name in names:
            cls, defaults, grid = SOURCES[name]
            base = {**defaults, **(self.source_params or {}).get(name, {})}
            if self.tune_sources and grid and name not in (self.source_params or {}):
                result = tune(cls, grid, inner, base_params=base, seed=self.random_state)
                chosen[name] = result.best_params
                self.tuning_report[name] = result.trials
            else:
                chosen[name] = base
        self.timings["tuning"] = time.perf_counter() - started
        return chosen

    def _fit_sources(
        self, chosen: Mapping[str, dict[str, Any]], data: Interactions, stage: str
    ) -> dict[str, Recommender]:
        models: dict[str, Recommender] = {}
        for name, params in chosen.items():
            started = time.perf_counter()
            models[name] = SOURCES[name][0](**params).fit(data)
            self.timings[f"{stage}.{name}"] = time.perf_counter() - started
        return models

    def _ranker_rows(
        self, early: Mapping[str, Recommender], inner: Split
    ) -> tuple[tuple[Candidates, FloatArray], tuple[Candidates, FloatArray] | None]:
        """Candidates and labels for ranker training and early-stopping users."""
        users = inner.evaluated_users()
        rng = np.random.default_rng(self.random_state)
        if len(users) > self.max_ranker_users:
            users = rng.choice(users, self.max_ranker_users, replace=False)
        users = rng.permutation(users)
        n_valid = len(users) // 5 if len(users) >= 50 and self.early_stopping_rounds > 0 else 0
        seen = inner.train.to_csr(binary=True)
        context = FeatureContext.build(inner.train)
        relevant = inner.relevant()
        out: list[tuple[Candidates, FloatArray]] = []
        for part in (np.sort(users[n_valid:]), np.sort(users[:n_valid])):
            cands = build_candidates(early, part, self.per_source, seen, context)
            cands = self._with_pairs(cands, context, self.pair_features)
            labels = np.zeros(len(cands.items), dtype=np.float32)
            if len(labels):
                labels[:] = np.asarray(relevant[cands.users, cands.items]).ravel()
            out.append(_drop_groups_without_positives(cands, labels))
        return out[0], (out[1] if n_valid else None)

    def _train_ranker(
        self,
        train_rows: tuple[Candidates, FloatArray],
        valid_rows: tuple[Candidates, FloatArray] | None,
        names: list[str],
    ) -> lgb.Booster | None:
        """LightGBM lambdarank on the labelled candidates; None when nothing is labelled.

        Too little data to learn a ranker (a tiny shop, a first day) is not an
        error: the hybrid then fuses the sources' ranks instead (`_fused`).
        """
        cands, labels = train_rows
        if len(labels) == 0:
            return None
        params = {
            **DEFAULT_RANKER_PARAMS,
            # OpenMP threads cost more than they save on small sets (and spin against other
            # processes on a busy machine): one thread below SMALL_RANKER_ROWS rows.
            "num_threads": 1 if len(labels) < SMALL_RANKER_ROWS else 0,
            **(self.ranker_params or {}),
            "seed": self.random_state,
        }
        cols = feature_names(names) + list(self.pair_feature_names or [])
        train_set = lgb.Dataset(
            cands.features, labels, group=cands.group_sizes, feature_name=cols, free_raw_data=True
        )
        valid_sets = []
        callbacks: list[Callable[..., None]] = []
        if valid_rows is not None and len(valid_rows[1]):
            vc, vl = valid_rows
            valid_sets.append(
                lgb.Dataset(vc.features, vl, group=vc.group_sizes, reference=train_set)
            )
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=self.num_boost_round,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        if valid_sets and booster.best_iteration > 0:
            # Keep only the trees up to the best validation round; serving then needs no flag.
            booster = lgb.Booster(
                model_str=booster.model_to_string(num_iteration=booster.best_iteration)
            )
        return booster

    # ------------------------------------------------------------ scoring
    def _with_pairs(
        self, cands: Candidates, context: FeatureContext, provider: PairFeatures | None
    ) -> Candidates:
        """`cands` with the `pair_feature_names` columns appended (NaN without a provider)."""
        if not self.pair_feature_names:
            return cands
        if provider is None or not len(cands.items):
            extra = np.full((len(cands.items), len(self.pair_feature_names)), np.nan, np.float32)
        else:
            extra = np.asarray(
                provider(cands.users, context.user_last[cands.users], cands.items), np.float32
            )
        return Candidates(
            users=cands.users,
            items=cands.items,
            features=np.hstack([cands.features, extra]),
            group_sizes=cands.group_sizes,
        )

    def rank_candidates(
        self,
        users: IntArray,
        *,
        seen: sp.csr_matrix | None = None,
        pair_features: PairFeatures | None = None,
    ) -> tuple[Candidates, FloatArray]:
        """Candidates of (known) `users` and their ranker scores, higher is better.

        `seen` (default: the training interactions) marks items never proposed;
        `pair_features` provides the extra columns (serving passes live profiles).
        """
        assert self.context is not None
        assert self.seen is not None
        seen = self.seen if seen is None else seen
        cands = build_candidates(self.models, users, self.per_source, seen, self.context)
        cands = self._with_pairs(cands, self.context, pair_features)
        if self.booster is None:
            return cands, self._fused(cands)
        threads = 1 if len(cands.items) < SMALL_RANKER_ROWS else 0
        pred = np.asarray(
            self.booster.predict(cands.features, num_threads=threads), dtype=np.float32
        )
        return cands, pred

    def score_users(self, users: IntArray) -> FloatArray:
        """Ranker scores on candidates; other items rank below, by popularity."""
        assert self.item_popularity is not None
        cands, pred = self.rank_candidates(users, pair_features=self.pair_features)
        floor = float(pred.min()) - 1.0 if len(pred) else 0.0
        pop = self.item_popularity / max(float(self.item_popularity.max()), 1.0)
        scores = np.broadcast_to(floor - 1.0 + pop, (len(users), self.n_items)).copy()
        row = np.repeat(np.arange(len(users)), cands.group_sizes)
        scores[row, cands.items] = pred
        return scores.astype(np.float32)

    def _fused(self, cands: Candidates) -> FloatArray:
        """Reciprocal-rank fusion of the sources (Cormack et al. 2009): the no-ranker fallback."""
        ranks = cands.features[:, 2 : 3 * len(self.models) : 3]
        return np.asarray((1.0 / (60.0 + ranks)).sum(axis=1), dtype=np.float32)

    def similar_items_indices(self, item: int, k: int = 10) -> tuple[IntArray, FloatArray]:
        # The ranker scores users, not item pairs; item-to-item comes from the best item source.
        for name in ("item_knn", "covisitation", "ease", "als", "content"):
            if name in self.models:
                return self.models[name].similar_items_indices(item, k)
        return super().similar_items_indices(item, k)

    # ------------------------------------------------------------ persistence
    def _save_extra(self, path: Path) -> None:
        if self.booster is not None:
            (path / "ranker.txt").write_text(self.booster.model_to_string())
        # In fit order, which is the ranker's feature column order.
        (path / "sources.json").write_text(json.dumps(list(self.models)))
        for name, model in self.models.items():
            model.save(path / "sources" / name)

    def _load_extra(self, path: Path) -> None:
        ranker = path / "ranker.txt"
        self.booster = lgb.Booster(model_str=ranker.read_text()) if ranker.is_file() else None
        names = json.loads((path / "sources.json").read_text())
        self.models = {name: Recommender.load(path / "sources" / name) for name in names}

    def _state(self) -> State:
        assert self.context is not None
        return dict(self.context.to_state())

    def _set_state(self, state: State) -> None:
        self.context = FeatureContext.from_state(state)


def _drop_groups_without_positives(
    cands: Candidates, labels: FloatArray
) -> tuple[Candidates, FloatArray]:
    """Lambdarank learns nothing from a user none of whose candidates is relevant."""
    group_of_row = np.repeat(np.arange(len(cands.group_sizes)), cands.group_sizes)
    positives = np.bincount(group_of_row, weights=labels, minlength=len(cands.group_sizes))
    keep_group = positives > 0
    keep_row = keep_group[group_of_row]
    return (
        Candidates(
            users=cands.users[keep_row],
            items=cands.items[keep_row],
            features=cands.features[keep_row],
            group_sizes=cands.group_sizes[keep_group],
        ),
        labels[keep_row],
    )
