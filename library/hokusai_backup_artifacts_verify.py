#!/usr/bin/python
# Hokusai ML platform: compare the MLflow artifact bucket with its backup copy, reported, never enforced.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hokusai_backup_artifacts_verify
short_description: Compare the MLflow artifact bucket with its copy (counts, sizes, sampled content, lag)
description:
  - Lists the source bucket and the copy recursively with C(mc ls --recursive --json) (under an optional
    prefix) and compares object counts, total sizes, missing objects and size mismatches.
  - Downloads a random sample of objects present on both sides with C(mc cat) and compares their SHA-256.
  - Reports the copy lag, the age of the oldest source object the copy does not have yet.
  - Source objects younger than O(grace_seconds) are reported as pending, not missing (they were
    written after the last mirror run).
  - Objects that exist only in the copy are reported (deletions are not propagated by default) and are
    not a problem.
  - Reports only; differences are a normal result (C(healthy=false)), never a failure of the module.
    It fails only on bad arguments or an unreadable O(env_file).
author:
  - Hokusai ML platform team
options:
  source:
    description: mc path of the source bucket, C(alias/bucket) (the alias comes from O(env_file)).
    type: str
    required: true
  target:
    description: mc path of the copy bucket, C(alias/bucket).
    type: str
    required: true
  prefix:
    description:
      - Compare only objects under this key prefix, a "directory" (for example C(artifacts/34)), or empty.
      - Keys in the result are relative to it.
    type: str
    default: ""
  sample_size:
    description: Number of objects present on both sides whose content is compared; 0 compares none.
    type: int
    default: 20
  seed:
    description: Seed of the random sample (for a reproducible run); unset for a new sample each time.
    type: int
  grace_seconds:
    description: Source objects modified less than this many seconds ago count as pending, not missing.
    type: int
    default: 0
  mc_path:
    description: The mc binary.
    type: path
    default: /usr/local/bin/mc
  env_file:
    description:
      - EnvironmentFile with the mc aliases (C(MC_HOST_<alias>)) and C(MC_CONFIG_DIR), as the
        artifact_backup role writes it. Empty to use the module's environment only.
    type: path
    default: /etc/hokusai-artifact-backup/env
notes:
  - Supports check mode; the module only reads.
  - Each sampled object is downloaded twice; keep O(sample_size) small for large artifacts.
"""

EXAMPLES = r"""
- name: Verify | artifact copy against the MLflow bucket
  hokusai_backup_artifacts_verify:
    source: source/mlflow-artifacts
    target: target/mlflow-artifacts-copy
    sample_size: 20
    grace_seconds: 93600
  register: artifacts_verify

- name: Verify | one experiment only
  hokusai_backup_artifacts_verify:
    source: source/mlflow-artifacts
    target: target/mlflow-artifacts-copy
    prefix: artifacts/34/

- name: Verify | stop when the copy differs
  ansible.builtin.assert:
    that: artifacts_verify.healthy
    fail_msg: "{{ artifacts_verify.problems | join('; ') }}"
"""

RETURN = r"""
healthy:
  description:
    - True when the listings worked, nothing is missing from the copy (beyond pending objects)
      and every sampled object matches.
  returned: always
  type: bool
  sample: true
problems:
  description: One sentence per problem found.
  returned: always
  type: list
  elements: str
  sample: ["2 objects missing in the copy (oldest 3 h old), e.g. artifacts/34/abc/artifacts/model.bin"]
source:
  description: Objects, bytes and the newest object's age (seconds) in the source under the prefix.
  returned: always
  type: dict
  sample: {objects: 19, bytes: 2774928, newest_age_seconds: 412}
copy:
  description: The same for the copy.
  returned: always
  type: dict
  sample: {objects: 19, bytes: 2774928, newest_age_seconds: 60}
missing:
  description: Number of source objects the copy lacks (pending ones excluded).
  returned: always
  type: int
  sample: 0
missing_keys:
  description: Up to 20 of the missing keys.
  returned: always
  type: list
  elements: str
pending:
  description: Source objects younger than O(grace_seconds) not in the copy yet.
  returned: always
  type: int
only_in_copy:
  description: Objects present only in the copy (deleted from the source; kept by design).
  returned: always
  type: int
size_mismatches:
  description: Keys (up to 20) present on both sides with different sizes.
  returned: always
  type: list
  elements: str
sample:
  description: The content comparison, C(checked) objects, C(mismatched) keys with both hashes, C(errors).
  returned: always
  type: dict
  sample: {checked: 20, mismatched: [], errors: []}
copy_lag_seconds:
  description:
    - Age of the oldest source object not yet in the copy (pending or missing); 0 when the copy is complete.
  returned: always
  type: int
  sample: 0
durations:
  description: Seconds spent listing and sampling.
  returned: always
  type: dict
  sample: {list: 0.4, sample: 1.2}
"""

import hashlib  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from datetime import datetime  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.hokusai_backup import Steps, parse_env_file, parse_json_lines  # noqa: E402

LISTED = 20


def parse_time(value):
    """Epoch seconds of mc's RFC 3339 time (2026-11-27T22:20:04.579Z)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def listing(lines):
    """key -> {size, mtime} from mc ls --json lines; (objects, errors)."""
    objects, errors = {}, []
    for line in lines:
        if line.get("status") == "error":
            errors.append(line.get("error", {}).get("message", "mc error"))
        elif line.get("type") == "file" and "key" in line:
            objects[line["key"]] = {
                "size": int(line.get("size", 0)),
                "mtime": parse_time(line["lastModified"]),
            }
    return objects, errors


def summary(objects, now):
    newest = max((o["mtime"] for o in objects.values()), default=None)
    return {
        "objects": len(objects),
        "bytes": sum(o["size"] for o in objects.values()),
        "newest_age_seconds": None if newest is None else int(now - newest),
    }


def compare(source, copy, now, grace_seconds):
    """Missing, pending, extra and size-mismatched keys; the copy lag."""
    absent = sorted(k for k in source if k not in copy)
    pending = [k for k in absent if now - source[k]["mtime"] < grace_seconds]
    missing = [k for k in absent if k not in set(pending)]
    oldest_absent = min((source[k]["mtime"] for k in absent), default=None)
    return {
        "missing": missing,
        "pending": pending,
        "only_in_copy": sorted(k for k in copy if k not in source),
        "size_mismatches": sorted(k for k in source if k in copy and source[k]["size"] != copy[k]["size"]),
        "copy_lag_seconds": 0 if oldest_absent is None else int(now - oldest_absent),
        "missing_oldest_age": max((int(now - source[k]["mtime"]) for k in missing), default=0),
    }


def choose_sample(source, copy, size, rng):
    common = sorted(k for k in source if k in copy)
    return common if size >= len(common) else sorted(rng.sample(common, size))


def human_age(seconds):
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds} s"


def evaluate(source_errors, copy_errors, diff, sample_result):
    problems = []
    problems += [f"cannot list the source: {e}" for e in source_errors]
    problems += [f"cannot list the copy: {e}" for e in copy_errors]
    if diff["missing"]:
        problems.append(
            f"{len(diff['missing'])} objects missing in the copy"
            f" (oldest {human_age(diff['missing_oldest_age'])} old),"
            f" e.g. {diff['missing'][0]}"
        )
    if diff["size_mismatches"]:
        problems.append(
            f"{len(diff['size_mismatches'])} objects differ in size, e.g. {diff['size_mismatches'][0]}"
        )
    for m in sample_result["mismatched"]:
        problems.append(
            f"sample differs: {m['key']} (source sha256 {m['source'][:12]}, copy {m['copy'][:12]})"
        )
    problems += [f"sample: {e}" for e in sample_result["errors"]]
    return problems


def verify(
    source_url,
    target_url,
    prefix,
    sample_size,
    seed,
    grace_seconds,
    list_objects,
    hash_object,
    now=None,
    clock=time.monotonic,
):
    """The whole check; list_objects(url) -> mc ls lines, hash_object(url) -> (sha256 or None, error)."""
    steps = Steps(clock)
    with steps.step("list"):
        src, src_errors = listing(list_objects(f"{source_url}/{prefix}"))
        dst, dst_errors = listing(list_objects(f"{target_url}/{prefix}"))
    now = time.time() if now is None else now
    diff = compare(src, dst, now, grace_seconds)
    sample_result: dict = {"checked": 0, "mismatched": [], "errors": [], "keys": []}
    with steps.step("sample"):
        for key in choose_sample(src, dst, sample_size, random.Random(seed)):  # noqa: S311 - a sample to compare, not a secret
            a, err_a = hash_object(f"{source_url}/{prefix}{key}")
            b, err_b = hash_object(f"{target_url}/{prefix}{key}")
            if err_a or err_b:
                sample_result["errors"].append(f"{key}: {err_a or err_b}")
                continue
            sample_result["checked"] += 1
            sample_result["keys"].append(key)
            if a != b:
                sample_result["mismatched"].append({"key": key, "source": a, "copy": b})
    problems = evaluate(src_errors, dst_errors, diff, sample_result)
    return {
        "healthy": not problems,
        "problems": problems,
        "source": summary(src, now),
        "copy": summary(dst, now),
        "missing": len(diff["missing"]),
        "missing_keys": diff["missing"][:LISTED],
        "pending": len(diff["pending"]),
        "only_in_copy": len(diff["only_in_copy"]),
        "size_mismatches": diff["size_mismatches"][:LISTED],
        "sample": sample_result,
        "copy_lag_seconds": diff["copy_lag_seconds"],
        "durations": steps.durations(),
    }


class Mc:
    """mc through subprocess with the aliases of the env file."""

    def __init__(self, mc_path, env):
        self.mc_path, self.env = mc_path, env

    def list_objects(self, url):
        proc = subprocess.run(
            [self.mc_path, "--json", "ls", "--recursive", url],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        lines = parse_json_lines(proc.stdout)
        if proc.returncode != 0 and not any(x.get("status") == "error" for x in lines):
            lines.append(
                {
                    "status": "error",
                    "error": {"message": proc.stderr.strip() or f"mc ls exited {proc.returncode}"},
                }
            )
        return lines

    def hash_object(self, url):
        digest = hashlib.sha256()
        with subprocess.Popen(
            [self.mc_path, "cat", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env
        ) as proc:
            out, errs = proc.stdout, proc.stderr
            if out is None or errs is None:  # both were asked for as pipes
                raise RuntimeError("mc cat: no pipes")
            for chunk in iter(lambda: out.read(1 << 20), b""):
                digest.update(chunk)
            err = errs.read().decode(errors="replace").strip()
        if proc.returncode != 0:
            return None, err or f"mc cat exited {proc.returncode}"
        return digest.hexdigest(), None


def main():
    module = AnsibleModule(
        argument_spec={
            "source": {"type": "str", "required": True},
            "target": {"type": "str", "required": True},
            "prefix": {"type": "str", "default": ""},
            "sample_size": {"type": "int", "default": 20},
            "seed": {"type": "int"},
            "grace_seconds": {"type": "int", "default": 0},
            "mc_path": {"type": "path", "default": "/usr/local/bin/mc"},
            "env_file": {"type": "path", "default": "/etc/hokusai-artifact-backup/env"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["sample_size"] < 0 or p["grace_seconds"] < 0:
        module.fail_json(msg="sample_size and grace_seconds must not be negative")
    for name in ("source", "target"):
        if "/" not in p[name].strip("/"):
            module.fail_json(msg=f"{name} must be alias/bucket (got {p[name]!r})")
    env = dict(os.environ)
    if p["env_file"]:
        try:
            with open(p["env_file"], encoding="utf-8") as f:
                env.update(parse_env_file(f.read()))
        except OSError as exc:
            module.fail_json(msg=f"cannot read env_file {p['env_file']}: {exc}")
    env.update({"MC_NO_COLOR": "1", "MC_QUIET": "1"})
    mc = Mc(p["mc_path"], env)
    result = verify(
        p["source"].rstrip("/"),
        p["target"].rstrip("/"),
        # mc ls names keys relative to the listed "directory": a prefix is one, ending in /.
        p["prefix"].strip("/") + "/" if p["prefix"].strip("/") else "",
        p["sample_size"],
        p["seed"],
        p["grace_seconds"],
        mc.list_objects,
        mc.hash_object,
    )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
