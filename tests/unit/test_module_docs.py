"""Every custom module in library/ documents itself: ansible-doc renders it, and its DOCUMENTATION
options match the argument_spec it really builds (names, type, required, default, choices,
elements, aliases, suboptions).

Generic on purpose: a module added to library/ later is picked up without touching this file.
The argument_spec is taken from the module itself: main() runs until it creates its AnsibleModule,
whose constructor is replaced by one that records its arguments and stops.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import ansible.module_utils
import pytest
from ansible.module_utils import basic

ROOT = Path(__file__).resolve().parents[1].parent
LIBRARY = ROOT / "library"
MODULES = sorted(p.stem for p in LIBRARY.glob("*.py") if not p.name.startswith("_"))
ANSIBLE_DOC = str(Path(sys.executable).parent / "ansible-doc")

# Modules import ansible.module_utils.<name> from the repository's module_utils/ (ansible.cfg).
if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))


class _SpecCaptured(BaseException):  # BaseException: an `except Exception` in main() must not eat it
    def __init__(self, kwargs):
        super().__init__("captured")
        self.kwargs = kwargs


def _ansible_doc(*args):
    return subprocess.run(
        [ANSIBLE_DOC, "-M", str(LIBRARY), "-t", "module", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def rendered():
    """One ansible-doc run for every module (text), one for the parsed docs (JSON)."""
    text = _ansible_doc(*MODULES)
    as_json = _ansible_doc("--json", *MODULES)
    docs = json.loads(as_json.stdout) if as_json.stdout.strip() else {}
    return text, as_json, docs


def captured_spec(monkeypatch, name):
    """The keyword arguments the module passes to AnsibleModule."""

    def capture(self, *args, **kwargs):
        if args:
            kwargs["argument_spec"] = args[0]
        raise _SpecCaptured(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "__init__", capture)
    spec = importlib.util.spec_from_file_location(f"_doc_check_{name}", LIBRARY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(_SpecCaptured) as exc:
        module.main()
    return exc.value.kwargs


def _norm(value):
    return (
        sorted(value)
        if isinstance(value, (list, tuple, set)) and all(isinstance(v, str) for v in value)
        else value
    )


def compare_options(doc_options, spec, where):
    """Differences between documented options and an argument_spec, as sentences."""
    doc_options = doc_options or {}
    diffs = [f"{where}{o}: in argument_spec, not documented" for o in sorted(set(spec) - set(doc_options))]
    diffs += [f"{where}{o}: documented, not in argument_spec" for o in sorted(set(doc_options) - set(spec))]
    for name in sorted(set(spec) & set(doc_options)):
        d, s = doc_options[name], spec[name]
        pairs = {
            "type": (d.get("type", "str"), s.get("type", "str")),
            "required": (bool(d.get("required", False)), bool(s.get("required", False))),
            "default": (d.get("default"), s.get("default")),
            "choices": (_norm(d.get("choices")), _norm(s.get("choices"))),
            "elements": (d.get("elements"), s.get("elements")),
            "aliases": (_norm(d.get("aliases") or []), _norm(s.get("aliases") or [])),
        }
        diffs += [
            f"{where}{name}: {k} documented {dv!r}, spec {sv!r}" for k, (dv, sv) in pairs.items() if dv != sv
        ]
        if d.get("suboptions") or s.get("options"):
            diffs += compare_options(d.get("suboptions"), s.get("options") or {}, f"{where}{name}.")
    return diffs


def test_library_has_modules():
    assert MODULES, "library/ has no module"


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(rendered, name):
    text, as_json, docs = rendered
    assert f"[ERROR]: module {name} " not in text.stderr, text.stderr
    assert f"> MODULE {name} " in text.stdout, text.stderr or text.stdout[-2000:]
    assert name in docs, as_json.stderr
    entry = docs[name]
    assert entry["doc"].get("short_description"), "short_description is empty"
    assert entry.get("examples"), "EXAMPLES is empty"
    assert entry.get("return"), "RETURN is empty"


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_match_argument_spec(rendered, monkeypatch, name):
    docs = rendered[2]
    if name not in docs:
        pytest.fail(f"ansible-doc could not read {name}: see test_ansible_doc_renders")
    kwargs = captured_spec(monkeypatch, name)
    assert compare_options(docs[name]["doc"].get("options"), kwargs["argument_spec"], "") == []
    if name.endswith("_health"):
        assert kwargs.get("supports_check_mode") is True, (
            "a health module only reads: supports_check_mode=True"
        )


def test_compare_options_finds_drift():
    doc = {"a": {"type": "int", "default": 1}, "b": {"type": "str"}, "c": {"type": "list", "elements": "str"}}
    spec = {"a": {"type": "int", "default": 2}, "c": {"type": "list", "elements": "int"}, "d": {}}
    assert compare_options(doc, spec, "") == [
        "d: in argument_spec, not documented",
        "b: documented, not in argument_spec",
        "a: default documented 1, spec 2",
        "c: elements documented 'str', spec 'int'",
    ]
