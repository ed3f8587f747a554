"""The pinned MinIO/mc versions are written once (versions.env) and every user reads them there.

tests/lab/build-minio.sh builds minio into <version>+hokusai.<patch hash>: a changed
patch (tests/lab/minio-patches) builds into a new directory. The lab inventory and
the Molecule scenarios name that directory through versions.env, so a version or
patch change is one edit; these tests fail when a file writes a version by hand,
when versions.env's patch hash does not match the patches, or when the script and
the inventory disagree on the paths.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests/lab/build-minio.sh"
VERSIONS = ROOT / "versions.env"
# Where versions would otherwise be written by hand.
SEARCHED = ("molecule", "inventories", "tests/lab", "Makefile", ".ci")
PSEUDO_VERSION = re.compile(r"v0\.0\.0-\d{14}-[0-9a-f]{12}")


def pins() -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in VERSIONS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )


def script_paths(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "paths"], capture_output=True, text=True, check=False, timeout=30, env=env
    )


def test_versions_file_names_the_three_pins() -> None:
    assert set(pins()) == {"MINIO_VERSION", "MINIO_PATCH_HASH", "MC_VERSION"}
    assert PSEUDO_VERSION.fullmatch(pins()["MINIO_VERSION"])
    assert PSEUDO_VERSION.fullmatch(pins()["MC_VERSION"])
    assert re.fullmatch(r"[0-9a-f]{12}|none", pins()["MINIO_PATCH_HASH"])


def test_patch_hash_matches_the_patches() -> None:
    patches = sorted((ROOT / "tests/lab/minio-patches").glob("*.patch"))
    want = hashlib.sha256(b"".join(p.read_bytes() for p in patches)).hexdigest()[:12] if patches else "none"
    assert pins()["MINIO_PATCH_HASH"] == want, "update MINIO_PATCH_HASH in versions.env with the patch"


def test_script_builds_into_the_directories_the_pins_name() -> None:
    p = pins()
    out = script_paths()
    assert out.returncode == 0, out.stderr
    minio, mc = out.stdout.split()
    patched = "" if p["MINIO_PATCH_HASH"] == "none" else f"+hokusai.{p['MINIO_PATCH_HASH']}"
    assert Path(minio).parent.name == p["MINIO_VERSION"] + patched
    assert Path(mc).parent.name == p["MC_VERSION"]


def test_script_refuses_a_stale_patch_hash(tmp_path: Path) -> None:
    """A patch changed without versions.env: the script stops and says what to set."""
    clone = tmp_path / "clone"
    (clone / "tests/lab").mkdir(parents=True)
    (clone / "tests/lab/build-minio.sh").write_text(SCRIPT.read_text())
    (clone / "tests/lab/minio-patches").mkdir()
    (clone / "tests/lab/minio-patches/a.patch").write_text("changed\n")
    (clone / "versions.env").write_text(VERSIONS.read_text())
    out = subprocess.run(
        ["bash", str(clone / "tests/lab/build-minio.sh"), "paths"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert out.returncode != 0
    want = hashlib.sha256(b"changed\n").hexdigest()[:12]
    assert f"set it to {want}" in out.stderr
    assert out.stdout == ""


@pytest.mark.parametrize("top", SEARCHED)
def test_no_version_written_by_hand(top: str) -> None:
    root = ROOT / top
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and p.suffix != ".patch"]
    hand_written = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in files
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if PSEUDO_VERSION.search(line) and not line.lstrip().startswith("#")
    ]
    assert hand_written == [], f"read the version from versions.env instead: {hand_written}"


def test_lab_inventory_reads_the_pins() -> None:
    text = (ROOT / "inventories/lab/group_vars/all/main.yml").read_text()
    for key in pins():
        assert f"'{key}'" in text, f"inventories/lab does not read {key} from versions.env"
