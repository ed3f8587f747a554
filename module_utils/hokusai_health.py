# Shared code for the Hokusai health modules (library/hokusai_*_health.py).
#
# Standard library and ansible's own module_utils only: this file is shipped to
# the target hosts with every health module.
#
# Result shape of every health module:
#   healthy   bool, true when every check passed
#   problems  list of sentences, one per failed check, each naming the thing
#   checks    list of {name, healthy, detail}: one row per thing looked at,
#             what health.yml prints as its table
# plus component-specific detail (members, nodes, targets, ...).

from __future__ import annotations

import json
from http.client import HTTPException
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url

# Argument spec fragment shared by modules that talk HTTP(S).
HTTP_ARGUMENT_SPEC = {
    "ca_path": {"type": "path"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path"},
    "timeout": {"type": "int", "default": 5},
}


def http_get(
    url,
    ca_path=None,
    client_cert=None,
    client_key=None,
    username=None,
    password=None,
    bearer_token=None,
    timeout=5,
    method="GET",
    headers=None,
    body=None,
):
    """One HTTP request; never raises on HTTP or connection errors.

    Returns a dict: url, status (int, or None when nothing answered), headers
    (lower-case names), body (text), json (parsed body or None), error (None
    for a 2xx answer, otherwise a short sentence: "HTTP 503" or why the
    connection failed). body, when given, is sent as JSON.
    """
    req_headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req_headers.setdefault("Content-Type", "application/json")
    if bearer_token:
        req_headers["Authorization"] = f"Bearer {bearer_token}"
    result = {"url": url, "status": None, "headers": {}, "body": "", "json": None, "error": None}
    try:
        resp = open_url(
            url,
            data=data,
            method=method,
            headers=req_headers,
            validate_certs=True,
            ca_path=ca_path,
            client_cert=client_cert,
            client_key=client_key,
            url_username=username,
            url_password=password,
            force_basic_auth=bool(username),
            timeout=timeout,
            follow_redirects="none",
        )
        status, resp_headers, answer = resp.status, resp.headers, resp.read()
    except HTTPError as exc:
        status, resp_headers = exc.code, exc.headers
        try:
            answer = exc.read()
        except (OSError, AttributeError):
            answer = b""
    except (URLError, OSError, HTTPException, ValueError) as exc:  # URLError, SSL errors, timeouts: OSError
        reason = getattr(exc, "reason", None) or exc
        result["error"] = f"no answer from {url}: {reason}"
        return result
    return response(url, status, dict(resp_headers or {}), answer)


def response(url, status, headers, body):
    """The dict http_get returns for an answer (also how tests replay recorded answers)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    return {
        "url": url,
        "status": status,
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "body": text,
        "json": parse_json(text),
        "error": None if 200 <= status < 300 else f"{url} answered HTTP {status}",
    }


def parse_json(text):
    """Parsed JSON, or None when text is empty or not JSON."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def check(name, healthy, detail):
    """One row of the report: the thing looked at, its state, what was seen."""
    return {"name": str(name), "healthy": bool(healthy), "detail": str(detail)}


def summarize(component, checks, **details):
    """The common result: healthy, problems (sentences), checks, details."""
    problems = [f"{component} {c['name']}: {c['detail']}" for c in checks if not c["healthy"]]
    result = {"healthy": not problems and bool(checks), "problems": problems, "checks": checks}
    if not checks:
        result["problems"] = [f"{component}: nothing was checked"]
    result.update(details)
    return result


def human_bytes(value):
    """1536 -> '1.5 KiB' (for lag figures in sentences)."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - loop always returns
