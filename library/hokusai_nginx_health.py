#!/usr/bin/python
# Hokusai ML platform: nginx load balancer health (stub_status, upstreams reachable).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hokusai_nginx_health
short_description: Report the health of the nginx load balancer (stub_status, upstreams reachable from it)
description:
  - Asks nginx's C(stub_status) page (role nginx_lb serves it on C(127.0.0.1:8080)) and reports
    active connections and request counters.
  - Asks every upstream URL (for example each MLflow instance's C(/health)) from the load balancer
    host itself, so that a firewall or routing problem between the load balancer and an upstream
    shows up; each upstream must answer 200.
  - The MLflow API through the load balancer (TLS, authentication) is checked by
    M(hokusai_mlflow_health) with O(hokusai_mlflow_health#module:api_url); this module covers nginx itself.
  - Reports only; an unhealthy load balancer is a normal result (C(healthy=false)).
author:
  - Hokusai ML platform team
options:
  stub_status_url:
    description: URL of the stub_status page.
    type: str
    default: http://127.0.0.1:8080/stub_status
  upstreams:
    description: URLs of the upstreams to ask from this host; each must answer 200.
    type: list
    elements: str
    default: []
  pool_stats_url:
    description:
      - CSV statistics of the instance pool, that is HAProxy's C(/stats;csv) on the pool's metrics port
        (role nginx_lb).
        Every checked instance entry must be UP, in rotation after its active checks.
      - Empty to skip.
    type: str
    default: ""
  vip:
    description:
      - The floating address (role keepalived). Reports whether this host holds it (C(vip_held));
        holding it or not is not a failure here, the caller compares the load balancers.
      - Empty to skip.
    type: str
    default: ""
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: int
    default: 5
notes:
  - Supports check mode; the module only reads.
"""

EXAMPLES = r"""
- name: Health | nginx and the MLflow instances behind it
  hokusai_nginx_health:
    upstreams:
      - http://10.0.0.31:5000/health
      - http://10.0.0.32:5000/health
  register: nginx_health
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
  sample: ["nginx upstream http://172.28.10.32:5000/health: no answer: connection refused"]
checks:
  description: Every check (stub_status, one per upstream).
  returned: always
  type: list
  elements: dict
vip_held:
  description: Whether this host holds O(vip); null when O(vip) is empty.
  returned: always
  type: bool
pool:
  description: The instance pool's checked entries (backend, name, status, last check), or null.
  returned: always
  type: list
  elements: dict
  sample: [{"backend": "mlflow_api", "server": "mlflow1", "status": "UP", "check": "L7OK"}]
stub_status:
  description: The parsed stub_status counters, or null.
  returned: always
  type: dict
  sample: {"active": 2, "accepts": 36, "handled": 36, "requests": 67, "reading": 0, "writing": 1,
           "waiting": 1}
"""

import csv  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
import io  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
import re  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
from ansible.module_utils.hokusai_health import check, http_get, summarize  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports

COMPONENT = "nginx"
_STUB_RE = re.compile(
    r"Active connections:\s*(?P<active>\d+).*?"
    r"(?P<accepts>\d+)\s+(?P<handled>\d+)\s+(?P<requests>\d+).*?"
    r"Reading:\s*(?P<reading>\d+)\s+Writing:\s*(?P<writing>\d+)\s+Waiting:\s*(?P<waiting>\d+)",
    re.DOTALL,
)


def parse_stub_status(text):
    """stub_status text -> dict of ints, or None when it is not a stub_status page."""
    match = _STUB_RE.search(text or "")
    return {k: int(v) for k, v in match.groupdict().items()} if match else None


# The pool's backend that carries no traffic: one entry per instance, UP while
# that instance reports the artifact store refusing writes (roles/nginx_lb).
REFUSALS_BACKEND = "mlflow_store_refusals"


def parse_pool_csv(text):
    """HAProxy CSV statistics -> the checked server entries (no fallbacks, frontends or backends)."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("# "):
        return None
    rows = csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    return [
        {
            "backend": r["pxname"],
            "server": r["svname"],
            "status": r["status"],
            "check": r.get("check_status", ""),
        }
        for r in rows
        if r["svname"] not in ("FRONTEND", "BACKEND") and not r["svname"].endswith("-fallback")
    ]


def evaluate_pool(pool_resp):
    """Checks for the instance pool: every checked entry UP, no instance seeing writes refused."""
    if pool_resp is None:
        return [], None
    pool = parse_pool_csv(pool_resp["body"]) if pool_resp["status"] == 200 else None
    if pool is None:
        return [check("pool", False, pool_resp["error"] or "the answer is not HAProxy CSV statistics")], None
    if not pool:
        return [check("pool", False, "no instance in the pool")], pool
    checks = []
    for entry in pool:
        up = entry["status"] == "UP"
        if entry["backend"] == REFUSALS_BACKEND:
            # Not for traffic: UP means this instance's probe sees the artifact store refuse writes.
            checks.append(
                check(
                    f"artifact store writable, as {entry['server']} sees it",
                    not up,
                    "refuses writes: MinIO write quorum lost (uploads are refused)" if up else "yes",
                )
            )
            continue
        checks.append(
            check(
                f"pool {entry['backend']}/{entry['server']}",
                up,
                "in rotation" if up else f"{entry['status']} (last check {entry['check'] or 'none'})",
            )
        )
    return checks, pool


def evaluate(stub_resp, upstream_resps, pool_resp=None, vip=None, vip_held=None):
    """Pure decision on stub_status, each upstream's answer, the pool's statistics and the address."""
    checks = []
    stub = parse_stub_status(stub_resp["body"]) if stub_resp["status"] == 200 else None
    if stub:
        dropped = stub["accepts"] - stub["handled"]
        detail = f"{stub['active']} active connections, {stub['requests']} requests"
        checks.append(
            check("stub_status", True, detail + (f", {dropped} connections dropped" if dropped else ""))
        )
    else:
        checks.append(
            check("stub_status", False, stub_resp["error"] or "the answer is not a stub_status page")
        )
    for resp in upstream_resps:
        if resp["status"] == 200:
            checks.append(check(f"upstream {resp['url']}", True, "HTTP 200"))
        else:
            checks.append(check(f"upstream {resp['url']}", False, resp["error"]))
    pool_checks, pool = evaluate_pool(pool_resp)
    checks.extend(pool_checks)
    if vip:
        checks.append(check("vip", True, f"holds {vip}" if vip_held else f"standby for {vip}"))
    return summarize(COMPONENT, checks, stub_status=stub, pool=pool, vip_held=vip_held if vip else None)


def holds_address(ip_output, address):
    """Whether `ip -o -4 addr show` output lists the address."""
    return any(f" {address}/" in line for line in (ip_output or "").splitlines())


def main():
    module = AnsibleModule(
        argument_spec={
            "stub_status_url": {"type": "str", "default": "http://127.0.0.1:8080/stub_status"},
            "upstreams": {"type": "list", "elements": "str", "default": []},
            "pool_stats_url": {"type": "str", "default": ""},
            "vip": {"type": "str", "default": ""},
            "timeout": {"type": "int", "default": 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    stub_resp = http_get(p["stub_status_url"], timeout=p["timeout"])
    upstream_resps = [http_get(url, timeout=p["timeout"]) for url in p["upstreams"]]
    pool_resp = http_get(p["pool_stats_url"], timeout=p["timeout"]) if p["pool_stats_url"] else None
    vip_held = None
    if p["vip"]:
        rc, out, err = module.run_command(["ip", "-o", "-4", "addr", "show"])
        if rc != 0:
            module.fail_json(msg=f"ip addr show failed: {err.strip()}")
        vip_held = holds_address(out, p["vip"])
    module.exit_json(changed=False, **evaluate(stub_resp, upstream_resps, pool_resp, p["vip"], vip_held))


if __name__ == "__main__":
    main()
