#!/usr/bin/python
# Hokusai ML platform: Prometheus/Alertmanager health, targets down, firing alerts.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hokusai_prometheus_health
short_description: Report Prometheus and Alertmanager readiness, peers, targets down and firing alerts
description:
  - Asks Prometheus C(/-/ready), its active targets (C(/api/v1/targets)) and its alerts
    (C(/api/v1/alerts)), and Alertmanager C(/-/ready).
  - With O(prometheus_peers), reports which of those Prometheus servers this one scrapes as up
    (job C(prometheus), by C(host) label).
  - With two or more O(alertmanager_peers), asks Alertmanager C(/api/v2/status) and reports which
    of them it sees as members of its cluster (by address).
  - Unhealthy when Prometheus or Alertmanager is not ready, a peer is missing (named), a target is
    down (named by job and instance, with the scrape error), or an alert fires whose name is not
    in O(ignore_alerts). Pending alerts are not counted.
  - Reports only; an unhealthy state is a normal result (C(healthy=false)).
author:
  - Hokusai ML platform team
options:
  url:
    description: Base URL of Prometheus.
    type: str
    default: http://127.0.0.1:9090
  alertmanager_url:
    description: Base URL of Alertmanager. Empty skips the Alertmanager check.
    type: str
    default: http://127.0.0.1:9093
  prometheus_peers:
    description:
      - C(host) labels of every Prometheus server (this one included) that the C(prometheus) job
        must scrape as up. Empty skips the check.
    type: list
    elements: str
    default: []
  alertmanager_peers:
    description:
      - Every Alertmanager of the cluster (this one included), each C(name) or C(name=address).
        A name alone is resolved (DNS, /etc/hosts) on the host the module runs on; an address
        (IP, optionally with a port) is compared with the peers' gossip addresses.
      - Fewer than two skips the cluster check (a single Alertmanager runs without gossip).
    type: list
    elements: str
    default: []
  ignore_alerts:
    description:
      - Names of alerts that do not make the platform unhealthy when they fire.
      - C(Watchdog) fires all the time by design (the alerting pipeline heartbeat).
    type: list
    elements: str
    default: [Watchdog]
  ca_path:
    description: CA certificate file, when Prometheus or Alertmanager serve HTTPS.
    type: path
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: int
    default: 5
notes:
  - Supports check mode; the module only reads.
"""

EXAMPLES = r"""
- name: Health | Prometheus, Alertmanager, targets, alerts
  hokusai_prometheus_health:
    ignore_alerts: [Watchdog]
  register: prometheus_health

- name: Health | the monitoring pair, each seen from both sides
  hokusai_prometheus_health:
    prometheus_peers: "{{ groups['monitoring'] }}"
    alertmanager_peers: "{{ groups['monitoring'] }}"
  register: prometheus_health
"""

RETURN = r"""
healthy:
  description: True when every check passed.
  returned: always
  type: bool
problems:
  description: One sentence per failed check.
  returned: always
  type: list
  elements: str
  sample: ["prometheus target minio_node/minio4:9000: down (Get ...: connection refused)"]
checks:
  description: Every check (readiness, one per target down, one per firing alert).
  returned: always
  type: list
  elements: dict
targets_up:
  description: Number of active targets that are up.
  returned: always
  type: int
targets_total:
  description: Number of active targets.
  returned: always
  type: int
targets_down:
  description: The targets that are not up, as job, instance and last error.
  returned: always
  type: list
  elements: dict
firing:
  description: Firing alerts (name and labels), ignored ones included, each with an C(ignored) flag.
  returned: always
  type: list
  elements: dict
prometheus_peers_up:
  description: The expected Prometheus servers this one scrapes as up.
  returned: always
  type: list
  elements: str
alertmanager_cluster:
  description:
    - What Alertmanager reports about its cluster - status, the peers' addresses, the expected members
      seen and missing. Empty when the cluster check is skipped.
  returned: always
  type: dict
  sample: {"status": "ready", "peers": ["172.28.10.51:9094"], "seen": ["mon1"], "missing": ["mon2"]}
"""

import socket  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
from ansible.module_utils.hokusai_health import check, http_get, summarize  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports

COMPONENT = "prometheus"
# Labels that say where an alert is, most specific first.
_WHERE_LABELS = ("instance", "host", "name", "job")


def ready_check(name, resp):
    if resp["status"] == 200:
        return check(name, True, "ready")
    return check(name, False, f"not ready: {resp['error']}")


def target_checks(targets_doc, targets_error=None):
    """/api/v1/targets -> (checks, up, total, down list)."""
    if not isinstance(targets_doc, dict) or targets_doc.get("status") != "success":
        return [check("targets", False, targets_error or "no target list")], 0, 0, []
    active = (targets_doc.get("data") or {}).get("activeTargets") or []
    down = [
        {
            "job": t.get("labels", {}).get("job") or t.get("scrapePool"),
            "instance": t.get("labels", {}).get("instance") or t.get("scrapeUrl"),
            "health": t.get("health"),
            "error": t.get("lastError") or "",
        }
        for t in active
        if t.get("health") != "up"
    ]
    down.sort(key=lambda d: (d["job"] or "", d["instance"] or ""))
    up = len(active) - len(down)
    # The count is a row of its own only when no target is down; otherwise each down target is one.
    checks = (
        []
        if down
        else [check("targets", bool(active), f"{up}/{len(active)} up" if active else "no active targets")]
    )
    for d in down:
        reason = d["error"] or d["health"]
        checks.append(check(f"target {d['job']}/{d['instance']}", False, f"{d['health']} ({reason})"))
    return checks, up, len(active), down


def alert_checks(alerts_doc, ignore, alerts_error=None):
    """/api/v1/alerts -> (checks, firing list). Pending alerts do not count."""
    if not isinstance(alerts_doc, dict) or alerts_doc.get("status") != "success":
        return [check("alerts", False, alerts_error or "no alert list")], []
    firing = []
    for alert in (alerts_doc.get("data") or {}).get("alerts") or []:
        if alert.get("state") != "firing":
            continue
        labels = alert.get("labels") or {}
        firing.append(
            {
                "alertname": labels.get("alertname"),
                "labels": labels,
                "summary": (alert.get("annotations") or {}).get("summary", ""),
                "ignored": labels.get("alertname") in ignore,
            }
        )
    firing.sort(key=lambda a: (a["alertname"] or "", sorted(a["labels"].items())))
    counted = [a for a in firing if not a["ignored"]]
    ignored = sorted({a["alertname"] for a in firing if a["ignored"]})
    detail = f"{len(counted)} firing" + (f" (ignored: {', '.join(ignored)})" if ignored else "")
    checks = [] if counted else [check("alerts", True, detail)]
    for a in counted:
        where = next((a["labels"][k] for k in _WHERE_LABELS if a["labels"].get(k)), "")
        name = f"alert {a['alertname']}" + (f" on {where}" if where else "")
        severity = a["labels"].get("severity", "")
        checks.append(
            check(name, False, f"firing{f' ({severity})' if severity else ''}: {a['summary']}".rstrip(": "))
        )
    return checks, firing


def prometheus_peer_check(targets_doc, peers):
    """Which expected Prometheus servers (host labels) the `prometheus` job scrapes as up."""
    active = ((targets_doc or {}).get("data") or {}).get("activeTargets") or []
    state = {}
    for t in active:
        labels = t.get("labels") or {}
        if labels.get("job") == "prometheus" and labels.get("host"):
            state[labels["host"]] = t.get("health")
    up = [p for p in peers if state.get(p) == "up"]
    missing = [
        f"{p} ({'not scraped' if p not in state else state[p] or 'unknown'})" for p in peers if p not in up
    ]
    detail = f"{len(up)}/{len(peers)} up: {', '.join(up) or 'none'}"
    if missing:
        detail += f"; missing {', '.join(missing)}"
    return check("Prometheus peers", not missing, detail), up


def split_peer(spec):
    """'mon1' -> ('mon1', None); 'mon1=172.28.10.51:9094' -> ('mon1', '172.28.10.51:9094')."""
    name, sep, address = spec.partition("=")
    return name.strip(), (address.strip() or None) if sep else None


def address_host(address):
    """'172.28.10.51:9094' -> '172.28.10.51'; '[fd00::1]:9094' -> 'fd00::1'; a bare IP stays."""
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    if address.count(":") == 1:
        return address.rsplit(":", 1)[0]
    return address


def resolve(name):
    """Every IP address NAME resolves to on this host (empty when it does not resolve)."""
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(name, None)})
    except (OSError, UnicodeError):
        return []


def alertmanager_cluster_check(status_resp, peers, resolver=None):
    """Which expected Alertmanagers (name or name=address) this one sees in its cluster.
    RESOLVER (name -> IP addresses) defaults to resolve()."""
    resolver = resolver or resolve
    doc = status_resp["json"] if isinstance(status_resp.get("json"), dict) else None
    if doc is None:
        reason = status_resp["error"] or "no cluster status"
        return check("Alertmanager cluster", False, f"no status: {reason}"), {}
    cluster = doc.get("cluster") or {}
    status = cluster.get("status") or "unknown"
    addresses = sorted(p.get("address", "") for p in cluster.get("peers") or [])
    hosts = {address_host(a) for a in addresses}
    seen, missing = [], []
    for spec in peers:
        name, address = split_peer(spec)
        candidates = [address_host(address)] if address else [name, *resolver(name)]
        if hosts.intersection(candidates):
            seen.append(name)
        else:
            where = address or ", ".join(candidates[1:]) or "does not resolve"
            missing.append(f"{name} ({where})")
    detail = f"{status}, {len(seen)}/{len(peers)} members: {', '.join(seen) or 'none'}"
    if missing:
        detail += f"; missing {', '.join(missing)}"
    healthy = status == "ready" and not missing
    if status == "disabled":
        detail = f"gossip disabled (a single Alertmanager), {len(peers)} expected"
    info = {
        "status": status,
        "peers": addresses,
        "seen": seen,
        "missing": [m.split(" ", 1)[0] for m in missing],
    }
    return check("Alertmanager cluster", healthy, detail), info


def evaluate(
    ready_resp,
    targets_resp,
    alerts_resp,
    am_resp,
    ignore,
    prometheus_peers=(),
    am_status_resp=None,
    alertmanager_peers=(),
    resolver=None,
):
    """Pure decision on the answers (am_resp None: Alertmanager not checked; am_status_resp None:
    its cluster not checked)."""
    checks = [ready_check("Prometheus", ready_resp)]
    if am_resp is not None:
        checks.append(ready_check("Alertmanager", am_resp))
    peers_up = []
    if prometheus_peers:
        peer_check, peers_up = prometheus_peer_check(targets_resp["json"], list(prometheus_peers))
        checks.append(peer_check)
    cluster = {}
    if am_status_resp is not None:
        cluster_check, cluster = alertmanager_cluster_check(
            am_status_resp, list(alertmanager_peers), resolver
        )
        checks.append(cluster_check)
    t_checks, up, total, down = target_checks(targets_resp["json"], targets_resp["error"])
    a_checks, firing = alert_checks(alerts_resp["json"], ignore, alerts_resp["error"])
    return summarize(
        COMPONENT,
        checks + t_checks + a_checks,
        targets_up=up,
        targets_total=total,
        targets_down=down,
        firing=firing,
        prometheus_peers_up=peers_up,
        alertmanager_cluster=cluster,
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "default": "http://127.0.0.1:9090"},
            "alertmanager_url": {"type": "str", "default": "http://127.0.0.1:9093"},
            "prometheus_peers": {"type": "list", "elements": "str", "default": []},
            "alertmanager_peers": {"type": "list", "elements": "str", "default": []},
            "ignore_alerts": {"type": "list", "elements": "str", "default": ["Watchdog"]},
            "ca_path": {"type": "path"},
            "timeout": {"type": "int", "default": 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    base = p["url"].rstrip("/")

    def http(url):
        return http_get(url, ca_path=p["ca_path"], timeout=p["timeout"])

    am_base = p["alertmanager_url"].rstrip("/")
    am_resp = http(am_base + "/-/ready") if am_base else None
    clustered = bool(am_base) and len(p["alertmanager_peers"]) > 1
    result = evaluate(
        http(base + "/-/ready"),
        http(base + "/api/v1/targets?state=active"),
        http(base + "/api/v1/alerts"),
        am_resp,
        p["ignore_alerts"],
        prometheus_peers=p["prometheus_peers"],
        am_status_resp=http(am_base + "/api/v2/status") if clustered else None,
        alertmanager_peers=p["alertmanager_peers"],
    )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
