#!/usr/bin/python
# Hokusai ML platform: etcd cluster health, reported, never enforced.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hokusai_etcd_health
short_description: Report the health of an etcd cluster (members, leader, each member's health)
description:
  - Reads the member list (C(/v2/members)) from the first endpoint that answers, then asks every
    member for C(/health) and C(/v2/stats/self) over its client URL.
  - Uses the v2 HTTP API and C(/health) only. The etcd 3.4 build in Debian has no v3 gRPC-JSON
    gateway, so C(/v3/...) HTTP paths answer 404.
  - The cluster is healthy when the member list is known, every member answers C(/health) with
    C(true), every member names the same leader, that leader is a member, and every given
    endpoint is a member.
  - Reports only; an unhealthy cluster is a normal result (C(healthy=false)), never a failure of
    the module. The playbook decides what to do with it.
author:
  - Hokusai ML platform team
options:
  endpoints:
    description:
      - Client URLs to ask for the member list, in order (for example C(https://10.0.0.11:2379)).
      - Every member's own client URLs (from the member list) are then checked.
    type: list
    elements: str
    required: true
  expected_members:
    description:
      - Member names that must be in the member list (usually the inventory group).
      - Empty means no expectation.
    type: list
    elements: str
    default: []
  ca_path:
    description: CA certificate file that signed the etcd server certificates.
    type: path
  client_cert:
    description: Client certificate file for etcd client TLS authentication.
    type: path
  client_key:
    description: Private key file of O(client_cert).
    type: path
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: int
    default: 5
notes:
  - Supports check mode; the module only reads.
"""

EXAMPLES = r"""
- name: Health | etcd cluster
  hokusai_etcd_health:
    endpoints: ["https://{{ lab_ip }}:2379"]
    expected_members: "{{ groups['etcd'] }}"
    ca_path: /etc/etcd/tls/ca.crt
    client_cert: /etc/etcd/tls/server.crt
    client_key: /etc/etcd/tls/server.key
  register: etcd_health

- name: Health | stop when etcd is unhealthy
  ansible.builtin.assert:
    that: etcd_health.healthy
    fail_msg: "{{ etcd_health.problems | join('; ') }}"
"""

RETURN = r"""
healthy:
  description: True when every check passed.
  returned: always
  type: bool
  sample: true
problems:
  description: One sentence per failed check, naming the member or the cluster.
  returned: always
  type: list
  elements: str
  sample: ["etcd member db2: no answer from https://172.28.10.12:2379/health: connection refused"]
checks:
  description: Every check, one row per member plus the cluster-wide ones.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "db1", "healthy": true, "detail": "healthy, follower of db2"}]
leader:
  description: Name of the leader every answering member agrees on, or null.
  returned: always
  type: str
  sample: db2
members:
  description: Per member, what it answered.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "db1", "id": "d16a18b10a5bb7a0", "client_urls": ["https://172.28.10.11:2379"],
            "healthy": true, "state": "StateFollower", "leader_id": "8ce147f361256fa1", "error": null}]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
from ansible.module_utils.hokusai_health import check, http_get, summarize  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports

COMPONENT = "etcd"


def member_view(member, health_resp, self_resp):
    """What one member answered: health from /health, role and leader from /v2/stats/self."""
    view = {
        "name": member.get("name") or member.get("id"),
        "id": member.get("id"),
        "client_urls": member.get("clientURLs", []),
        "healthy": False,
        "state": None,
        "leader_id": None,
        "error": None,
    }
    health = (health_resp or {}).get("json") or {}
    if health_resp is None or (health_resp.get("status") is None):
        view["error"] = (health_resp or {}).get("error") or "no client URL to ask"
    elif str(health.get("health")).lower() != "true":
        reason = health.get("reason") or health_resp.get("error") or health_resp.get("body", "")[:200]
        view["error"] = f"/health says {health.get('health')!r}" + (f" ({reason})" if reason else "")
    else:
        view["healthy"] = True
    stats = (self_resp or {}).get("json") or {}
    view["state"] = stats.get("state")
    view["leader_id"] = (stats.get("leaderInfo") or {}).get("leader") or None
    if view["healthy"] and not stats:
        view["healthy"] = False
        view["error"] = (self_resp or {}).get("error") or "/v2/stats/self gave no statistics"
    return view


def evaluate(members_resp, views, endpoints, expected_members):
    """Pure decision: the member list response and each member's view -> result dict."""
    checks = []
    members_doc = (members_resp or {}).get("json") or {}
    if not members_doc.get("members"):
        error = (members_resp or {}).get("error") or "no member list"
        checks.append(check("cluster", False, f"member list unknown ({error})"))
        return summarize(COMPONENT, checks, leader=None, members=views)

    ids = {v["id"]: v["name"] for v in views}
    leader_ids = {v["leader_id"] for v in views if v["leader_id"]}
    for v in views:
        if v["healthy"]:
            role = (
                "leader"
                if v["state"] == "StateLeader"
                else f"follower of {ids.get(v['leader_id'], v['leader_id'])}"
            )
            checks.append(check(v["name"], True, f"healthy, {role}"))
        else:
            checks.append(check(v["name"], False, f"unhealthy: {v['error']}"))

    leader = None
    if len(leader_ids) == 1 and next(iter(leader_ids)) in ids:
        leader = ids[next(iter(leader_ids))]
        healthy_count = sum(v["healthy"] for v in views)
        checks.append(
            check(
                "leader",
                True,
                f"{leader}; {healthy_count}/{len(views)} members healthy, quorum {len(views) // 2 + 1}",
            )
        )
    elif not leader_ids:
        checks.append(check("leader", False, "no member reports a leader"))
    else:
        names = sorted(ids.get(i, i) for i in leader_ids)
        checks.append(
            check("leader", False, f"members disagree on the leader or it is not a member: {names}")
        )

    member_names = {v["name"] for v in views}
    for name in expected_members:
        if name not in member_names:
            checks.append(check(name, False, "expected member is not in the member list"))
    member_urls = {u.rstrip("/") for v in views for u in v["client_urls"]}
    for url in endpoints:
        if url.rstrip("/") not in member_urls:
            checks.append(check(url, False, "endpoint is not the client URL of any member"))
    return summarize(COMPONENT, checks, leader=leader, members=views)


def probe(endpoints, expected_members, http):
    """Ask the cluster over HTTP (http is http_get with TLS settings bound)."""
    members_resp = None
    for url in endpoints:
        members_resp = http(url.rstrip("/") + "/v2/members")
        if members_resp["status"] == 200 and (members_resp["json"] or {}).get("members"):
            break
    views = []
    for member in ((members_resp or {}).get("json") or {}).get("members", []):
        urls = member.get("clientURLs") or []
        health_resp = self_resp = None
        for url in urls:
            health_resp = http(url.rstrip("/") + "/health")
            if health_resp["status"] is not None:
                self_resp = http(url.rstrip("/") + "/v2/stats/self")
                break
        views.append(member_view(member, health_resp, self_resp))
    views.sort(key=lambda v: v["name"] or "")
    return evaluate(members_resp, views, endpoints, expected_members)


def main():
    module = AnsibleModule(
        argument_spec={
            "endpoints": {"type": "list", "elements": "str", "required": True},
            "expected_members": {"type": "list", "elements": "str", "default": []},
            "ca_path": {"type": "path"},
            "client_cert": {"type": "path"},
            "client_key": {"type": "path"},
            "timeout": {"type": "int", "default": 5},
        },
        required_together=[["client_cert", "client_key"]],
        supports_check_mode=True,
    )
    p = module.params
    if not p["endpoints"]:
        module.fail_json(msg="endpoints must name at least one etcd client URL")

    def http(url):
        return http_get(
            url,
            ca_path=p["ca_path"],
            client_cert=p["client_cert"],
            client_key=p["client_key"],
            timeout=p["timeout"],
        )

    module.exit_json(changed=False, **probe(p["endpoints"], p["expected_members"], http))


if __name__ == "__main__":
    main()
