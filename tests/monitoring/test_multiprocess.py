"""With PROMETHEUS_MULTIPROC_DIR, counters live in files that any process's scrape sums.

Two processes count events (subprocesses: the variable must be set before
prometheus_client is imported); a third one renders `/metrics`'s text and sees both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

COUNT = """
import sys
from relevo.monitoring import metrics
metrics.count_events([("view", "accepted")] * int(sys.argv[1]), [0.5] * int(sys.argv[1]))
"""

SCRAPE = """
import json
from prometheus_client.parser import text_string_to_metric_families
from relevo.monitoring.metrics import SharedState, exposition
text = exposition(SharedState(timers_pending=2)).decode()
found = {
    sample.name: sample.value
    for family in text_string_to_metric_families(text)
    for sample in family.samples
    if sample.labels.get("type") == "view"
    or sample.name in ("relevo_timers_pending", "relevo_event_lag_seconds_count")
}
print(json.dumps(found))
"""


def run(script: str, multiproc: Path, *args: str) -> str:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_scrape_sums_every_process(tmp_path: Path) -> None:
    run(COUNT, tmp_path, "3")
    run(COUNT, tmp_path, "4")
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process
    scraped = json.loads(run(SCRAPE, tmp_path).strip().splitlines()[-1])
    assert scraped == {
        "relevo_events_total": 7.0,
        "relevo_event_lag_seconds_count": 7.0,
        "relevo_timers_pending": 2.0,
    }
