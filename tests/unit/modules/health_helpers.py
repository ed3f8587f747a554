"""Helpers for the health-module unit tests: load library/ modules, replay recorded answers.

The modules import ``ansible.module_utils.hokusai_health``; ansible finds it through
ansible.cfg's ``module_utils = module_utils`` at run time. Here the repository's
module_utils/ is added to the ``ansible.module_utils`` package path instead.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import ansible.module_utils
import pytest
from ansible.module_utils.testing import patch_module_args

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

if str(REPO / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(REPO / "module_utils"))

from ansible.module_utils import hokusai_health  # noqa: E402 - needs the path above


def load_module(name):
    """Import library/<name>.py as a fresh module object."""
    spec = importlib.util.spec_from_file_location(f"_hokusai_library_{name}", REPO / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fixture_text(component, name):
    return (FIXTURES / component / name).read_text()


def fixture_json(component, name):
    return json.loads(fixture_text(component, name))


def answer(url, status, body="", headers=None):
    """What http_get returns when something answered."""
    return hokusai_health.response(url, status, headers or {}, body)


def answer_from(component, name, url="http://recorded", status=200):
    """A recorded body (plain fixture file) as an answer."""
    return answer(url, status, fixture_text(component, name))


def recorded(component, name):
    """A fixture recorded with status and headers ({url, status, headers, body}) as an answer."""
    doc = fixture_json(component, name)
    return answer(doc["url"], doc["status"], doc["body"], doc["headers"])


def no_answer(url, reason="[Errno 111] Connection refused"):
    """What http_get returns when nothing answered."""
    error = f"no answer from {url}: {reason}"
    return {"url": url, "status": None, "headers": {}, "body": "", "json": None, "error": error}


class FakeHttp:
    """Replaces http_get: answers by URL prefix from a table, records the calls."""

    def __init__(self, table):
        self.table, self.calls = table, []

    def __call__(self, url, **kwargs):
        self.calls.append((url, kwargs))
        for prefix in sorted(self.table, key=len, reverse=True):
            if url.startswith(prefix):
                value = self.table[prefix]
                return value if isinstance(value, dict) else value(url)
        return no_answer(url)


def run_main(module, args):
    """Run module.main() with args; return (result dict, exit code)."""
    import contextlib
    import io

    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        module.main()
    return json.loads(out.getvalue()), exc.value.code
