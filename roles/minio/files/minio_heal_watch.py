#!/usr/bin/python3
"""Heal what a MinIO outage left behind, once every drive is back.

While a node is out, MinIO writes each new object to the drives it can reach
(6 of 8 in a 4 x 2 layout). It queues a heal of such an object at once (MRF),
which fails while the node is still out and is not retried; the background
scanner looks at an object for healing only once in 1024 cycles. Left alone,
objects written during an outage keep fewer shards for days, and a later loss
of two more nodes makes them unreadable (measured: roles/minio/README.md,
"After a node comes back: healing").

This watcher asks its own node every `interval` seconds which drives it sees
online (`mc admin info --json`). Once it has seen one offline, or could not
ask, and then every drive has stayed online for `settle` seconds (MinIO keeps
writing to the drives it had before for a few seconds more), the heal leader
runs `mc admin heal -r` over the whole cluster and logs what it healed. The
leader is the first online node in endpoint order, so one node heals, not all.
A start of the watcher counts as an outage: its host may have been the one
that was down.

Usage: minio_heal_watch.py CONFIG.json
CONFIG keys: mc, mc_config_dir, url (this node as mc reaches it), node
(host:port as MINIO_VOLUMES names this node), interval, settle, info_timeout,
heal_timeout (seconds). The root credentials come from the environment
(MINIO_ROOT_USER, MINIO_ROOT_PASSWORD: the unit's EnvironmentFile) and reach
mc in MC_HOST_hokusai, never on a command line. Logs go to stdout (journal).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

ALIAS = "hokusai"


@dataclass(frozen=True)
class View:
    """What one node reports: drives online and offline, servers it sees online."""

    online: int
    offline: int
    servers_online: tuple[str, ...]
    servers_offline: tuple[str, ...]

    @property
    def whole(self) -> bool:
        return self.offline == 0 and not self.servers_offline and self.online > 0

    def describe(self) -> str:
        text = f"{self.online}/{self.online + self.offline} drives online"
        if self.servers_offline:
            text += f" ({', '.join(self.servers_offline)} offline)"
        return text

    @property
    def leader(self) -> str:
        return min(self.servers_online) if self.servers_online else ""


def parse_info(text: str) -> View:
    """`mc admin info --json` -> View. ValueError when it is not an answer."""
    doc = json.loads(text)
    info = doc.get("info") if isinstance(doc, dict) else None
    backend = info.get("backend") if isinstance(info, dict) else None
    servers = info.get("servers") if isinstance(info, dict) else None
    if not isinstance(backend, dict) or not isinstance(servers, list):
        raise ValueError("mc admin info answered without backend and server information")
    if not all(isinstance(s, dict) and isinstance(s.get("endpoint"), str) for s in servers):
        raise ValueError("mc admin info answered a server without an endpoint")
    return View(
        online=int(backend.get("onlineDisks") or 0),
        offline=int(backend.get("offlineDisks") or 0),
        servers_online=tuple(sorted(s["endpoint"] for s in servers if s.get("state") == "online")),
        servers_offline=tuple(sorted(s["endpoint"] for s in servers if s.get("state") != "online")),
    )


@dataclass(frozen=True)
class HealResult:
    ok: bool
    scanned: int
    healed: int
    failed: int  # items the heal reported as not healed (or not green after it)
    examples: tuple[str, ...]  # the first few of those, or what mc said when it said no JSON
    seconds: float

    def describe(self) -> str:
        text = f"{self.scanned} objects scanned, {self.healed} healed in {self.seconds:.0f} s"
        if self.failed:
            text += f"; {self.failed} not healed"
        if self.examples:
            text += f" ({'; '.join(self.examples)})"
        return text


EXAMPLES = 5


def _heal_item(line: str) -> dict | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        item = json.loads(line)
    except ValueError:
        return None
    return item if isinstance(item, dict) else None


def _not_healed(item: dict) -> str:
    """'' when the item ended healthy, else its name (or mc's error message)."""
    after = item.get("after")
    color = after.get("color", "green") if isinstance(after, dict) else "green"
    if item.get("status") == "success" and color == "green":
        return ""
    error = item.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return str(item.get("name") or message or "?")


def parse_heal(lines: Iterable[str], seconds: float, returncode: int) -> HealResult:
    """`mc admin heal -r --json` output, one JSON document per line (other lines: what mc said)."""
    summary: dict = {}
    failed = 0
    examples: list[str] = []
    said: list[str] = []
    for line in lines:
        item = _heal_item(line)
        if item is None:
            if line.strip():
                said = [*said[-2:], line.strip()[:200]]
            continue
        if item.get("type") == "summary":
            summary = item
            continue
        name = _not_healed(item)
        if name:
            failed += 1
            if len(examples) < EXAMPLES:
                examples.append(name)
    if not summary and not examples:
        examples = said
    return HealResult(
        ok=returncode == 0 and bool(summary) and not failed,
        scanned=int(summary.get("objects_scanned") or 0),
        healed=int(summary.get("objects_healed") or 0),
        failed=failed,
        examples=tuple(examples),
        seconds=seconds,
    )


class Watcher:
    """The outage state machine; time comes in, decisions come out.

    pending: an outage was seen (or the watcher just started) and no heal has
    succeeded since. whole_since: when every drive was last seen online after
    that outage (None while something is still offline).
    """

    def __init__(self, node: str, settle: float, max_wait: float = 3600) -> None:
        self.node = node
        self.settle = settle
        self.wait = settle  # doubles after each failed heal, up to max_wait
        self.max_wait = max_wait
        self.pending = True  # a start counts as an outage
        self.whole_since: float | None = None

    def observe(self, view: View | None, now: float) -> str:
        """'heal' when this node should heal now, 'wait' otherwise."""
        if view is None or not view.whole:
            self.pending = True
            self.whole_since = None
            return "wait"
        if not self.pending:
            return "wait"
        if self.whole_since is None:
            self.whole_since = now
        if now - self.whole_since < self.wait:
            return "wait"
        if view.leader != self.node:
            self.pending = False  # the leader heals; it saw the same outage
            return "wait"
        return "heal"

    def healed(self, ok: bool, now: float) -> None:
        """After a heal: ok only when it healed everything and nothing went offline meanwhile."""
        if ok:
            self.pending = False
            self.whole_since = None
            self.wait = self.settle
        else:  # try again later, backing off: a heal reads the whole cluster
            self.whole_since = now
            self.wait = min(self.wait * 2, self.max_wait)


def mc_env(url: str, user: str, password: str, config_dir: str) -> dict[str, str]:
    parts = urllib.parse.urlsplit(url)
    auth = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIO_")}
    env.update(
        {
            f"MC_HOST_{ALIAS}": f"{parts.scheme}://{auth}@{parts.netloc}",
            "MC_CONFIG_DIR": config_dir,
            "MC_NO_COLOR": "1",
        }
    )
    return env


def log(message: str) -> None:
    print(message, flush=True)


def ask_view(config: dict, env: dict[str, str]) -> View | None:
    argv = [config["mc"], "--config-dir", config["mc_config_dir"], "admin", "info", "--json", ALIAS]
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=config["info_timeout"], check=False
        )
        return parse_info(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError) as exc:
        log(f"could not ask this node for its drives: {exc!r:.200}")
        return None


def heal(
    config: dict,
    env: dict[str, str],
    still_whole: Callable[[], bool] = lambda: True,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[HealResult, bool]:
    """The whole cluster, every bucket: (result, whether every drive stayed online meanwhile).

    mc is killed after heal_timeout even when it prints nothing; meanwhile a
    thread asks `still_whole` every interval (an outage during the heal means
    objects written then still need one) and progress is logged every 60 s.
    """
    argv = [config["mc"], "--config-dir", config["mc_config_dir"], "admin", "heal", "-r", "--json", ALIAS]
    t0 = clock()
    done = threading.Event()
    stayed_whole = True

    def watch(proc: subprocess.Popen[str]) -> None:
        nonlocal stayed_whole
        next_note = t0 + 60
        while not done.wait(float(config["interval"])):
            if clock() - t0 > float(config["heal_timeout"]):
                log(f"heal: stopped after {config['heal_timeout']} s (heal_timeout); it will be tried again")
                proc.kill()
                return
            if not still_whole():
                stayed_whole = False
            if clock() > next_note:
                log(f"heal: still running after {clock() - t0:.0f} s")
                next_note += 60

    try:
        with subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            watcher = threading.Thread(target=watch, args=(proc,), daemon=True)
            watcher.start()
            try:
                result = parse_heal(proc.stdout or (), 0.0, 0)
                returncode = proc.wait()
            finally:
                done.set()
                watcher.join()
    except OSError as exc:
        log(f"heal: could not run mc: {exc!r:.200}")
        return HealResult(False, 0, 0, 0, (), 0.0), stayed_whole
    final = HealResult(
        result.ok and returncode == 0,
        result.scanned,
        result.healed,
        result.failed,
        result.examples,
        clock() - t0,
    )
    return final, stayed_whole


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        config = json.load(fh)
    user, password = os.environ.get("MINIO_ROOT_USER", ""), os.environ.get("MINIO_ROOT_PASSWORD", "")
    if not user or not password:
        print(
            "MINIO_ROOT_USER and MINIO_ROOT_PASSWORD must be set (the unit's EnvironmentFile)",
            file=sys.stderr,
        )
        return 2
    env = mc_env(config["url"], user, password, config["mc_config_dir"])
    watcher = Watcher(config["node"], float(config["settle"]), max_wait=float(config["heal_timeout"]))
    last = ""
    first = ask_view(config, env)
    if first is not None and config["node"] not in first.servers_online + first.servers_offline:
        log(
            f"node {config['node']!r} is none of the servers MinIO reports "
            f"({', '.join(first.servers_online + first.servers_offline)}): this node will never lead a heal"
        )
    log(
        f"watching {config['node']}: heal {config['settle']} s after every drive is back"
        " (a start counts as an outage)"
    )
    while True:
        view = ask_view(config, env)
        state = view.describe() if view else "no answer"
        if state != last:
            log(f"this node sees {state}" + (f"; heal leader {view.leader}" if view and view.whole else ""))
            last = state
        if watcher.observe(view, time.monotonic()) == "heal":
            log("every drive back: healing the cluster (mc admin heal -r)")

            def whole() -> bool:
                seen = ask_view(config, env)
                return seen is not None and seen.whole

            result, stayed_whole = heal(config, env, whole)
            if result.ok and stayed_whole:
                log("heal done: " + result.describe())
            elif result.ok:
                log(
                    "heal done, but a drive went offline meanwhile; another heal follows: "
                    + result.describe()
                )
            else:
                log("heal FAILED, will retry: " + result.describe())
            watcher.healed(result.ok and stayed_whole, time.monotonic())
            log(f"next heal, if one is needed, {watcher.wait:.0f} s after every drive is back")
        time.sleep(float(config["interval"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
