#!/usr/bin/env python3
"""The whole-stack fault matrix against the running lab (`make chaos`; the two-fault smoke:
`make chaos-smoke`, part of `make test`).

For each fault: fresh workloads start through the entry point (tests/chaos/workload.py: SDK
registrations; the stock MLflow client registering, logging runs, uploading and downloading
artifacts with checksums), the fault is injected into real lab containers once they flow, held,
healed, then the lab must be healthy again without a manual step (fast checks, then
playbooks/health.yml). The workloads stop, check what the platform holds against what callers
were told, and the segment's figures go into ``.lab-figures/chaos/report.{md,json}`` and one
PNG per fault (tests/chaos/report.py).

Exit status: 0 when every fault ran and passed its checks, 1 when one failed or did not run,
2 when the lab was not there or not healthy before the first fault (nothing was injected).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import faults as faults_mod
import lab
import report
import stats
from lab import InjectionFailed

ROOT = Path(__file__).resolve().parents[2]
SECRETS = Path(os.environ.get("HOKUSAI_SECRETS_DIR", ROOT / ".secrets"))
ENTRY = os.environ.get("HOKUSAI_LAB_MLFLOW_URL", f"https://{lab.VIP}")
WORKLOAD = Path(__file__).resolve().parent / "workload.py"
REGISTRATIONS = ("sdk_register", "mlflow_register")
BASELINE_S = 3.0
HEALTHY_WITHIN_S = 300.0
WORKLOAD_STOP_WITHIN_S = 300.0


class NoLab(SystemExit):
    """No lab to hit, or an unhealthy one: exit 2 with the reason on stderr (nothing injected)."""

    def __init__(self, reason: str) -> None:
        print(reason, file=sys.stderr, flush=True)
        super().__init__(2)


def log(msg: str) -> None:
    print(f"[chaos {datetime.now(UTC).strftime('%H:%M:%S')}] {msg}", flush=True)


def health_playbook() -> subprocess.CompletedProcess[str]:
    playbook = os.environ.get("HOKUSAI_ANSIBLE_PLAYBOOK", "ansible-playbook")
    return subprocess.run(
        [playbook, "-i", str(ROOT / "inventories" / "lab"), str(ROOT / "playbooks" / "health.yml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def failed_lines(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stdout.splitlines() if "fatal:" in ln or "FAILED" in ln or "unhealthy" in ln]
    return " | ".join(lines[-5:]) or proc.stdout.strip()[-600:]


def workload_env() -> dict[str, str]:
    password = SECRETS / "mlflow_admin_password"
    if not password.is_file():
        raise NoLab(f"chaos: {password} is missing: bring the lab up with `make lab` first")
    env = dict(os.environ)
    env.update(
        MLFLOW_TRACKING_USERNAME="admin",
        MLFLOW_TRACKING_PASSWORD=password.read_text().strip(),
        MLFLOW_TRACKING_SERVER_CERT_PATH=str(SECRETS / "lab-ca" / "ca.crt"),
        PYTHONUNBUFFERED="1",
        # Traffic goes to the lab only: MLflow 3's usage telemetry would call out (and its
        # client races on the telemetry session variable under threads: a KeyError).
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    return env


def preflight() -> None:
    """Stop at once (exit 2), naming the check, when there is no healthy lab to hit."""
    try:
        lab.docker("version", "--format", "{{.Server.Version}}", timeout=20)
    except (InjectionFailed, subprocess.TimeoutExpired, FileNotFoundError) as exc:
        raise NoLab(f"chaos: the Docker engine does not answer ({exc}): start it, then `make lab`") from None
    missing = [h for h in lab.ALL_HOSTS if not lab.running(h)]
    if missing:
        raise NoLab(
            f"chaos: lab containers not running: {', '.join(missing)}; bring the lab up with `make lab`"
        )
    failing = [name for name, ok in lab.quick_health().items() if not ok]
    if failing:
        raise NoLab(f"chaos: the lab is unhealthy before the first fault: {'; '.join(failing)}")
    proc = health_playbook()
    if proc.returncode != 0:
        raise NoLab(f"chaos: playbooks/health.yml fails before the first fault: {failed_lines(proc)}")


class SegmentRun:
    """One fault with its workloads; implements the faults.Segment protocol."""

    def __init__(self, fault: faults_mod.Fault, out: Path) -> None:
        self.fault = fault
        self.dir = out / "segments" / fault.name
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob("*"):
            old.unlink()
        self.stop_file = self.dir / "stop"
        self.t_start = time.monotonic()
        self.t_inject: float | None = None
        self.t_heal: float | None = None
        self.target = ""
        self.component_result: dict | None = None
        self.checks: list[dict] = []

    # --- faults.Segment -----------------------------------------------------------
    def inject(self, target: str, action) -> None:
        self.target = target
        log(f"{self.fault.name}: inject on {target}")
        self.t_inject = time.monotonic()
        action()

    def heal(self, action=None) -> None:
        self.t_heal = time.monotonic()
        if action is not None:
            log(f"{self.fault.name}: heal")
            action()

    def component(self, what: str, condition, timeout: float = 120) -> float | None:
        try:
            lab.wait_for(what, condition, timeout=timeout, every=0.2)
            after = round(self.since_inject(), 2)
        except TimeoutError:
            after = None
            self.check(f"component recovered: {what}", False, f"not within {timeout:.0f} s")
        if self.component_result is None:
            self.component_result = {"what": what, "after_s": after}
            log(f"{self.fault.name}: {what} after {after} s")
        return after

    def hold(self, seconds: float) -> None:
        time.sleep(seconds)  # the fault lasts this long; the workloads run meanwhile

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})

    def since_inject(self) -> float:
        return time.monotonic() - (self.t_inject or time.monotonic())

    # --- the segment ------------------------------------------------------------------
    def start_workloads(self) -> list[subprocess.Popen[str]]:
        name = f"chaos-{self.fault.name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        common = [
            "--tracking-uri",
            ENTRY,
            "--name",
            name,
            "--out",
            str(self.dir),
            "--stop-file",
            str(self.stop_file),
            "--max-seconds",
            "900",
        ]
        procs = []
        for kind in ("sdk", "stock"):
            err = (self.dir / f"workload-{kind}.log").open("w")
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(WORKLOAD), "--kind", kind, *common],
                    stdout=err,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=workload_env(),
                )
            )
        return procs

    def calls(self) -> list[dict]:
        out: list[dict] = []
        for path in self.dir.glob("calls-*.jsonl"):
            for line in path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line being written
        return out

    def flowing(self) -> bool:
        ok: dict[str, int] = {}
        for c in self.calls():
            if c["outcome"] == "ok":
                ok[c["w"]] = ok.get(c["w"], 0) + 1
        return all(ok.get(w, 0) >= 2 for w in (*REGISTRATIONS, "run_logging", "artifacts"))

    def recover(self) -> tuple[float | None, str]:
        """Seconds from the heal until the lab is healthy again (fast checks, then health.yml)."""
        since = self.t_heal or self.t_inject or time.monotonic()
        deadline = since + HEALTHY_WITHIN_S
        why, said, told = "", "", 0.0
        while time.monotonic() < deadline:
            failing = [n for n, ok in lab.quick_health().items() if not ok]
            if failing:
                why = "; ".join(failing)
            else:
                proc = health_playbook()
                if proc.returncode == 0:
                    return round(time.monotonic() - since, 1), ""
                why = f"health.yml: {failed_lines(proc)}"
            if why != said or time.monotonic() - told > 30:  # progress, not a line per poll
                log(f"{self.fault.name}: waiting for health ({time.monotonic() - since:.0f} s): {why[:300]}")
                said, told = why, time.monotonic()
            time.sleep(1)
        return None, why

    def run(self) -> dict:
        f = self.fault
        result: dict = {"name": f.name, "title": f.title, "status": "passed", "why": "", "target": ""}
        log(f"--- {f.name}: {f.title}")
        procs = self.start_workloads()
        try:
            try:
                lab.wait_for("every workload to succeed twice", self.flowing, timeout=120, every=0.5)
            except TimeoutError as exc:
                raise InjectionFailed(f"the workloads did not flow before the fault: {exc}") from None
            time.sleep(BASELINE_S)  # a baseline of healthy traffic in the timeline
            try:
                f.run(self)
            except Exception as exc:  # noqa: BLE001 - reported with the fault, the matrix goes on
                if self.t_inject is None:
                    raise InjectionFailed(f"{type(exc).__name__}: {exc}") from None
                self.check("the fault's commands ran", False, f"{type(exc).__name__}: {exc}")
            if self.t_heal is None:
                self.t_heal = time.monotonic()
            healthy_after, why = self.recover()
            self.check(
                "the lab healthy again without a manual step (health.yml green)",
                healthy_after is not None,
                why or f"{healthy_after} s after the heal",
            )
            log(f"{f.name}: healthy again {healthy_after} s after the heal")
            result["healthy_after_s"] = healthy_after
            time.sleep(BASELINE_S)  # healthy traffic after the recovery in the timeline
        except InjectionFailed as exc:
            result.update(status="not run", why=str(exc))
            log(f"{f.name}: NOT RUN: {exc}")
        finally:
            self.stop_file.touch()
            t_end = time.monotonic()
            for p in procs:
                try:
                    p.wait(timeout=WORKLOAD_STOP_WITHIN_S)
                except subprocess.TimeoutExpired:
                    p.kill()
                    self.check(
                        f"workload process {p.args[3]} ended within {WORKLOAD_STOP_WITHIN_S:.0f} s", False
                    )
        return self.figures(result, t_end)

    def figures(self, result: dict, t_end: float) -> dict:
        calls = self.calls()
        window_start = (self.t_inject or self.t_start) - BASELINE_S
        finals: dict[str, dict] = {}
        for kind in ("sdk", "stock"):
            path = self.dir / f"final-{kind}.json"
            data = json.loads(path.read_text()) if path.is_file() else {"ok": False, "error": "no final file"}
            if not data.get("ok"):
                self.check(
                    f"the {kind} workload verified what the platform holds", False, data.get("error", "")
                )
            finals.update(data.get("workloads", {}))
        workloads: dict[str, dict] = {}
        timeline: dict[str, list] = {}
        for w in (*REGISTRATIONS, "run_logging", "artifacts"):
            mine = sorted((c for c in calls if c["w"] == w), key=lambda c: c["t0"])
            figures = stats.workload_stats(mine, window_start, t_end, self.fault.may_fail)
            final = finals.get(w, {})
            figures.update(
                lost=final.get("lost"),
                duplicates=final.get("duplicates"),
                missing_metrics=final.get("missing_metrics"),
                lost_sample=final.get("lost_sample", []),
            )
            if w == "sdk_register":
                figures["still_pending"] = final.get("still_pending")
            if w == "mlflow_register":
                figures["failed_but_registered"] = final.get("failed_but_registered")
            workloads[w] = figures
            timeline[w] = [[round(c["t0"] - self.t_start, 3), c["dur"], c["outcome"]] for c in mine]
        if result["status"] != "not run":
            for w in REGISTRATIONS:
                fig = workloads[w]
                self.check(
                    f"{w}: every acknowledged registration present exactly once",
                    fig["lost"] == 0 and fig["duplicates"] == 0,
                    f"lost {fig['lost']} {fig['lost_sample'][:3]}, duplicated {fig['duplicates']}",
                )
            self.check(
                "sdk_register: the outboxes drained by themselves",
                workloads["sdk_register"].get("still_pending") == 0,
                f"{workloads['sdk_register'].get('still_pending')} left",
            )
            self.check(
                "sdk_register: no call raised (the outbox takes what MLflow cannot)",
                workloads["sdk_register"]["failed"] == 0,
                "; ".join(workloads["sdk_register"]["errors"]),
            )
            self.check(
                "run_logging: every acknowledged metric present",
                workloads["run_logging"]["missing_metrics"] == 0,
                f"missing {workloads['run_logging']['missing_metrics']}",
            )
            self.check(
                "artifacts: every acknowledged upload downloads with its checksum",
                workloads["artifacts"]["lost"] == 0,
                f"lost {workloads['artifacts']['lost']}",
            )
            failing = [c["name"] for c in self.checks if not c["ok"]]
            if failing:
                result.update(status="failed", why="; ".join(failing))

        def rel(t: float | None) -> float | None:
            return round(t - self.t_start, 2) if t is not None else None

        result.update(
            target=self.target,
            t_start=0.0,
            t_inject=rel(self.t_inject),
            t_heal=rel(self.t_heal),
            t_end=rel(t_end),
            component=self.component_result,
            checks=self.checks,
            workloads=workloads,
            timeline=timeline,
        )
        result.setdefault("healthy_after_s", None)
        log(f"{self.fault.name}: {result['status'].upper()} {result['why']}")
        for w, fig in workloads.items():
            log(
                f"  {w:16} calls {fig['calls']:4} ok {fig['succeeded']:4} failed {fig['failed']:3} "
                f"pending {fig['pending']:3} p99 {fig['p99_s']:6.2f} s max {fig['max_s']:6.2f} s "
                f"gap {fig['longest_gap_s']} s lost {fig['lost']} dup {fig['duplicates']}"
            )
        return result


def main(argv: list[str] | None = None) -> int:
    names = [f.name for f in faults_mod.FAULTS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--faults", default="all", help=f"comma-separated, or all, or smoke: {', '.join(names)}"
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".lab-figures" / "chaos")
    args = parser.parse_args(argv)
    if args.faults == "all":
        chosen, mode = list(faults_mod.FAULTS), "full"
    else:
        wanted = list(faults_mod.SMOKE) if args.faults == "smoke" else args.faults.split(",")
        unknown = [w for w in wanted if w not in names]
        if unknown:
            parser.error(f"unknown faults {unknown}; known: {', '.join(names)}")
        chosen = [f for w in wanted for f in faults_mod.FAULTS if f.name == w]
        mode = "smoke" if args.faults == "smoke" else "selection"
    log(f"preflight: lab containers, fast checks, health.yml ({len(chosen)} faults to run)")
    preflight()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "entry_point": ENTRY,
        "workloads_config": {
            "sdk_register": {"clients": 2, "rate_per_client": 2.0, "client": "hokusai.core.ModelRegistry"},
            "mlflow_register": {"clients": 1, "rate": 2.0, "client": "MlflowClient.create_model_version"},
            "run_logging": {"clients": 1, "rate": 4.0, "calls": "create_run, log_param, log_metric"},
            "artifacts": {
                "clients": 1,
                "rate": 0.5,
                "bytes": 1 << 20,
                "calls": "log_artifact, download_artifacts",
            },
        },
        "faults": [],
    }
    t0 = time.monotonic()
    broken = ""
    for i, fault in enumerate(chosen, 1):
        if broken:
            results["faults"].append(
                {
                    "name": fault.name,
                    "title": fault.title,
                    "status": "not run",
                    "why": broken,
                    "workloads": {},
                    "timeline": {},
                    "checks": [],
                }
            )
            continue
        log(f"fault {i}/{len(chosen)}, {time.monotonic() - t0:.0f} s so far")
        outcome = SegmentRun(fault, args.out).run()
        results["faults"].append(outcome)
        if outcome["status"] == "failed" and outcome.get("healthy_after_s") is None:
            broken = f"the lab was not healthy again after {fault.name}: the matrix stopped there"
        (args.out / "results.json").write_text(json.dumps(results))
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["duration_s"] = round(time.monotonic() - t0, 1)
    (args.out / "results.json").write_text(json.dumps(results))
    report.write_report(results, args.out)
    print(report.summary_table(results))
    log(f"report: {args.out / 'report.md'} ({results['duration_s']:.0f} s)")
    bad = [f["name"] for f in results["faults"] if f["status"] != "passed"]
    if bad:
        log(f"not passed: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
