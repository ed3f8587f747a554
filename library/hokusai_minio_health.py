#!/usr/bin/python
# Hokusai ML platform: MinIO distributed cluster health, reported, never enforced.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hokusai_minio_health
short_description: Report the health of a distributed MinIO cluster (quorum, nodes, drives)
description:
  - Asks one MinIO node for the cluster's write quorum (C(/minio/health/cluster)) and read quorum
    (C(/minio/health/cluster/read)); both answer 200 when the quorum holds and 503 when it is lost.
  - With O(admin_info=true), runs C(mc admin info --json) against the same node (admin
    credentials passed to mc through its C(MC_HOST_<alias>) environment variable, never written
    to disk) and reports every node and every drive.
  - Unhealthy when a quorum is lost, a node is not online, or a drive is not C(ok).
  - Reports only; an unhealthy cluster is a normal result (C(healthy=false)).
author:
  - Hokusai ML platform team
options:
  url:
    description: Base URL of one MinIO node, for example V(https://minio1:9000).
    type: str
    required: true
  ca_path:
    description: CA certificate file that signed the MinIO certificates.
    type: path
  admin_info:
    description: Run C(mc admin info) for node and drive detail. Needs O(access_key) and O(secret_key).
    type: bool
    default: true
  access_key:
    description: MinIO admin user (the root user or one with C(admin:ServerInfo)).
    type: str
  secret_key:
    description: Secret key of O(access_key).
    type: str
  mc_path:
    description: Path of the mc client on the host the module runs on.
    type: path
    default: /usr/local/bin/mc
  mc_config_dir:
    description:
      - mc configuration directory; mc trusts the CA certificates in its C(certs/CAs).
      - The minio role makes C(/etc/minio/mc) with the cluster CA in it.
    type: path
    default: /etc/minio/mc
  timeout:
    description:
      - Seconds to wait for each HTTP answer.
      - mc gets four times as long (through coreutils C(timeout) when the host has it).
    type: int
    default: 5
notes:
  - Supports check mode; the module only reads.
"""

EXAMPLES = r"""
- name: Health | MinIO cluster seen from this node
  hokusai_minio_health:
    url: "https://{{ inventory_hostname }}:9000"
    ca_path: /etc/minio/certs/CAs/ca.crt
    access_key: "{{ minio_root_user }}"
    secret_key: "{{ minio_root_password }}"
  register: minio_health
  no_log: true
"""

RETURN = r"""
healthy:
  description: True when every check passed.
  returned: always
  type: bool
problems:
  description: One sentence per failed check, naming the node, drive or quorum.
  returned: always
  type: list
  elements: str
  sample: ["minio node minio4:9000: state offline"]
checks:
  description: Every check, one row per quorum, node and (unhealthy) drive.
  returned: always
  type: list
  elements: dict
write_quorum:
  description: Write quorum the node announced (drives), or null.
  returned: always
  type: int
read_quorum:
  description: Read quorum the node announced (drives), or null.
  returned: always
  type: int
nodes:
  description: Per node, its state and its drives' states (empty without O(admin_info)).
  returned: always
  type: list
  elements: dict
  sample: [{"endpoint": "minio1:9000", "state": "online", "drives": {"/srv/minio/drive1": "ok"}}]
drives_online:
  description: Online drives according to mc admin info, or null.
  returned: always
  type: int
drives_offline:
  description: Offline drives according to mc admin info, or null.
  returned: always
  type: int
"""

from urllib.parse import quote, urlsplit  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
from ansible.module_utils.hokusai_health import check, http_get, parse_json, summarize  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports

COMPONENT = "minio"
MC_ALIAS = "hokusaihealth"


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def quorum_check(name, resp, header):
    """A /minio/health/cluster[/read] answer -> (check, quorum)."""
    quorum = _int_or_none(resp["headers"].get(header))
    if resp["status"] == 200:
        return check(name, True, f"holds (quorum {quorum} drives)"), quorum
    if resp["status"] == 503:
        return check(name, False, "lost: the cluster answered 503"), quorum
    return check(name, False, resp["error"] or f"unexpected HTTP {resp['status']}"), quorum


def admin_info_checks(info_doc):
    """The JSON of `mc admin info --json` -> (checks, nodes, online, offline)."""
    info = (info_doc or {}).get("info") or {}
    servers = info.get("servers") or []
    checks: list[dict] = []
    nodes: list[dict] = []
    if (info_doc or {}).get("status") != "success" or not servers:
        error = ((info_doc or {}).get("error") or {}).get("message") or "no server list in mc admin info"
        return [check("admin info", False, error)], nodes, None, None
    for server in sorted(servers, key=lambda s: s.get("endpoint", "")):
        endpoint, state = server.get("endpoint", "?"), server.get("state")
        drives = {d.get("path") or d.get("endpoint"): d.get("state") for d in server.get("drives") or []}
        nodes.append({"endpoint": endpoint, "state": state, "drives": drives})
        bad = sorted(f"{path} {st}" for path, st in drives.items() if st != "ok")
        if state != "online":
            checks.append(check(f"node {endpoint}", False, f"state {state}"))
        elif bad:
            checks.append(check(f"node {endpoint}", False, f"drives not ok: {', '.join(bad)}"))
        else:
            checks.append(check(f"node {endpoint}", True, f"online, {len(drives)} drives ok"))
    backend = info.get("backend") or {}
    online, offline = _int_or_none(backend.get("onlineDisks")), _int_or_none(backend.get("offlineDisks"))
    if offline:
        checks.append(check("drives", False, f"{offline} offline, {online} online"))
    else:
        checks.append(check("drives", True, f"{online} online, 0 offline"))
    return checks, nodes, online, offline


def evaluate(write_resp, read_resp, info_doc=None, info_error=None):
    """Pure decision on the two quorum answers and, optionally, mc admin info."""
    checks = []
    write_check, write_quorum = quorum_check("write quorum", write_resp, "x-minio-write-quorum")
    read_check, read_quorum = quorum_check("read quorum", read_resp, "x-minio-read-quorum")
    checks += [write_check, read_check]
    nodes, online, offline = [], None, None
    if info_error:
        checks.append(check("admin info", False, info_error))
    elif info_doc is not None:
        info_checks, nodes, online, offline = admin_info_checks(info_doc)
        checks += info_checks
    return summarize(
        COMPONENT,
        checks,
        write_quorum=write_quorum,
        read_quorum=read_quorum,
        nodes=nodes,
        drives_online=online,
        drives_offline=offline,
    )


def mc_host_url(url, access_key, secret_key):
    """MC_HOST_<alias> value: scheme://user:secret@host:port (userinfo escaped, '/' too)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{quote(access_key, safe='')}:{quote(secret_key, safe='')}@{parts.netloc}"


def parse_mc_output(stdout):
    """mc --json prints one JSON document (an error may come as its own line): take the last that parses."""
    doc = parse_json(stdout)
    if doc is not None:
        return doc
    for line in reversed(stdout.strip().splitlines()):
        doc = parse_json(line)
        if doc is not None:
            return doc
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "ca_path": {"type": "path"},
            "admin_info": {"type": "bool", "default": True},
            "access_key": {"type": "str", "no_log": True},
            "secret_key": {"type": "str", "no_log": True},
            "mc_path": {"type": "path", "default": "/usr/local/bin/mc"},
            "mc_config_dir": {"type": "path", "default": "/etc/minio/mc"},
            "timeout": {"type": "int", "default": 5},
        },
        required_if=[["admin_info", True, ["access_key", "secret_key"]]],
        supports_check_mode=True,
    )
    p = module.params
    base = p["url"].rstrip("/")
    if urlsplit(base).scheme not in ("http", "https"):
        module.fail_json(msg=f"url must start with http:// or https://, got {p['url']!r}")

    def http(path):
        return http_get(base + path, ca_path=p["ca_path"], timeout=p["timeout"])

    write_resp = http("/minio/health/cluster")
    read_resp = http("/minio/health/cluster/read")
    info_doc = info_error = None
    if p["admin_info"]:
        env = {
            "MC_CONFIG_DIR": p["mc_config_dir"],
            f"MC_HOST_{MC_ALIAS}": mc_host_url(base, p["access_key"], p["secret_key"]),
            "MC_NO_COLOR": "1",
        }
        command = [p["mc_path"], "admin", "info", MC_ALIAS, "--json"]
        timeout_bin = module.get_bin_path("timeout")
        if timeout_bin:
            command = [timeout_bin, f"{4 * p['timeout']}s", *command]
        rc, out, err = module.run_command(
            command,
            environ_update=env,
            check_rc=False,
        )
        info_doc = parse_mc_output(out)
        if info_doc is None and rc == 124 and timeout_bin:
            info_error = f"mc admin info did not finish within {4 * p['timeout']} s"
        elif info_doc is None:
            info_error = f"mc admin info failed (rc {rc}): {(err or out).strip()[:300]}"
    module.exit_json(changed=False, **evaluate(write_resp, read_resp, info_doc, info_error))


if __name__ == "__main__":
    main()
