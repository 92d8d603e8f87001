"""Settings: environment variables ``RELEVO_*`` with sensible defaults.

One `Settings` object is built at start (`Settings()` reads the environment) and
handed to everything that needs it; nothing reads the environment later.
Durations are written the way people write them: ``30s``, ``15m``, ``2h``, ``7d``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration_ms(value: str | int | float) -> int:
    """``"15m"`` → 900000. Plain numbers (and ``"0"`` from the environment) are milliseconds.

    >>> parse_duration_ms("15m"), parse_duration_ms("1.5h"), parse_duration_ms(250)
    (900000, 5400000, 250)
    >>> parse_duration_ms("0")
    0
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit, like 15m")
    if isinstance(value, int | float):
        return int(value)
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 15m, 2h or 7d")
    amount, unit = match.groups()
    return round(float(amount) * _UNIT_MS[unit or "ms"])


def _duration(value: Any) -> int:
    return parse_duration_ms(value)


DurationMs = Annotated[int, BeforeValidator(_duration)]


class Settings(BaseSettings):
    """Everything relevo can be told at start. Environment: ``RELEVO_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="RELEVO_", extra="ignore")

    store: str = Field(
        "embedded",
        description="`embedded` (one process, state in memory, log in SQLite under the data dir) "
        "or a Redis URL `redis://host:port/db` (state in Redis, log in a Redis Stream).",
    )
    data_dir: Path = Field(
        Path("relevo-data"),
        description="Where the embedded log, snapshots and the Parquet archive live.",
    )
    host: str = Field("127.0.0.1", description="Interface `relevo serve` binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port `relevo serve` listens on.")
    apply: Literal["inline", "worker"] = Field(
        "inline",
        description="`inline`: the API process applies what it accepts before answering "
        "(read-your-writes; one process, or a few). `worker` (Redis only): the API only logs; "
        "`relevo worker` processes apply, so API processes scale out and ingestion is faster.",
    )
    log_partitions: int = Field(
        16,
        ge=1,
        le=1024,
        description="Redis: event log partitions (streams); a user's records "
        "stay in one, in order. Workers share partitions. Don't change it on a running log.",
    )
    worker_lease: DurationMs = Field(
        parse_duration_ms("10s"),
        description="How long a worker's hold on its log partitions lasts without renewal: "
        "a dead worker's partitions pass to others after this long.",
    )
    worker_linger: DurationMs = Field(
        parse_duration_ms("10ms"),
        description="How long a worker waits for more records after a read that brought "
        "fewer than a batch, before applying them: each applied batch has a fixed cost (a "
        "dozen store round trips), so under light traffic workers apply fewer, larger "
        "batches. Freshness costs up to this much; 0 applies what each read brings at once.",
    )
    worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="How much a `relevo worker` lowers its CPU priority (added to its Unix "
        "nice value): where workers share cores with API processes, decisions go first "
        "when both want the CPU, and the workers catch up when it is free. 0 keeps the "
        "priority it was started with (docs/operations.md, topology 3).",
    )
    max_lag: int = Field(
        200_000,
        ge=1,
        description="Records accepted but not yet applied above which ingestion answers 503 "
        "(back-pressure instead of growing memory).",
    )
    redis_prefix: str = Field(
        "relevo", description="Prefix of every Redis key, so several deployments can share Redis."
    )
    archive_dir: Path | None = Field(
        None, description="Parquet archive directory (default: `<data_dir>/archive`)."
    )
    profile_dictionary_min_profiles: int = Field(
        10_000,
        ge=0,
        description="Redis: once the store holds this many profiles and has never had a site "
        "dictionary, one process trains one from them and every process writes with it "
        "(docs/operations.md); 0: only `relevo store train-dictionary` trains one.",
    )

    session_timeout: DurationMs = Field(
        parse_duration_ms("30m"), description="Inactivity that ends a session."
    )
    retention: DurationMs = Field(
        parse_duration_ms("90d"), description="A profile untouched this long expires."
    )
    dedupe_horizon: DurationMs = Field(
        parse_duration_ms("7d"),
        description="How long an event id is remembered (wall-clock time since it arrived): "
        "a retry or a re-import within this horizon is recognized as a duplicate.",
    )
    marks_sweep_every: DurationMs = Field(
        parse_duration_ms("1h"),
        description="How often a pass drops the dedupe marks past RELEVO_DEDUPE_HORIZON "
        "from idle profiles (a write drops its own; an idle user's would stay until the "
        "profile expires). One process at a time, in rounds of 5,000 keys; 0 turns it off.",
    )
    future_tolerance: DurationMs = Field(
        parse_duration_ms("5m"), description="Events further in the future are rejected."
    )
    affinity_half_life: DurationMs = Field(
        parse_duration_ms("7d"), description="Half-life of decayed category affinities."
    )

    max_batch: int = Field(10_000, ge=1, description="Most events in one request.")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="Largest request body.")
    max_properties_bytes: int = Field(
        8192, ge=64, description="Largest `properties` object, as JSON."
    )
    max_properties_depth: int = Field(5, ge=1, description="Deepest nesting inside `properties`.")

    write_key: str = Field(
        "",
        repr=False,
        description="Write keys (comma-separated, for rotation): events, consent, item reads. "
        "Safe to embed in a web page. With no key at all the API is open (loopback only).",
    )
    admin_key: str = Field(
        "",
        repr=False,
        description="Admin keys (comma-separated): everything, including erasure and the catalog.",
    )
    cors_origins: str = Field(
        "",
        description="Origins (comma-separated, or `*`) whose pages may call the API with the "
        "browser SDK.",
    )
    rate_limit: int = Field(
        1000, ge=0, description="Requests per second per API key (token bucket); 0 disables."
    )
    rate_burst: int = Field(2000, ge=1, description="Requests a key may send at once.")
    consent_required: bool = Field(
        False,
        description="Treat users without a recorded personalization consent as opted out "
        "(opt-in regimes). By default only an explicit refusal opts a user out.",
    )
    event_retention: DurationMs = Field(
        parse_duration_ms("400d"),
        description="Raw events (log and Parquet archive) older than this, in event time, are "
        "dropped by compaction; 0 keeps them forever.",
    )
    compact_every: DurationMs = Field(
        parse_duration_ms("1h"),
        description="How often the archive is compacted (erasures applied, retention enforced).",
    )
    serving_model: str = Field(
        "relevo",
        description="The registered model `GET /v1/recommendations` serves (its promoted "
        "version); see `relevo models list`.",
    )
    models_dir: Path | None = Field(
        None, description="Model versions, one folder each (default: `<data_dir>/models`)."
    )
    retrain_every: DurationMs | None = Field(
        None,
        description="Retrain the served and the propensity models from the archive this often "
        "(in a worker process), e.g. `24h`; off by default.",
    )
    answer_cache_ttl: DurationMs = Field(
        parse_duration_ms("30s"),
        description="How long a user's blended recommendations are reused for the same request "
        "while the user does nothing new (their next event invalidates them); 0 disables.",
    )
    catalog_refresh: DurationMs = Field(
        parse_duration_ms("1s"),
        description="How often a process checks whether the catalog changed, for the item "
        "documents it keeps decoded for decisions and recommendations: a catalog upsert reaches "
        "the answers of other processes within this long (of the process applying it, at "
        "once); 0 reads the catalog from the store on every request.",
    )
    trending_refresh: DurationMs = Field(
        parse_duration_ms("1s"),
        description="How long a process reuses the trending items (overall and by category) "
        "it read for decisions and recommendations: events applied by other processes reach "
        "its trending within this long (the applying process's at once); 0 reads trending "
        "from the store on every request.",
    )
    covisitation_half_life: DurationMs = Field(
        parse_duration_ms("14d"), description="Half-life of live co-visitation counts."
    )
    trending_half_life: DurationMs = Field(
        parse_duration_ms("1d"), description="Half-life of live trending counts."
    )

    snapshot_every: DurationMs = Field(
        parse_duration_ms("60s"), description="Embedded mode: how often state is snapshotted."
    )
    archive_flush_every: DurationMs = Field(
        parse_duration_ms("10s"), description="How often new events are written to Parquet."
    )
    demo_catalog: bool = Field(
        False, description="Load the demo catalog when the catalog is empty."
    )
    log_level: str = Field("info", description="Logging level: debug, info, warning, error.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text` for people, `json` for log pipelines: one object per line with "
        "request and decision ids (`relevo serve --log-format`).",
    )
    metrics_public: bool = Field(
        False,
        description="Serve `/metrics` without a key (for a scraper inside a private network); "
        "by default it needs an admin key once keys are configured.",
    )
    monitoring_every: DurationMs = Field(
        parse_duration_ms("30s"),
        description="How often drift windows and KPI anomalies are evaluated (one process at "
        "a time).",
    )
    drift_window: int = Field(
        1000, ge=50, description="Values per drift window, per feature (tumbling windows)."
    )
    drift_sample: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of events whose features are observed for drift (by event id).",
    )
    retrain_on_drift: bool = Field(
        False,
        description="Retrain (and promote unless clearly worse) the served and propensity "
        "models when a feature drifts.",
    )
    project: Path | None = Field(
        None,
        description="The project file (rules, webhooks, ...); default: ./relevo.yaml if present.",
    )
    action_max_delay: DurationMs = Field(
        parse_duration_ms("1h"),
        description="A rule action (outbox message) whose moment is further in the past than "
        "this when it is emitted is not emitted: a backfill, a replay or a long outage does not "
        "send old offers (segments and attributes still apply). 0 emits every action.",
    )
    webhook_url: str | None = Field(None, description="Send every rule action to this URL.")
    webhook_secret: str | None = Field(None, description="HMAC secret for RELEVO_WEBHOOK_URL.")
    webhook_first_retry: DurationMs = Field(
        parse_duration_ms("500ms"), description="First webhook retry delay (doubles each time)."
    )

    @property
    def is_redis(self) -> bool:
        return self.store.startswith(
            ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        )

    @property
    def project_path(self) -> Path | None:
        if self.project is not None:
            return self.project
        default = Path("relevo.yaml")
        return default if default.exists() else None

    @property
    def models_path(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def archive_path(self) -> Path:
        return self.archive_dir if self.archive_dir is not None else self.data_dir / "archive"
