#!/usr/bin/python
# Hokusai ML platform: Patroni/PostgreSQL cluster health, reported, never enforced.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hokusai_patroni_health
short_description: Report the health of a Patroni cluster (leader, replicas, sync standby, lag, timeline)
description:
  - Reads C(/cluster) and C(/config) from a Patroni REST API (usually the local one on a database
    host) and reports the leader, the replicas, the synchronous standby, each member's state,
    replication lag and timeline.
  - The cluster is unhealthy when there is no running leader, a member is not running (leader) or
    not streaming (replica), a replica lags more than O(max_lag_bytes), synchronous mode is on but
    no synchronous standby streams, a replica is on another timeline than the leader, or an
    expected member is missing.
  - Reports only; an unhealthy cluster is a normal result (C(healthy=false)).
author:
  - Hokusai ML platform team
options:
  url:
    description: Base URL of a Patroni REST API.
    type: str
    default: http://127.0.0.1:8008
  max_lag_bytes:
    description: A replica lagging more bytes of WAL than this behind the leader is unhealthy.
    type: int
    default: 16777216
  synchronous_mode:
    description:
      - Whether a synchronous standby is required.
      - When not given, the cluster's own C(synchronous_mode) from C(/config) decides.
    type: bool
  expected_members:
    description:
      - Member names that must be in the cluster (usually the inventory group).
      - Empty means no expectation.
    type: list
    elements: str
    default: []
  username:
    description: REST API user, when the API asks for basic authentication on reads.
    type: str
  password:
    description: Password of O(username).
    type: str
  ca_path:
    description: CA certificate file for a REST API served over HTTPS.
    type: path
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: int
    default: 5
notes:
  - Supports check mode; the module only reads.
"""

EXAMPLES = r"""
- name: Health | Patroni cluster seen from this host
  hokusai_patroni_health:
    url: http://127.0.0.1:8008
    max_lag_bytes: 16777216
    expected_members: "{{ groups['postgres'] }}"
  register: patroni_health
"""

RETURN = r"""
healthy:
  description: True when every check passed.
  returned: always
  type: bool
problems:
  description: One sentence per failed check, naming the member or the cluster.
  returned: always
  type: list
  elements: str
  sample: ["patroni db2: replica is running, not streaming from the leader"]
checks:
  description: Every check, one row per member plus the cluster-wide ones.
  returned: always
  type: list
  elements: dict
leader:
  description: Name of the running leader, or null.
  returned: always
  type: str
  sample: db3
replicas:
  description: Names of the members that are not the leader.
  returned: always
  type: list
  elements: str
sync_standby:
  description: Names of the synchronous standbys.
  returned: always
  type: list
  elements: str
synchronous_mode:
  description: Whether a synchronous standby was required.
  returned: always
  type: bool
members:
  description: The members as C(/cluster) returned them.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
from ansible.module_utils.hokusai_health import check, http_get, human_bytes, summarize  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports

COMPONENT = "patroni"
LEADER_ROLES = ("leader", "master", "primary", "standby_leader")
SYNC_ROLES = ("sync_standby", "quorum_standby")


def _lag_bytes(member):
    lag = member.get("lag", member.get("replay_lag"))
    return lag if isinstance(lag, int) else None


def evaluate(cluster, max_lag_bytes, synchronous_mode, expected_members):
    """Pure decision on a /cluster document -> result dict."""
    members = sorted((cluster or {}).get("members") or [], key=lambda m: m.get("name", ""))
    checks = []
    leaders = [m for m in members if m.get("role") in LEADER_ROLES]
    running_leaders = [m for m in leaders if m.get("state") == "running"]
    leader = running_leaders[0] if len(running_leaders) == 1 else None
    leader_tl = leader.get("timeline") if leader else None
    sync = [m["name"] for m in members if m.get("role") in SYNC_ROLES]

    if leader:
        checks.append(check("leader", True, f"{leader['name']}, timeline {leader_tl}"))
    elif len(running_leaders) > 1:
        checks.append(
            check("leader", False, f"more than one running leader: {[m['name'] for m in running_leaders]}")
        )
    else:
        seen = ", ".join(f"{m['name']} {m.get('state')}" for m in leaders) or "none"
        checks.append(check("leader", False, f"no running leader (leader members: {seen})"))

    for m in members:
        name, role, state = m.get("name"), m.get("role"), m.get("state")
        if m.get("role") in LEADER_ROLES:
            checks.append(check(name, state == "running", f"{role}, {state}"))
            continue
        lag = _lag_bytes(m)
        faults = []
        if state != "streaming":
            faults.append(f"{state}, not streaming from the leader")
        if lag is None:
            faults.append(f"lag unknown ({m.get('lag')!r})")
        elif lag > max_lag_bytes:
            faults.append(f"lags {human_bytes(lag)} behind the leader (limit {human_bytes(max_lag_bytes)})")
        tl = m.get("timeline")
        if leader_tl is not None and tl is not None and tl != leader_tl:
            faults.append(f"on timeline {tl}, the leader on {leader_tl}")
        if faults:
            checks.append(check(name, False, f"{role}: " + "; ".join(faults)))
        else:
            checks.append(check(name, True, f"{role}, {state}, lag {human_bytes(lag)}, timeline {tl}"))

    if synchronous_mode:
        streaming_sync = [
            m["name"] for m in members if m.get("role") in SYNC_ROLES and m.get("state") == "streaming"
        ]
        if streaming_sync:
            checks.append(check("sync standby", True, ", ".join(streaming_sync)))
        else:
            checks.append(
                check("sync standby", False, "synchronous mode is on but no synchronous standby streams")
            )

    names = {m.get("name") for m in members}
    for name in expected_members:
        if name not in names:
            checks.append(check(name, False, "expected member is not in the cluster"))
    return summarize(
        COMPONENT,
        checks,
        leader=leader["name"] if leader else None,
        replicas=[m["name"] for m in members if m.get("role") not in LEADER_ROLES],
        sync_standby=sync,
        synchronous_mode=bool(synchronous_mode),
        members=members,
    )


def probe(http, url, max_lag_bytes, synchronous_mode, expected_members):
    base = url.rstrip("/")
    resp = http(base + "/cluster")
    if resp["status"] != 200 or not isinstance(resp["json"], dict):
        error = resp["error"] or f"{base}/cluster did not return JSON"
        return summarize(
            COMPONENT,
            [check("REST API", False, error)],
            leader=None,
            replicas=[],
            sync_standby=[],
            synchronous_mode=bool(synchronous_mode),
            members=[],
        )
    if synchronous_mode is None:
        config = http(base + "/config")["json"] or {}
        synchronous_mode = bool(config.get("synchronous_mode")) if isinstance(config, dict) else False
    return evaluate(resp["json"], max_lag_bytes, synchronous_mode, expected_members)


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "default": "http://127.0.0.1:8008"},
            "max_lag_bytes": {"type": "int", "default": 16777216},
            "synchronous_mode": {"type": "bool"},
            "expected_members": {"type": "list", "elements": "str", "default": []},
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "ca_path": {"type": "path"},
            "timeout": {"type": "int", "default": 5},
        },
        required_together=[["username", "password"]],
        supports_check_mode=True,
    )
    p = module.params
    if p["max_lag_bytes"] < 0:
        module.fail_json(msg=f"max_lag_bytes must be 0 or more, got {p['max_lag_bytes']}")

    def http(url):
        return http_get(
            url, ca_path=p["ca_path"], username=p["username"], password=p["password"], timeout=p["timeout"]
        )

    result = probe(http, p["url"], p["max_lag_bytes"], p["synchronous_mode"], p["expected_members"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
