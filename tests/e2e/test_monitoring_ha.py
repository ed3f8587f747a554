"""The monitoring pair has no single point of failure (`make e2e`).

mon1 and mon2 each run Prometheus (same rules, every alert sent to both
Alertmanagers, the `replica` label dropped) and an Alertmanager; the two
Alertmanagers form a cluster. Every notification lands in the webhook receiver
on ops1 (/var/lib/alert-webhook-receiver/alerts.jsonl), which is what these
tests read. A real service is stopped each time and always started again:

1. both pairs up: the node exporter on ops1 stops, InstanceDown for ops1
   reaches the receiver exactly once (two Prometheus servers fire it, two
   Alertmanagers receive it, the cluster notifies once);
2. one Prometheus down and the *other* host's Alertmanager down: the alert
   raised by the stop (PrometheusPeerDown) still arrives, once - it can only
   travel from the surviving Prometheus to the surviving Alertmanager on the
   other host;
3. the Alertmanager that notifies first stopped, the node exporter on ops1
   stopped again: InstanceDown arrives once, sent by the other Alertmanager.

"Once" is checked over a window after the first arrival: a second
Alertmanager that does not learn of the first one's notification sends its
copy one peer timeout (15 s) later, so the window is twice that. The lab's
short timings (group_wait 10 s, 10 s evaluation, `for: 10s` on these alerts)
keep each case under a minute. Timings are printed.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

MON = {"mon1": "172.28.10.51", "mon2": "172.28.10.52"}
RECEIVER = "ops1"
LOG = "/var/lib/alert-webhook-receiver/alerts.jsonl"
NODE_EXPORTER = "prometheus-node-exporter"
# alertmanager_cluster_peer_timeout (the role's default): how long the second
# member waits before it sends what the first did not.
PEER_TIMEOUT = 15.0
DUPLICATE_WINDOW = 2 * PEER_TIMEOUT
ARRIVAL_TIMEOUT = 120.0
# What these tests make fire; resolved again before the module ends.
RAISED = (
    f'ALERTS{{alertname="InstanceDown", host="{RECEIVER}", alertstate="firing"}}'
    ' or ALERTS{alertname=~"PrometheusPeerDown|AlertmanagerClusterDegraded", alertstate="firing"}'
)


def container(host: str) -> str:
    return f"hokusai-lab-{host}"


def on(host: str, *cmd: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["docker", "exec", container(host), *cmd], capture_output=True, text=True, timeout=60, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{host}: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 1.0) -> T:
    """PROBE until it returns something truthy; AssertionError after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - a failing probe means "not yet"
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what}: not within {timeout:.0f} s" + (f" (last error: {last})" if last else "")
            )
        time.sleep(interval)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - http URLs built here, lab addresses only
        return json.load(resp)


def prometheus_query(query: str) -> list[dict]:
    """Ask whichever Prometheus answers (one of them may be stopped on purpose)."""
    errors = []
    for host, ip in MON.items():
        try:
            url = f"http://{ip}:9090/api/v1/query?" + urllib.parse.urlencode({"query": query})
            return get_json(url)["data"]["result"]
        except OSError as exc:
            errors.append(f"{host}: {exc}")
    raise RuntimeError("no Prometheus answers: " + "; ".join(errors))


def cluster_peers(host: str) -> list[str]:
    return sorted(
        p["address"] for p in get_json(f"http://{MON[host]}:9093/api/v2/status")["cluster"]["peers"]
    )


def peer_position(host: str) -> int:
    """alertmanager_peer_position: 0 notifies at once, 1 waits one peer timeout."""
    with urllib.request.urlopen(f"http://{MON[host]}:9093/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("alertmanager_peer_position "):
                return int(float(line.split()[1]))
    raise AssertionError(f"{host}: Alertmanager exports no alertmanager_peer_position (gossip off?)")


def full_cluster() -> bool:
    expected = sorted(f"{ip}:9094" for ip in MON.values())
    return all(cluster_peers(h) == expected for h in MON)


def notifications() -> list[dict]:
    text = on(RECEIVER, "sh", "-c", f"cat {LOG} 2>/dev/null || true")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def entries(notes: list[dict], alertname: str, host: str, after: float = 0.0) -> list[dict]:
    """Every alert of ALERTNAME for HOST in the notifications received after AFTER, with
    the status it had, the Alertmanager that sent it and what the whole notification said
    (its group and every alert's fingerprint and status)."""
    out = []
    for note in notes:
        if note["received_at"] < after:
            continue
        payload = note["payload"]
        content = (
            payload.get("groupKey"),
            tuple(sorted((a["fingerprint"], a["status"]) for a in payload.get("alerts", []))),
        )
        for alert in payload.get("alerts", []):
            labels = alert["labels"]
            if labels.get("alertname") == alertname and labels.get("host") == host:
                out.append(
                    {
                        "status": alert["status"],
                        "received_at": note["received_at"],
                        "sender": payload.get("externalURL", ""),
                        "labels": labels,
                        "content": content,
                    }
                )
    return out


def settled(alertname: str, host: str) -> bool:
    """Neither firing in Prometheus nor left firing at the receiver (its resolved
    notification arrived): a new firing of it is news to the Alertmanagers."""
    if prometheus_query(f'ALERTS{{alertname="{alertname}", host="{host}"}}'):
        return False
    seen = entries(notifications(), alertname, host)
    return not seen or seen[-1]["status"] == "resolved"


@contextmanager
def stopped(host: str, unit: str) -> Iterator[None]:
    on(host, "systemctl", "stop", unit)
    try:
        yield
    finally:
        on(host, "systemctl", "start", unit)


def arrives_once(alertname: str, host: str, t0: float) -> list[dict]:
    """Wait for the firing notification of ALERTNAME/HOST received after T0, then watch the
    duplicate window; return every firing entry of it received since T0.

    The caller asserts that there is exactly one. Where other alerts of the same group
    change meanwhile (a busy lab), Alertmanager legitimately notifies the group again,
    listing this alert with the others: such a notification differs in content from the
    first, whereas a copy from a second Alertmanager repeats it exactly. ``distinct``
    tells them apart."""

    def firing() -> list[dict]:
        return [e for e in entries(notifications(), alertname, host, after=t0) if e["status"] == "firing"]

    first = wait_for(firing, ARRIVAL_TIMEOUT, f"{alertname} for {host} at the receiver")
    arrived = first[0]["received_at"]
    sender = first[0]["sender"]
    print(f"\n[monitoring-ha] {alertname} for {host}: {arrived - t0:.1f} s after the stop, from {sender}")
    # A copy from the second Alertmanager would come one peer timeout after the first.
    while time.time() < arrived + DUPLICATE_WINDOW:
        time.sleep(1)
    seen = firing()
    print(f"[monitoring-ha] {len(seen)} firing notification(s) of it within {DUPLICATE_WINDOW:.0f} s")
    return seen


def distinct(seen: list[dict]) -> list[dict]:
    """Leave out group updates (another alert of the group changed): what remains are copies."""
    first = seen[0]["content"]
    return [seen[0]] + [e for e in seen[1:] if e["content"] == first]


@pytest.fixture(scope="module", autouse=True)
def monitoring_pair() -> Iterator[None]:
    """Both pairs healthy before; afterwards the alerts these tests raised are resolved again,
    so that health.yml after them sees a quiet platform."""
    wait_for(full_cluster, 60, "both Alertmanagers in one cluster")
    wait_for(
        lambda: len(prometheus_query('up{job="prometheus"} == 1')) == len(MON),
        60,
        "both Prometheus servers scraping each other",
    )
    yield
    wait_for(
        lambda: not prometheus_query(RAISED),
        120,
        "the alerts raised by these tests resolved",
        interval=2,
    )


def test_alert_arrives_once_with_both_pairs_up() -> None:
    wait_for(
        lambda: settled("InstanceDown", RECEIVER), 120, "no InstanceDown for ops1 outstanding", interval=2
    )
    assert full_cluster()
    t0 = time.time()
    with stopped(RECEIVER, NODE_EXPORTER):
        firing = arrives_once("InstanceDown", RECEIVER, t0)
    copies = distinct(firing)
    assert len(copies) == 1, f"InstanceDown for ops1 notified {len(copies)} times: {copies}"
    # The replica label is dropped: both Prometheus servers' alerts are one alert.
    assert "replica" not in firing[0]["labels"], firing[0]["labels"]


def test_alert_crosses_from_the_surviving_prometheus_to_the_other_alertmanager() -> None:
    """One Prometheus stops, and the Alertmanager on the other host: the alert can only go
    from the surviving Prometheus to the surviving Alertmanager across hosts."""
    am_host = next(h for h in MON if peer_position(h) == 0)
    prom_host = next(h for h in MON if h != am_host)
    wait_for(
        lambda: settled("PrometheusPeerDown", prom_host),
        120,
        f"no PrometheusPeerDown for {prom_host} outstanding",
    )
    t0 = time.time()
    with stopped(prom_host, "prometheus"), stopped(am_host, "prometheus-alertmanager"):
        firing = distinct(arrives_once("PrometheusPeerDown", prom_host, t0))
    assert len(firing) == 1, f"PrometheusPeerDown for {prom_host} notified {len(firing)} times: {firing}"
    assert prom_host in firing[0]["sender"], (
        f"sent by {firing[0]['sender']}, expected {prom_host}'s Alertmanager"
    )
    wait_for(full_cluster, 60, "the stopped Alertmanager back in the cluster")


def test_alert_arrives_once_with_the_first_alertmanager_down() -> None:
    wait_for(full_cluster, 60, "both Alertmanagers in one cluster")
    first = next(h for h in MON if peer_position(h) == 0)
    other = next(h for h in MON if h != first)
    wait_for(
        lambda: settled("InstanceDown", RECEIVER), 120, "no InstanceDown for ops1 outstanding", interval=2
    )
    t0 = time.time()
    with stopped(first, "prometheus-alertmanager"), stopped(RECEIVER, NODE_EXPORTER):
        firing = distinct(arrives_once("InstanceDown", RECEIVER, t0))
    assert len(firing) == 1, f"InstanceDown for ops1 notified {len(firing)} times: {firing}"
    assert other in firing[0]["sender"], f"sent by {firing[0]['sender']}, expected {other}'s Alertmanager"
    wait_for(full_cluster, 60, "the stopped Alertmanager back in the cluster")
