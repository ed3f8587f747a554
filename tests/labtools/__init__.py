"""Helpers shared by the Molecule verifiers and the lab tests.

They act on real containers through the docker CLI: stopping, pausing and
starting lab hosts is how the failure tests take a component away.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import testinfra

__all__ = ["container_stopped", "containers_stopped", "docker", "inventory_host", "wait_for"]

T = TypeVar("T")


def docker(*args: str, timeout: float = 120) -> str:
    """Run a docker CLI command and return its stdout; raise on failure."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def inventory_host(name: str) -> testinfra.host.Host:
    """A testinfra host for NAME from the Molecule inventory of this run."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")


def wait_for(
    probe: Callable[[], T | None], timeout: float, interval: float = 1.0, what: str = "condition"
) -> T:
    """Call PROBE until it returns a truthy value; raise TimeoutError after TIMEOUT seconds.

    Exceptions raised by PROBE count as "not yet" and the last one is reported.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - any failure of the probe means "not ready yet"
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_error}" if last_error else ""
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s{detail}")
        time.sleep(interval)


@contextmanager
def container_stopped(name: str) -> Iterator[None]:
    """Stop container NAME for the duration of the block, then start it again."""
    docker("stop", "--time", "10", name)
    try:
        yield
    finally:
        docker("start", name)


@contextmanager
def containers_stopped(*names: str) -> Iterator[None]:
    """Stop several containers together for the duration of the block, then start them again."""
    docker("stop", "--time", "10", *names)
    try:
        yield
    finally:
        docker("start", *names)
