"""Every role's public API is consistent: defaults, argument specs and README agree."""

from __future__ import annotations

import re
from collections.abc import Iterator
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


# Option names that carry a credential; paths to one (…_file, …_src, …_dir) do not.
SECRET_NAME = re.compile(r"(password|passphrase|secret|token|(^|_)(key|pass))(_|$)")
SECRET_PATH = re.compile(r"_(file|src|dir|path)$")


def secret_options(options: dict, where: str) -> Iterator[tuple[str, dict]]:
    for name, spec in (options or {}).items():
        if SECRET_NAME.search(name) and not SECRET_PATH.search(name):
            yield f"{where}{name}", spec
        yield from secret_options(spec.get("options") or {}, f"{where}{name}.")


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_secret_options_are_no_log(role: Path) -> None:
    """An argument-spec option named like a credential says so (no_log): the spec is
    the role's documented interface, and tools that read it treat such options as
    secrets. The masking in output comes from the tasks' own no_log (ansible-core
    2.19's validate_argument_spec does not mask by the spec). Options nested in
    list or dict options without suboptions are not seen by this test."""
    entry_points = load(role / "meta" / "argument_specs.yml")["argument_specs"]
    unmasked = [
        name
        for entry, spec in entry_points.items()
        for name, option in secret_options(spec.get("options") or {}, f"{entry}: ")
        if option.get("no_log") is not True
    ]
    assert unmasked == [], f"{role.name}: options without no_log: true: {unmasked}"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("minio_root_password", True),
        ("pgbackrest_s3_key", True),
        ("minio_mlflow_access_key", True),
        ("etcd_initial_cluster_token", True),
        ("minio_prometheus_token_file", False),
        ("mlflow_tls_key_src", False),
        ("patroni_keepalive", False),
        ("minio_drives", False),
        ("pgbackrest_cipher_pass", True),
        ("patroni_bypass_mode", False),
    ],
)
def test_secret_name_rule(name: str, secret: bool) -> None:
    assert bool(SECRET_NAME.search(name) and not SECRET_PATH.search(name)) is secret
