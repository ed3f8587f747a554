"""Every place that names a MinIO/mc binary in the build cache names the one build-minio.sh builds.

tests/lab/build-minio.sh puts minio under <version>+hokusai.<patch hash>: a changed
patch (tests/lab/minio-patches) builds into a new directory, and a scenario or
inventory still pointing at the old one would silently test the old binary.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests/lab/build-minio.sh"
# Where the cache paths are written: scenarios and inventories.
SEARCHED = ("molecule", "inventories")
CACHE_PATH = re.compile(r"/(minio|mc)/(v\d[^/\s\"'}]*)/(minio|mc)\b")


def built_ids() -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(SCRIPT), "paths"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    assert len(out) == 2, out
    return {Path(p).name: Path(p).parent.name for p in out}


def referenced() -> list[tuple[str, str, str]]:
    found = []
    for top in SEARCHED:
        for path in sorted((ROOT / top).rglob("*.yml")):
            for match in CACHE_PATH.finditer(path.read_text()):
                if match.group(1) == match.group(3):
                    found.append((str(path.relative_to(ROOT)), match.group(1), match.group(2)))
    return found


def test_the_minio_build_is_named_by_its_patches() -> None:
    patches = sorted((ROOT / "tests/lab/minio-patches").glob("*.patch"))
    version = re.search(r"^MINIO_VERSION=(\S+)$", SCRIPT.read_text(), re.M)
    assert version, "MINIO_VERSION not found in build-minio.sh"
    want = version.group(1)
    if patches:
        want += "+hokusai." + hashlib.sha256(b"".join(p.read_bytes() for p in patches)).hexdigest()[:12]
    assert built_ids()["minio"] == want


@pytest.mark.parametrize("binary", ["minio", "mc"])
def test_scenarios_and_inventories_use_the_built_binary(binary: str) -> None:
    want = built_ids()[binary]
    refs = [r for r in referenced() if r[1] == binary]
    assert refs, f"no reference to the {binary} cache path found under {SEARCHED}"
    stale = [f"{path}: {got}" for path, _, got in refs if got != want]
    assert stale == [], f"expected {binary}/{want}/ ({SCRIPT.name} paths); update: {stale}"
