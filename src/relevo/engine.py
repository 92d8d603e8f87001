"""The Engine: the one door through which the API and the CLI reach relevo.

It wires a backend (store + event log), the applier and the group committer, the
rules (versions, timers, outbox, webhooks, statistics), runs crash recovery at
start and housekeeping in the background, and offers the verbs: `ingest`,
`upsert_items`, `remove_item(s)`, `item`, `items`, `profile`, `put_rules`, `rollback_rules`,
`test_rules`, `actions`, `health`, `stats`, `sweep_marks`; and for models: `recommend`,
`similar_items`, `score_variants`, `train_model`, `promote_model`,
`rollback_model`, `model_versions` (logic in `relevo.serving` and `relevo.models`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson

from relevo import catalog, consent, erasure
from relevo.apply import Applier, Retention
from relevo.archiver import Archiver
from relevo.backends import Backend, open_backend
from relevo.background import Background
from relevo.catalog_cache import CatalogCache
from relevo.clock import Clock, SystemClock, to_datetime, to_iso
from relevo.committer import Committer, Entry
from relevo.config import Settings
from relevo.consent import personalization_allowed
from relevo.decisions.experiments import Experiments, canonical_experiments
from relevo.decisions.exposures import Exposures
from relevo.decisions.flags import Flags, canonical_flags
from relevo.decisions.pipeline import DecisionPipeline
from relevo.decisions.placements import Placements, canonical_placements
from relevo.decisions.request import parse_decide
from relevo.decisions.sources import CandidateSources
from relevo.decisions.stats import experiment_results
from relevo.errors import ConfigurationError, InvalidInput, NotFound, Overloaded, RelevoError
from relevo.eventlog import compaction
from relevo.eventlog.archive import ArchiveWriter
from relevo.eventlog.base import LogRecord
from relevo.eventlog.compaction import DEFAULT_GRACE_MS, CompactionReport
from relevo.events import Limits
from relevo.experiments.stats import ExperimentReport
from relevo.features import site_dictionaries
from relevo.features.dictionaries import MissingDictionary
from relevo.features.profile import FeatureParams, ProfileState, ProfileView, decode, render
from relevo.features.windows import WINDOWS_MS
from relevo.ingest import IngestReport, InvalidBatch, validate_events
from relevo.live.models import LiveModels
from relevo.marks_sweep import CHECK_EVERY_S, MarksSweeper, SweepPass
from relevo.models.registry import ModelRegistry
from relevo.models.trainer import Trainer
from relevo.models.training import PROPENSITY, Progress
from relevo.monitoring import metrics
from relevo.monitoring.logs import DECISION_ID
from relevo.monitoring.loop_lag import LoopLag
from relevo.monitoring.monitor import Monitoring
from relevo.monitoring.timed_store import timed
from relevo.project import Project, load_project
from relevo.rules import testing as rule_testing
from relevo.rules.engine import RuleSet
from relevo.rules.model import RuleSetValidationError, canonical_rule_set
from relevo.rules.outbox import Outbox
from relevo.rules.scheduler import TimerScheduler
from relevo.rules.stats import RuleStatsRecorder
from relevo.rules.webhooks import WebhookDeliverer, WebhookTarget
from relevo.serving.recommend import RecommendationService
from relevo.serving.results import Recommendations, ScoredVariants
from relevo.serving.served_model import load_version
from relevo.store import keys
from relevo.store.base import DocRead
from relevo.store.usage import usage_report
from relevo.versions import Versioned

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.backend: Backend = open_backend(settings, self.clock)
        self.store = timed(self.backend.store)  # relevo_store_operation_duration_seconds
        self.params = FeatureParams(
            session_timeout_ms=settings.session_timeout,
            affinity_half_life_ms=settings.affinity_half_life,
            consent_required=settings.consent_required,
        )
        self.project = load_project(settings.project_path)
        self.rules: Versioned[RuleSet] = Versioned(
            "rules",
            self.store,
            self.clock,
            validate=canonical_rule_set,
            compile=RuleSet.from_dict,
            empty={"rules": []},
        )
        self.placements: Versioned[Placements] = Versioned(
            "placements",
            self.store,
            self.clock,
            validate=canonical_placements,
            compile=Placements,
            empty={"placements": []},
        )
        self.experiments: Versioned[Experiments] = Versioned(
            "experiments",
            self.store,
            self.clock,
            validate=canonical_experiments,
            compile=Experiments,
            empty={"experiments": []},
        )
        self.flags: Versioned[Flags] = Versioned(
            "flags",
            self.store,
            self.clock,
            validate=canonical_flags,
            compile=Flags,
            empty={"flags": []},
        )
        self.configs: dict[str, Versioned[Any]] = {
            "rules": self.rules,
            "placements": self.placements,
            "experiments": self.experiments,
            "flags": self.flags,
        }
        self.outbox = Outbox(self.store, self.clock, settings.action_max_delay)
        self.rule_stats = RuleStatsRecorder(self.store)
        # Decoded item documents (and what the catalog alone determines) for decisions.
        self.catalog = CatalogCache(self.store, self.clock, settings.catalog_refresh)
        self.live = LiveModels(
            self.store,
            self.clock,
            covisitation_half_life_ms=settings.covisitation_half_life,
            trending_half_life_ms=settings.trending_half_life,
            catalog=self.catalog,
            trending_refresh_ms=settings.trending_refresh,
        )
        self.exposures = Exposures(self.store, self.clock)
        self.applier = Applier(
            self.store,
            self.params,
            Retention(settings.retention, settings.dedupe_horizon),
            self.clock,
            self.rules,
            self._apply_config,
            self.outbox,
            self.rule_stats,
            hooks=[self.live, self.exposures],
        )
        self.models = ModelRegistry(
            self.store,
            self.clock,
            settings.models_path,
            follow=[settings.serving_model, PROPENSITY],
            loader=load_version,
        )
        self.applier.handlers["models"] = self.models.apply
        self.monitoring = Monitoring(
            settings,
            self.store,
            self.clock,
            self.outbox,
            self.models,
            self.rule_stats,
            self.params,
            retrain=self._retrain_after_drift,
        )
        # The catalog cache is the last hook: it drops what it holds after the live models
        # indexed a catalog change.
        self.applier.hooks = (*self.applier.hooks, self.monitoring, self.catalog)
        self.exposures.credited = self.monitoring.credited
        self.committer = Committer(
            self.applier,
            self.backend.append,
            self.backend.applied,
            apply_profiles=settings.apply == "inline",
        )
        self._backlog = (0, 0)  # (checked at ms, records waiting)
        self.archiver = Archiver(self.backend.log, ArchiveWriter(settings.archive_path))
        self.serving = RecommendationService(
            self.store,
            self.clock,
            self.live,
            self.models,
            self.params,
            settings.serving_model,
            cache_ttl_ms=settings.answer_cache_ttl,
            catalog=self.catalog,
        )
        sources = CandidateSources(self.store, self.clock, self.live, self.serving)
        self.decisions = DecisionPipeline(
            self.store,
            self.clock,
            self.params,
            placements=self.placements,
            experiments=self.experiments,
            rules=self.rules,
            consent_required=settings.consent_required,
            personalized=sources.personalized,
            popular=sources.popular,
            model_version=self._served_version,
            catalog=self.catalog,
        )
        self._reports: dict[str, ExperimentReport] = {}
        self.trainer = Trainer(
            self.models,
            self.store,
            self._submit_models,
            settings.archive_path,
            self.params,
            before=self.archiver.flush,
        )
        self.scheduler = TimerScheduler(self.store, self._submit_firings, self.clock)
        self.webhooks = WebhookDeliverer(
            self.store,
            self.outbox,
            _webhook_targets(settings, self.project),
            self.clock,
            first_delay_s=settings.webhook_first_retry / 1000,
        )
        self.marks_sweeper = MarksSweeper(
            self.store, self.clock, settings.dedupe_horizon, settings.marks_sweep_every
        )
        self.background = Background()
        #: How late this process's event loop runs (with background jobs: serve, worker).
        self.loop_lag = LoopLag(metrics.LOOP_LAG.observe)
        self.dictionary_training = site_dictionaries.AutoTraining(
            self.store, settings.profile_dictionary_min_profiles
        )
        self.erasers = erasure.ErasureRegistry(self.clock)
        for eraser in (
            erasure.ArchiveEraser(settings.archive_path, self.clock),
            erasure.UserKeysEraser(self.store),
            erasure.RecentEventsEraser(self.store),
            # last: in embedded mode it also rewrites the snapshot of the (now erased) state
            erasure.FunctionEraser("event_log", self.backend.erase_user),
        ):
            self.erasers.register(eraser)
        self.started = False

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, *, background: bool = True, housekeeping: bool | None = None) -> None:
        """Recover state from the log, then accept work (and run background jobs if asked).

        `housekeeping`: with the background jobs, run the shared ones too (archiving,
        timer firing, compaction, retraining, the marks sweep, site-dictionary training,
        monitoring evaluation), each taken by one process at a time. By default every
        process does, except an API process in worker mode (``RELEVO_APPLY=worker``),
        which leaves them to the workers (`relevo worker` passes True): they come in
        bursts (an archive flush builds and writes thousands of rows at once), and in
        that topology the API processes are there to answer requests without delay.
        """
        await self.backend.open(self._apply_records, self._refresh_configs)
        await self.models.refresh()
        if self.settings.is_redis:
            await self._refresh_dictionaries()  # write with the site's dictionary from the start
        self.committer.start()
        self.started = True
        if housekeeping is None:
            housekeeping = self.settings.apply != "worker"
        if background:
            self.loop_lag.start()
            self._own_jobs()
            if housekeeping:
                self._shared_jobs()
        if self.project.rules is not None:
            await self.put_rules({"rules": self.project.rules})
        for kind in ("placements", "experiments", "flags"):
            section = getattr(self.project, kind)
            if section is not None:
                await self.put_config(kind, {kind: section})
        if self.settings.demo_catalog and await self.store.zcard(keys.ITEMS_INDEX) == 0:
            from relevo.demo.catalog import demo_items

            await self.upsert_items(demo_items())

    def _own_jobs(self) -> None:
        """What each process does for itself: follow the shared configuration, models
        and dictionary, flush its own counts, recover what its peers left in flight."""
        every = self.background.every
        if self.settings.is_redis:
            every(site_dictionaries.REFRESH_S, self._refresh_dictionaries, "relevo-dictionaries")
        every(self.backend.maintenance_every_s, self._maintain, "relevo-maintenance")
        every(1.0, self._refresh_configs, "relevo-config-refresh")
        every(5.0, self.rule_stats.flush, "relevo-rule-stats")
        every(1.0, self.models.refresh, "relevo-models-refresh")
        if self.webhooks.targets:
            every(1.0, self.webhooks.run_once, "relevo-webhooks")
        every(1.0, self.monitoring.flush, "relevo-monitoring-flush")

    def _shared_jobs(self) -> None:
        """The site's housekeeping, done by whichever process takes it (see `start`)."""
        every = self.background.every
        if self.settings.is_redis:
            every(
                site_dictionaries.TRAINING_CHECK_S,
                self.dictionary_training.run_once,
                "relevo-dictionary-training",
            )
        every(self.settings.archive_flush_every / 1000, self.archiver.flush, "relevo-archiver")
        every(1.0, self.scheduler.run_once, "relevo-timers")
        every(self.settings.compact_every / 1000, self.compact, "relevo-compaction")
        if self.settings.retrain_every:
            every(self.settings.retrain_every / 1000, self._retrain, "relevo-retrain")
        if self.settings.marks_sweep_every:
            every(
                min(CHECK_EVERY_S, self.settings.marks_sweep_every / 1000),
                self._sweep_marks,
                "relevo-marks-sweep",
            )
        every(self.settings.monitoring_every / 1000, self.monitoring.evaluate, "relevo-monitoring")

    async def stop(self) -> None:
        self.loop_lag.stop()
        await self.background.stop()
        await self.committer.stop()
        await self.decisions.drain()
        if self.started:
            for final in (
                self.archiver.flush,
                self.rule_stats.flush,
                self.monitoring.flush,
                self.scheduler.release,
            ):
                try:
                    await final()
                except Exception:  # stopping must not fail: what's left is in the log
                    log.exception("while stopping")
        self.started = False
        await self.monitoring.close()
        await self.trainer.close()
        await self.webhooks.close()
        await self.backend.close()

    async def _refresh_dictionaries(self) -> None:
        """Follow the store's active profile dictionary. One missing (a restore without
        it) is logged, not fatal: documents that name it cannot be read, the rest can."""
        try:
            await site_dictionaries.refresh(self.store)
        except MissingDictionary as error:
            log.error("%s", error.message)

    async def _maintain(self) -> None:
        await self.backend.maintain(self._apply_records)

    async def apply_records(self, records: Sequence[LogRecord]) -> None:
        """Apply log records (workers, recovery, replay): the same code as live traffic."""
        await self._apply_records(records)

    async def _apply_records(self, records: Sequence[LogRecord]) -> None:
        """Apply log records again (recovery and replay): same code as live traffic."""
        await self.applier.apply([(r.kind, orjson.loads(r.body)) for r in records])

    async def _check_backlog(self) -> None:
        """Refuse new events (503, retry later) while too many wait to be applied.

        The backlog is what the committer holds plus, on Redis, what the log holds
        unapplied (in flight, or not yet applied by workers), checked at most every 200 ms.
        """
        now = self.clock.now_ms()
        checked, waiting = self._backlog
        if now - checked >= 200:
            # Claim the refresh before awaiting it: otherwise every request arriving while
            # the count is being read reads it too (a pipeline of XINFO per partition each),
            # which took a sixth of an API process's CPU under load (bench.load).
            self._backlog = (now, waiting)
            waiting = self.committer.waiting + await self.backend.backlog()
            self._backlog = (now, waiting)
        if waiting > self.settings.max_lag:
            raise Overloaded(
                f"{waiting} events are waiting to be applied (limit {self.settings.max_lag}); "
                "retry shortly"
            )

    def _served_version(self) -> str | None:
        served = self.models.served(self.settings.serving_model)
        return None if served is None else f"{self.settings.serving_model}:{served.version}"

    async def _apply_config(self, record: dict[str, Any]) -> None:
        await self.configs[record["of"]].apply(record)

    async def _refresh_configs(self) -> None:
        for registry in self.configs.values():
            await registry.refresh()

    async def _submit_firings(self, firings: list[dict[str, Any]]) -> None:
        await self.committer.submit([Entry("timer", record) for record in firings])

    async def _submit_models(self, record: dict[str, Any]) -> None:
        await self.committer.submit([Entry("models", record)])

    async def _retrain(self) -> None:
        assert self.settings.retrain_every is not None
        names = [self.settings.serving_model, PROPENSITY]
        await self.trainer.retrain(names, self.settings.retrain_every)

    async def _retrain_after_drift(self) -> None:
        # The lease (an hour) keeps a drift seen by several processes to one retraining.
        await self.trainer.retrain([self.settings.serving_model, PROPENSITY], 3_600_000)

    # -- events -------------------------------------------------------------------------
    def limits(self) -> Limits:
        return Limits(
            now_ms=self.clock.now_ms(),
            future_tolerance_ms=self.settings.future_tolerance,
            max_properties_bytes=self.settings.max_properties_bytes,
            max_properties_depth=self.settings.max_properties_depth,
        )

    async def ingest(
        self, raws: list[Any], *, batch: bool = True, atomic: bool = False
    ) -> IngestReport:
        """Validate, deduplicate, log durably and apply events; report on each one."""
        if len(raws) > self.settings.max_batch:
            raise InvalidInput(
                f"a batch holds at most {self.settings.max_batch} events; got {len(raws)}",
                field="events",
                code="batch_too_large",
            )
        await self._check_backlog()
        limits = self.limits()
        try:
            records, report = validate_events(raws, limits, batch=batch, received_ms=limits.now_ms)
        except InvalidInput:
            self.monitoring.rejected(raws)
            raise
        if atomic and report.count("rejected"):
            self.monitoring.rejected(raws)
            raise InvalidBatch(report)
        valid = [record for record in records if record is not None]
        await catalog.enrich(self.store, valid)
        new = await self.committer.submit([Entry("event", r) for r in valid])
        if not all(new):  # duplicates are rare: the loop only when there are some
            outcome = iter(new)
            for result in report.results:
                if result.status == "accepted" and not next(outcome):
                    result.status = "duplicate"
        self.monitoring.ingested(
            raws, records, [result.status for result in report.results], limits.now_ms
        )
        return report

    async def recent_events(self, limit: int = 100) -> list[dict[str, Any]]:
        blobs = await self.store.list_range(keys.RECENT_EVENTS, 0, limit - 1)
        return [_public_event(orjson.loads(blob)) for blob in blobs]

    # -- catalog ------------------------------------------------------------------------
    async def upsert_items(self, raws: Sequence[Any]) -> int:
        if len(raws) > self.settings.max_batch:
            raise InvalidInput(
                f"a batch holds at most {self.settings.max_batch} items; got {len(raws)}",
                field="items",
                code="batch_too_large",
            )
        records = catalog.validate_items(raws, self.clock.now_ms())
        await self.committer.submit([Entry("item", record) for record in records])
        return len(records)

    async def remove_item(self, item_id: str) -> bool:
        """Take the item out of the catalog (a logged removal, applied in log order with
        the item's upserts); whether the catalog held it when asked."""
        return bool(await self.remove_items([item_id]))

    async def remove_items(self, item_ids: Sequence[str]) -> list[str]:
        """`remove_item` for several items at once; those the catalog held when asked."""
        existed = await catalog.get_items(self.store, item_ids)
        now = self.clock.now_ms()
        await self.committer.submit(
            [Entry("item", catalog.removal_record(item_id, now)) for item_id in item_ids]
        )
        return [item_id for item_id in item_ids if item_id in existed]

    async def item(self, item_id: str) -> dict[str, Any] | None:
        found = await catalog.get_items(self.store, [item_id])
        item = found.get(item_id)
        return None if item is None else _public_item(item)

    async def items(self, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Items by when they were first listed (``created_at``), oldest first: an order
        that updates do not move, so pages stay put; and how many there are."""
        members = await self.store.zrange_by_score(
            keys.ITEMS_INDEX, float("-inf"), float("inf"), offset=offset, limit=limit
        )
        found = await catalog.get_items(self.store, [member for member, _ in members])
        total = await self.store.zcard(keys.ITEMS_INDEX)
        return [_public_item(found[m]) for m, _ in members if m in found], total

    # -- profiles -----------------------------------------------------------------------
    async def profile(self, user_id: str) -> dict[str, Any] | None:
        (doc,) = await self.store.docs_read(
            [DocRead(keys.profile_key(user_id), keys.profile_marks_key(user_id))]
        )
        if doc.value is None:
            return None
        return render(decode(doc.value, self.store.dictionaries), self.clock.now_ms(), self.params)

    # -- rules --------------------------------------------------------------------------
    async def put_rules(self, raw: Any) -> dict[str, Any]:
        """Make `raw` the active rule set (a new version, unless it already is)."""
        try:
            record = await self.rules.put_record(_rules_body(raw))
        except RuleSetValidationError as error:
            raise rule_testing.rule_set_error(error) from None
        if record is not None:
            await self.committer.submit([Entry("config", record)])
        return {"version": self.rules.version, "changed": record is not None}

    async def validate_rules(self, raw: Any) -> dict[str, Any]:
        try:
            spec = self.rules.validate(_rules_body(raw))
        except RuleSetValidationError as error:
            raise rule_testing.rule_set_error(error) from None
        return {"valid": True, "rules": len(spec["rules"])}

    async def rollback_rules(self, version: str | None) -> dict[str, Any]:
        previous = self.rules.version
        record = await self.rules.rollback_record(version)
        await self.committer.submit([Entry("config", record)])
        return {"version": self.rules.version, "previous": previous}

    async def test_rules(self, request: dict[str, Any]) -> dict[str, Any]:
        """Evaluate a rule set (given, or the active one) without side effects."""
        return await rule_testing.run(self, request)

    async def actions(self, after: str | None, limit: int) -> dict[str, Any]:
        actions, cursor = await self.outbox.read(after, limit)
        return {"actions": actions, "next": cursor}

    # -- configuration (placements, experiments, flags) -----------------------------------
    async def put_config(self, kind: str, raw: Any) -> dict[str, Any]:
        """Replace one kind of configuration (a new version unless unchanged)."""
        registry = self.configs[kind]
        record = await registry.put_record(raw)
        if record is not None:
            await self.committer.submit([Entry("config", record)])
        return {"version": registry.version, "changed": record is not None}

    async def put_one(self, kind: str, entry: dict[str, Any], key: str = "id") -> dict[str, Any]:
        """Add or replace one placement, experiment or flag (by id or key).

        An error in the entry names its field within the entry (``variants[1].id``; the
        entry itself: ``body``), not within the whole configuration it was checked in."""
        spec = await self.configs[kind].spec()
        kept = [e for e in spec.get(kind, []) if e.get(key) != entry.get(key)]
        try:
            return await self.put_config(kind, {kind: [*kept, entry]})
        except InvalidInput as error:
            field, within = error.field or "", f"{kind}[{len(kept)}]"
            if field == within or field.startswith(within + "."):
                error.field = field[len(within) + 1 :] or "body"
            raise

    # -- decisions -------------------------------------------------------------------------
    async def decide(self, raw: Any) -> dict[str, Any]:
        """One answer for one placement and user; see `relevo.decisions.pipeline`."""
        request = parse_decide(raw)
        placement = self.placements.current.get(request.placement)
        if placement is None:
            raise NotFound(f"no placement {request.placement!r}", field="placement")
        started = time.perf_counter()
        decision = await self.decisions.decide(request, placement)
        elapsed = time.perf_counter() - started
        token = DECISION_ID.set(decision.decision_id)  # for what is logged meanwhile
        try:
            try:
                await self.exposures.record(decision)
            except RelevoError as error:  # the answer stands; only its bookkeeping is lost
                log.warning("decision %s not recorded: %s", decision.decision_id, error.message)
            body = decision.to_dict()
            self.monitoring.decided(body, elapsed, decision.at_ms)
            log.debug(
                "decided %s in %.1f ms (fallback: %s)",
                placement.id,
                elapsed * 1e3,
                body["fallback"],
            )
        finally:
            DECISION_ID.reset(token)
        return body

    async def experiment_results(self, experiment_id: str) -> dict[str, Any]:
        experiment = self.experiments.current.by_id.get(experiment_id)
        if experiment is None:
            raise NotFound(f"no experiment {experiment_id!r}", field="experiment_id")
        report = await experiment_results(self.store, experiment, self._reports.get(experiment_id))
        self._reports[experiment_id] = report
        return {
            "experiment": experiment.model_dump(mode="json"),
            "version": self.experiments.version,
            "results": report.model_dump(mode="json"),
        }

    async def set_experiment_status(self, experiment_id: str, status: str) -> dict[str, Any]:
        spec = await self.experiments.spec()
        found = next((e for e in spec["experiments"] if e["id"] == experiment_id), None)
        if found is None:
            raise NotFound(f"no experiment {experiment_id!r}", field="experiment_id")
        return await self.put_one("experiments", {**found, "status": status})

    async def evaluate_flags(self, user_id: str, context: dict[str, Any]) -> dict[str, Any]:
        state = await self.decisions._state(user_id)
        now = self.clock.now_ms()
        allowed = state is not None and personalization_allowed(
            state.consent, self.settings.consent_required
        )
        profile = ProfileView(
            state if allowed and state else ProfileState(user_id=user_id), now, self.params
        )
        values = {"profile": profile, "context": context, "now": to_datetime(now)}
        evaluated = self.flags.current.evaluate(user_id, values)
        return {
            "user_id": user_id,
            "version": self.flags.version,
            "flags": {key: found["value"] for key, found in evaluated.items()},
            "reasons": {key: found["reason"] for key, found in evaluated.items()},
        }

    # -- consent ------------------------------------------------------------------------
    async def consent_of(self, user_id: str) -> dict[str, bool]:
        """The purposes this user granted or refused (empty when never told)."""
        (doc,) = await self.store.docs_read(
            [DocRead(keys.profile_key(user_id), keys.profile_marks_key(user_id))]
        )
        return {} if doc.value is None else dict(decode(doc.value, self.store.dictionaries).consent)

    async def personalization_allowed(self, user_id: str) -> bool:
        """May a decision for this user be personalized? The contract for decisions.

        False → serve the placement's non-personalized default (and use no profile,
        segment or per-user model output). See `relevo.consent`.
        """
        return consent.personalization_allowed(
            await self.consent_of(user_id), self.settings.consent_required
        )

    async def set_consent(self, user_id: str, purposes: dict[str, bool]) -> dict[str, bool]:
        """Record consent as a `consent` event (logged, replayed, archived like any other)."""
        await self.ingest([consent.consent_event(user_id, purposes)], batch=False)
        return await self.consent_of(user_id)

    # -- erasure and retention ----------------------------------------------------------
    async def erase(self, user_id: str) -> erasure.Receipt:
        """Remove every trace of a user (see `relevo.erasure`); return the receipt."""
        async with self.archiver.lock:
            return await self.committer.exclusive(lambda: self.erasers.erase(user_id))

    async def sweep_marks(self) -> SweepPass | None:
        """A whole pass of the marks sweep now (`relevo.marks_sweep`); None when another
        process is sweeping."""
        return await self.marks_sweeper.run(force=True)

    async def _sweep_marks(self) -> None:
        await self.marks_sweeper.run(stopping=lambda: self.background.stopping)

    async def compact(self, grace_ms: int = DEFAULT_GRACE_MS) -> CompactionReport:
        """Apply erasures to the Parquet files and drop events past their retention."""
        return await asyncio.to_thread(
            compaction.compact,
            self.settings.archive_path,
            self.clock.now_ms(),
            self.settings.event_retention,
            grace_ms,
        )

    # -- models -------------------------------------------------------------------------
    async def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        context: dict[str, Any] | None = None,
        category: str | None = None,
        exclude_seen: bool = True,
        candidates: Sequence[str] | None = None,
    ) -> Recommendations:
        """Items for a user now: the promoted model blended with live signals (never fails
        for a model's sake; `fallback` says when the model did not contribute)."""
        return await self.serving.recommend(
            user_id,
            k,
            context=context,
            category=category,
            exclude_seen=exclude_seen,
            candidates=candidates,
        )

    async def similar_items(self, item_id: str, k: int = 10) -> Recommendations:
        return await self.serving.similar_items(item_id, k)

    async def score_variants(
        self,
        user_id: str | None,
        candidates: Sequence[dict[str, Any]],
        *,
        context: dict[str, Any] | None = None,
        target: str = "click",
    ) -> ScoredVariants:
        """Calibrated P(click) or P(convert) of each candidate item or content variant."""
        return await self.serving.score_variants(
            user_id, candidates, context=context, target=target
        )

    async def train_model(
        self,
        name: str,
        *,
        promote: bool = False,
        progress: Progress | None = None,
        in_worker: bool = False,
    ) -> dict[str, Any]:
        """Train `name` from the archive and register the version (`in_worker`: in a
        worker process, leaving this event loop free)."""
        executor = self.trainer.worker() if in_worker else None
        return await self.trainer.train(name, promote=promote, progress=progress, executor=executor)

    async def promote_model(self, name: str, version: str) -> dict[str, Any]:
        return await self.trainer.promote(name, version)

    async def rollback_model(self, name: str, version: str | None = None) -> dict[str, Any]:
        return await self.trainer.rollback(name, version)

    async def model_versions(self, name: str | None = None) -> list[dict[str, Any]]:
        names = [name] if name is not None else await self.models.names()
        return await self.models.listing(names)

    # -- operations ---------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        for name, probe in (("store", self.store.ping), ("log", self.backend.log.check)):
            try:
                await probe()
                checks[name] = {"ok": True}
            except RelevoError as error:
                checks[name] = {"ok": False, "error": error.message}
        healthy = all(check["ok"] for check in checks.values())
        return {
            "status": "ok" if healthy else "unavailable",
            "backend": self.store.backend,
            "checks": checks,
            "rules": {"version": self.rules.version},
        }

    async def stats(self) -> dict[str, Any]:
        """Events by type: all-time totals and counts in the usual windows (whole minutes)."""
        now = self.clock.now_ms()
        totals = await self.store.map_all(keys.EVENT_TOTALS)
        events: dict[str, Any] = {}
        for kind in sorted(totals):
            windows = {
                name: await self.store.periodic_sum(
                    keys.event_rate_key(kind), now - window, now, 60_000
                )
                for name, window in WINDOWS_MS.items()
                if name != "30d"
            }
            events[kind] = {"total": int(totals[kind]), **windows}
        return {"events": events, "items": await self.store.zcard(keys.ITEMS_INDEX)}

    async def store_usage(self, sample_per_kind: int = 100) -> dict[str, Any]:
        """Keys and bytes per kind of key, keys without TTL (see `Store.usage`)."""
        return usage_report(await self.store.usage(sample_per_kind))


def _rules_body(raw: Any) -> Any:
    """`{"rules": [...]}`, also accepting a bare list of rules."""
    if isinstance(raw, list):
        return {"rules": raw}
    if not isinstance(raw, dict) or "rules" not in raw:
        raise InvalidInput('expected {"rules": [...]}', field="rules", code="invalid_rules")
    return raw


def _webhook_targets(settings: Settings, project: Project) -> list[WebhookTarget]:
    targets = [
        WebhookTarget(w.name, w.url, w.secret, None if w.types is None else frozenset(w.types))
        for w in project.webhooks
    ]
    if settings.webhook_url:
        if not settings.webhook_secret:
            raise ConfigurationError(
                "RELEVO_WEBHOOK_URL needs RELEVO_WEBHOOK_SECRET (for the signature)"
            )
        targets.append(WebhookTarget("default", settings.webhook_url, settings.webhook_secret))
    return targets


def _public_event(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "timestamp": to_iso(record["timestamp"])}


def _public_item(record: dict[str, Any]) -> dict[str, Any]:
    public = {**record, "updated_at": to_iso(record["updated_at"])}
    if "created_at" in record:  # (documents written before items had one do not)
        public["created_at"] = to_iso(record["created_at"])
    return public
