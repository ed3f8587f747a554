#!/usr/bin/python
# Hokusai ML platform: Prometheus/Alertmanager health, targets down, firing alerts.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hokusai_prometheus_health
short_description: Report Prometheus and Alertmanager readiness, targets down and firing alerts
description:
  - Asks Prometheus C(/-/ready), its active targets (C(/api/v1/targets)) and its alerts
    (C(/api/v1/alerts)), and Alertmanager C(/-/ready).
  - Unhealthy when Prometheus or Alertmanager is not ready, a target is down (named by job and
    instance, with the scrape error), or an alert fires whose name is not in O(ignore_alerts).
    Pending alerts are not counted.
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
"""

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


def evaluate(ready_resp, targets_resp, alerts_resp, am_resp, ignore):
    """Pure decision on the four answers (am_resp None: Alertmanager not checked)."""
    checks = [ready_check("Prometheus", ready_resp)]
    if am_resp is not None:
        checks.append(ready_check("Alertmanager", am_resp))
    t_checks, up, total, down = target_checks(targets_resp["json"], targets_resp["error"])
    a_checks, firing = alert_checks(alerts_resp["json"], ignore, alerts_resp["error"])
    return summarize(
        COMPONENT,
        checks + t_checks + a_checks,
        targets_up=up,
        targets_total=total,
        targets_down=down,
        firing=firing,
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "default": "http://127.0.0.1:9090"},
            "alertmanager_url": {"type": "str", "default": "http://127.0.0.1:9093"},
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

    am_resp = http(p["alertmanager_url"].rstrip("/") + "/-/ready") if p["alertmanager_url"] else None
    result = evaluate(
        http(base + "/-/ready"),
        http(base + "/api/v1/targets?state=active"),
        http(base + "/api/v1/alerts"),
        am_resp,
        p["ignore_alerts"],
    )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
