#!/usr/bin/python
# Hokusai ML platform: MLflow health (instance readiness, API through the load balancer).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hokusai_mlflow_health
short_description: Report MLflow health (instance readiness, authenticated API through the load balancer)
description:
  - With O(ready_url), asks one instance's readiness service (role mlflow, port 5001, C(/ready)).
    It answers 200 with a JSON report (C(ready) true, one entry per check) when the database
    (connection and schema revision), the artifact store (write, read back, delete) and the local
    server all work, and 503 with the failed checks otherwise; each failed check is reported.
  - With O(api_url), calls the MLflow REST API (C(GET /api/2.0/mlflow/experiments/search?max_results=1))
    through the load balancer twice, with basic authentication (must answer 200) and anonymously
    (must answer 401; a 200 means authentication is off, which is reported as unhealthy).
  - With O(roundtrip=true) (and O(api_url)), also proves the write path through the load balancer
    with a throw-away model. It creates a run in experiment O(roundtrip_experiment_id), registers a
    model C(hokusai-health-probe-<random>) with one version from that run, reads the version back,
    then deletes the model (with its version) and the run. Skipped in check mode. MLflow's REST API
    only soft-deletes runs, so each probe leaves one deleted run until C(mlflow gc) removes it.
  - Give O(ready_url), O(api_url) or both.
  - Reports only; an unhealthy service is a normal result (C(healthy=false)).
author:
  - Hokusai ML platform team
options:
  ready_url:
    description: Readiness URL of one instance, for example V(http://10.0.0.31:5001/ready).
    type: str
  api_url:
    description: Base URL of MLflow through the load balancer, for example V(https://mlflow.example.com).
    type: str
  username:
    description: MLflow user for the authenticated API call. Required with O(api_url).
    type: str
  password:
    description: Password of O(username).
    type: str
  require_auth:
    description: Whether an anonymous API call must be refused (401). Only with O(api_url).
    type: bool
    default: true
  roundtrip:
    description: Register a throw-away model version through O(api_url) and delete it again.
    type: bool
    default: false
  roundtrip_experiment_id:
    description: Experiment that holds the probe's run (V(0) is MLflow's Default experiment).
    type: str
    default: "0"
  ca_path:
    description: CA certificate file that signed the load balancer's certificate.
    type: path
  timeout:
    description: Seconds to wait for each HTTP answer (readiness checks can take a few seconds).
    type: int
    default: 15
notes:
  - Supports check mode; the module only reads (the readiness service itself writes and deletes a
    small object in the artifact bucket on each probe, as it does for every load balancer probe).
"""

EXAMPLES = r"""
- name: Health | this instance is ready
  hokusai_mlflow_health:
    ready_url: "http://{{ mlflow_bind_address }}:5001/ready"
  register: mlflow_ready

- name: Health | API through the load balancer
  hokusai_mlflow_health:
    api_url: "https://{{ hostvars[groups['loadbalancer'][0]].lab_ip }}"
    username: admin
    password: "{{ mlflow_auth_admin_password }}"
    ca_path: "{{ tls_ca_dir }}/ca.crt"
  delegate_to: localhost
  no_log: true
  register: mlflow_api
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
  sample: ["mlflow readiness database: OperationalError: connection refused"]
checks:
  description: Every check (readiness sub-checks, authenticated call, anonymous call).
  returned: always
  type: list
  elements: dict
ready:
  description: What the readiness service answered (its JSON), or null.
  returned: when ready_url is given
  type: dict
api_status:
  description: HTTP status of the authenticated API call, or null when nothing answered.
  returned: when api_url is given
  type: int
anonymous_status:
  description: HTTP status of the anonymous API call, or null when nothing answered.
  returned: when api_url is given
  type: int
roundtrip:
  description: What the round trip created and whether it cleaned up.
  returned: when roundtrip is true and not in check mode
  type: dict
  sample: {"model": "hokusai-health-probe-3f9c0a1b2c4d", "version": "1",
           "run_id": "bfbb0f82e0224b99ae8d04289f4964f7", "cleaned_up": true}
"""

import time  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
import uuid  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
from urllib.parse import urlencode  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
from ansible.module_utils.hokusai_health import check, http_get, summarize  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports

COMPONENT = "mlflow"
API_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"


def readiness_checks(resp):
    """A /ready answer -> checks: one per readiness sub-check, or one saying why there is none."""
    doc = resp["json"] if isinstance(resp["json"], dict) else None
    if doc is None or not isinstance(doc.get("checks"), dict):
        return [
            check("readiness", False, resp["error"] or "the readiness service did not return its JSON report")
        ]
    checks = []
    for name, sub in sorted(doc["checks"].items()):
        ok = bool(sub.get("ok"))
        checks.append(check(f"readiness {name}", ok, sub.get("detail", "")))
    if not doc.get("ready") and all(c["healthy"] for c in checks):
        checks.append(check("readiness", False, f"not ready (HTTP {resp['status']})"))
    return checks


def api_checks(auth_resp, anon_resp, require_auth):
    """Authenticated call must answer 200 with JSON; anonymous one 401 when auth is required."""
    checks = []
    if auth_resp["status"] == 200 and isinstance(auth_resp["json"], dict):
        count = len(auth_resp["json"].get("experiments") or [])
        checks.append(check("API (authenticated)", True, f"HTTP 200, {count} experiment(s) listed"))
    elif auth_resp["status"] == 200:
        checks.append(check("API (authenticated)", False, "HTTP 200 but the body is not MLflow JSON"))
    else:
        checks.append(check("API (authenticated)", False, auth_resp["error"]))
    if require_auth:
        if anon_resp["status"] == 401:
            checks.append(check("API (anonymous)", True, "refused with 401 as it should"))
        elif anon_resp["status"] == 200:
            checks.append(
                check("API (anonymous)", False, "answered 200 without credentials: authentication is off")
            )
        else:
            checks.append(
                check("API (anonymous)", False, anon_resp["error"] or f"HTTP {anon_resp['status']}, not 401")
            )
    return checks


def _api_error(resp):
    """MLflow's own error message when it gave one, else what http_get said."""
    doc = resp["json"] if isinstance(resp["json"], dict) else {}
    return doc.get("message") or resp["error"] or f"HTTP {resp['status']}"


def roundtrip(call, name, experiment_id):
    """Run -> registered model -> version -> read back -> delete both; call(method, path, body) -> response.

    Returns (check, detail dict). Cleanup is attempted for whatever was created, even after a failure.
    """
    start = time.monotonic()
    info = {"model": name, "version": None, "run_id": None, "cleaned_up": False}
    failure = None
    resp = call("POST", "/runs/create", {"experiment_id": experiment_id, "run_name": name})
    run = ((resp["json"] or {}).get("run") or {}).get("info") if resp["status"] == 200 else None
    model_created = False
    if not run:
        failure = f"create a run in experiment {experiment_id}: {_api_error(resp)}"
    else:
        info["run_id"] = run["run_id"]
        resp = call("POST", "/registered-models/create", {"name": name})
        model_created = resp["status"] == 200
        if not model_created:
            failure = f"register model {name}: {_api_error(resp)}"
    if run and not failure:
        source = run["artifact_uri"].rstrip("/") + "/model"
        resp = call(
            "POST", "/model-versions/create", {"name": name, "source": source, "run_id": run["run_id"]}
        )
        version = (
            ((resp["json"] or {}).get("model_version") or {}).get("version")
            if resp["status"] == 200
            else None
        )
        if not version:
            failure = f"create a version of {name}: {_api_error(resp)}"
        else:
            info["version"] = version
            resp = call("GET", "/model-versions/get?" + urlencode({"name": name, "version": version}), None)
            got = ((resp["json"] or {}).get("model_version") or {}) if resp["status"] == 200 else {}
            if got.get("source") != source:
                failure = (
                    f"read back {name} version {version}: {_api_error(resp) if not got else 'source differs'}"
                )
    cleanup = []
    if model_created:
        resp = call("DELETE", "/registered-models/delete", {"name": name})
        gone = call("GET", "/registered-models/get?" + urlencode({"name": name}), None)
        if resp["status"] != 200 or gone["status"] != 404:
            cleanup.append(f"model {name} not deleted ({_api_error(resp)})")
    if info["run_id"]:
        resp = call("POST", "/runs/delete", {"run_id": info["run_id"]})
        if resp["status"] != 200:
            cleanup.append(f"run {info['run_id']} not deleted ({_api_error(resp)})")
    info["cleaned_up"] = not cleanup
    ms = round((time.monotonic() - start) * 1000)
    if failure or cleanup:
        detail = "; ".join(([failure] if failure else []) + [f"cleanup: {c}" for c in cleanup])
        return check("API round trip", False, detail), info
    detail = f"model {name} version {info['version']} registered, read back and deleted in {ms} ms"
    return check("API round trip", True, detail), info


def evaluate(ready_resp=None, auth_resp=None, anon_resp=None, require_auth=True, roundtrip_result=None):
    """Pure decision over whatever was asked."""
    checks, details = [], {}
    if ready_resp is not None:
        checks += readiness_checks(ready_resp)
        details["ready"] = ready_resp["json"] if isinstance(ready_resp["json"], dict) else None
    if auth_resp is not None:
        checks += api_checks(auth_resp, anon_resp, require_auth)
        details["api_status"] = auth_resp["status"]
        details["anonymous_status"] = anon_resp["status"] if anon_resp else None
    if roundtrip_result is not None:
        checks.append(roundtrip_result[0])
        details["roundtrip"] = roundtrip_result[1]
    return summarize(COMPONENT, checks, **details)


def main():
    module = AnsibleModule(
        argument_spec={
            "ready_url": {"type": "str"},
            "api_url": {"type": "str"},
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "require_auth": {"type": "bool", "default": True},
            "roundtrip": {"type": "bool", "default": False},
            "roundtrip_experiment_id": {"type": "str", "default": "0"},
            "ca_path": {"type": "path"},
            "timeout": {"type": "int", "default": 15},
        },
        required_one_of=[["ready_url", "api_url"]],
        required_by={"api_url": ["username", "password"]},
        supports_check_mode=True,
    )
    p = module.params
    if p["roundtrip"] and not p["api_url"]:
        module.fail_json(msg="roundtrip needs api_url: the probe goes through the load balancer")
    ready_resp = auth_resp = anon_resp = rt = None
    if p["ready_url"]:
        ready_resp = http_get(p["ready_url"], timeout=p["timeout"])
    if p["api_url"]:
        url = p["api_url"].rstrip("/") + API_PATH
        auth_resp = http_get(
            url, ca_path=p["ca_path"], username=p["username"], password=p["password"], timeout=p["timeout"]
        )
        anon_resp = http_get(url, ca_path=p["ca_path"], timeout=p["timeout"]) if p["require_auth"] else None
        if p["roundtrip"] and not module.check_mode:
            base = p["api_url"].rstrip("/") + "/api/2.0/mlflow"

            def call(method, path, body):
                return http_get(
                    base + path,
                    method=method,
                    body=body,
                    ca_path=p["ca_path"],
                    username=p["username"],
                    password=p["password"],
                    timeout=p["timeout"],
                )

            rt = roundtrip(
                call, f"hokusai-health-probe-{uuid.uuid4().hex[:12]}", p["roundtrip_experiment_id"]
            )
    result = evaluate(ready_resp, auth_resp, anon_resp, p["require_auth"], rt)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
