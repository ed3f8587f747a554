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
stub_status:
  description: The parsed stub_status counters, or null.
  returned: always
  type: dict
  sample: {"active": 2, "accepts": 36, "handled": 36, "requests": 67, "reading": 0, "writing": 1,
           "waiting": 1}
"""

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


def evaluate(stub_resp, upstream_resps):
    """Pure decision on the stub_status answer and each upstream's answer."""
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
    return summarize(COMPONENT, checks, stub_status=stub)


def main():
    module = AnsibleModule(
        argument_spec={
            "stub_status_url": {"type": "str", "default": "http://127.0.0.1:8080/stub_status"},
            "upstreams": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    stub_resp = http_get(p["stub_status_url"], timeout=p["timeout"])
    upstream_resps = [http_get(url, timeout=p["timeout"]) for url in p["upstreams"]]
    module.exit_json(changed=False, **evaluate(stub_resp, upstream_resps))


if __name__ == "__main__":
    main()
