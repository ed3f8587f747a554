"""Every role's public API is consistent: defaults, argument specs and README agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "defaults" / "main.yml").exists())


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_match_argument_specs(role: Path) -> None:
    defaults = set(load(role / "defaults" / "main.yml"))
    specs = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults - set(specs)) == [], "defaults without an argument spec"
    assert sorted(set(specs) - defaults) == [], "argument specs without a default"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_are_prefixed_with_the_role_name(role: Path) -> None:
    prefix = role.name + "_"
    assert [k for k in load(role / "defaults" / "main.yml") if not k.startswith(prefix)] == []


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_readme_documents_every_variable(role: Path) -> None:
    readme = (role / "README.md").read_text()
    missing = [k for k in load(role / "defaults" / "main.yml") if f"`{k}`" not in readme]
    assert missing == [], f"{role.name}/README.md does not document {missing}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_templates_start_with_ansible_managed(role: Path) -> None:
    offenders = [
        t.name
        for t in (role / "templates").glob("*.j2")
        if "ansible_managed" not in t.read_text().splitlines()[0]
        # A format without comments opts out on its first line, saying why.
        and not t.read_text().startswith("{# no-managed-header:")
    ]
    assert offenders == []
