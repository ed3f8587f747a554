"""Static checks of the alert rules that promtool does not make.

* every alert has a severity label, summary, description and a runbook_url
  that points to an existing page and heading under docs/runbooks/;
* every alert has a promtool case that fires it and one where it must not
  fire (tests/rules/*.test.yml); Watchdog fires by design and is exempt from
  the negative case;
* docs/runbooks/README.md lists every alert.

Exit status 1 with one line per problem.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "roles" / "prometheus" / "files" / "rules").glob("*.yml"))
TESTS = sorted((ROOT / "tests" / "rules").glob("*.test.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks"
SEVERITIES = {"critical", "warning", "none"}
ALWAYS_FIRING = {"Watchdog"}


def anchors(page: Path) -> set[str]:
    """GitHub-style anchors of the page's headings (lower case, spaces to dashes)."""
    out = set()
    for line in page.read_text().splitlines():
        m = re.match(r"^#+\s+(.*)$", line)
        if m:
            out.add(re.sub(r"[^a-z0-9 _-]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def alerts() -> list[dict]:
    found = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [r for r in group["rules"] if "alert" in r]
    return found


def problems() -> list[str]:
    out: list[str] = []
    rules = alerts()
    names = [r["alert"] for r in rules]
    out += [f"{n}: defined twice" for n in sorted({n for n in names if names.count(n) > 1})]
    for rule in rules:
        name, labels, ann = rule["alert"], rule.get("labels", {}), rule.get("annotations", {})
        if labels.get("severity") not in SEVERITIES:
            out.append(f"{name}: severity label must be one of {sorted(SEVERITIES)}")
        out += [
            f"{name}: annotation {k!r} missing or empty"
            for k in ("summary", "description", "runbook_url")
            if not ann.get(k)
        ]
        url = ann.get("runbook_url", "")
        page, _, anchor = url.partition("#")
        if not page.startswith("docs/runbooks/") or not (ROOT / page).is_file():
            out.append(f"{name}: runbook_url {url!r} is not a page under docs/runbooks/")
        elif anchor not in anchors(ROOT / page):
            out.append(f"{name}: {page} has no heading for anchor #{anchor}")
    fires, quiet = set(), set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    for name in names:
        if name not in fires:
            out.append(f"{name}: no promtool case fires it")
        if name not in quiet and name not in ALWAYS_FIRING:
            out.append(f"{name}: no promtool case where it must stay quiet")
    index = (RUNBOOKS / "README.md").read_text() if (RUNBOOKS / "README.md").is_file() else ""
    out += [f"{n}: not listed in docs/runbooks/README.md" for n in names if f"`{n}`" not in index]
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(f"check_rules: {line}", file=sys.stderr)
    print(f"check_rules: {len(alerts())} alerts, {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
