"""A small, thread-safe circuit breaker (closed / open / half-open).

Why not pybreaker: the SDK needs (1) failures counted only for *transient* errors, decided by the
caller after the fact rather than by exception type at decoration time, (2) an injectable clock so
the state machine is tested without sleeping, (3) a state-change hook for the Prometheus gauge and
(4) a single half-open probe at a time. pybreaker covers some of this through listeners and
``exclude`` lists, but the remaining glue would be larger than this module.

Example:

>>> clock = [0.0]
>>> b = CircuitBreaker("http://127.0.0.1:5000", failure_threshold=2, reset_timeout=10,
...                    max_reset_timeout=40, clock=lambda: clock[0])
>>> b.record_failure(); b.record_failure()
>>> b.state
'open'
>>> b.allow()
False
>>> clock[0] = 11.0
>>> b.allow(), b.state          # one probe call is let through
(True, 'half-open')
>>> b.record_failure(); b.seconds_until_probe()   # the probe failed: twice as long
20.0
>>> clock[0] = 31.0
>>> b.allow(); b.record_success(); b.state
True
'closed'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["BreakerConfig", "BreakerState", "CircuitBreaker", "breaker_for"]

BreakerState = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds of a :class:`CircuitBreaker`.

    ``failure_threshold`` consecutive transient failures open the circuit; after
    ``reset_timeout`` seconds one probe call is let through (half-open); ``success_threshold``
    probe successes close it again. A probe failure re-opens it for ``backoff`` times as long as
    the previous time, at most ``max_reset_timeout``: a two-second database failover is probed
    again after 1 s, 2 s, 4 s ... instead of after a fixed 30 s, and a long outage costs one
    probe every ``max_reset_timeout`` seconds.
    """

    failure_threshold: int = 5
    reset_timeout: float = 1.0
    success_threshold: int = 1
    max_reset_timeout: float = 10.0
    backoff: float = 2.0

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 1.0,
        success_threshold: int = 1,
        max_reset_timeout: float | None = None,
        backoff: float = 2.0,
    ) -> None:
        # max_reset_timeout defaults to max(10 s, reset_timeout): a 0.2 config such as
        # BreakerConfig(reset_timeout=60) keeps working (and keeps its fixed 60 s)
        for name, value in (
            ("failure_threshold", failure_threshold),
            ("reset_timeout", reset_timeout),
            ("success_threshold", success_threshold),
            (
                "max_reset_timeout",
                max(10.0, reset_timeout) if max_reset_timeout is None else max_reset_timeout,
            ),
            ("backoff", backoff),
        ):
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.success_threshold < 1:
            raise ValueError("BreakerConfig thresholds must be >= 1, e.g. failure_threshold=5")
        if self.reset_timeout < 0:
            raise ValueError("BreakerConfig(reset_timeout=...) must be >= 0 seconds")
        if self.max_reset_timeout < self.reset_timeout:
            raise ValueError(
                "BreakerConfig needs max_reset_timeout >= reset_timeout, e.g. "
                "BreakerConfig(reset_timeout=1.0, max_reset_timeout=10.0)"
            )
        if self.backoff < 1:
            raise ValueError("BreakerConfig(backoff=...) must be >= 1, e.g. backoff=2.0")


class CircuitBreaker:
    """Circuit breaker for one tracking URI. See the module docstring for an example."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 1.0,
        success_threshold: int = 1,
        max_reset_timeout: float | None = None,
        backoff: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self.config = BreakerConfig(
            failure_threshold, reset_timeout, success_threshold, max_reset_timeout, backoff
        )
        self._timeout = reset_timeout  # current open period, grows while probes fail
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._listeners: dict[object, Callable[[str, BreakerState], None]] = {}
        if on_state_change is not None:
            self._listeners[object()] = on_state_change

    def add_listener(
        self, listener: Callable[[str, BreakerState], None], *, key: object = None
    ) -> None:
        """Call ``listener(name, new_state)`` on every state change (and once now).

        A later listener with the same (hashable) *key* replaces the earlier one, so objects
        created repeatedly against one shared breaker do not pile up listeners.
        """
        with self._lock:
            self._listeners[object() if key is None else key] = listener
            state = self._state
        listener(self.name, state)

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def _set(self, state: BreakerState) -> Callable[[], None]:
        # Called with the lock held; returns the notification to run after releasing it.
        if state == self._state:
            return lambda: None
        self._state = state
        listeners = list(self._listeners.values())

        def notify() -> None:
            for listener in listeners:
                listener(self.name, state)

        return notify

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one probe at a time is allowed."""
        with self._lock:
            notify: Callable[[], None] = lambda: None  # noqa: E731 -- tiny default callback
            if self._state == "open":
                if self._clock() - self._opened_at < self._timeout:
                    return False
                notify = self._set("half-open")
                self._successes = 0
                self._probe_in_flight = False
            if self._state == "half-open":
                if self._probe_in_flight:
                    allowed = False
                else:
                    self._probe_in_flight = True
                    allowed = True
            else:
                allowed = True
        notify()
        return allowed

    def record_success(self) -> None:
        """The call reached MLflow (even if MLflow refused it as invalid)."""
        with self._lock:
            notify: Callable[[], None] = lambda: None  # noqa: E731 -- tiny default callback
            self._failures = 0
            if self._state == "half-open":
                self._probe_in_flight = False
                self._successes += 1
                if self._successes >= self.config.success_threshold:
                    self._timeout = self.config.reset_timeout
                    notify = self._set("closed")
        notify()

    def record_failure(self) -> None:
        """The call failed with a transient error."""
        with self._lock:
            notify: Callable[[], None] = lambda: None  # noqa: E731 -- tiny default callback
            self._failures += 1
            if self._state == "half-open":
                # the probe failed: the outage goes on, probe less often (up to the cap)
                self._timeout = min(
                    self.config.max_reset_timeout, self._timeout * self.config.backoff
                )
            if self._state == "half-open" or (
                self._state == "closed" and self._failures >= self.config.failure_threshold
            ):
                self._opened_at = self._clock()
                self._probe_in_flight = False
                notify = self._set("open")
        notify()

    def release(self) -> None:
        """Give back a half-open probe slot without a verdict (e.g. the call was not made)."""
        with self._lock:
            self._probe_in_flight = False

    def seconds_until_probe(self) -> float:
        """How long until an open breaker lets a probe through (0 if not open)."""
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(0.0, self._timeout - (self._clock() - self._opened_at))


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(tracking_uri: str, config: BreakerConfig | None = None) -> CircuitBreaker:
    """The process-wide breaker for *tracking_uri* (created with *config* on first use).

    One breaker per tracking URI means every :class:`~hokusai.core.ModelRegistry` and
    :class:`~hokusai.tracking.ExperimentManager` pointed at the same server fails fast together.
    Pass an explicit ``breaker=`` to those classes to opt out of sharing. Asking again with a
    *different* config raises ``ValueError`` instead of silently keeping the first one;
    ``config=None`` means "whatever this process already uses".
    """
    key = tracking_uri.rstrip("/")
    with _breakers_lock:
        breaker = _breakers.get(key)
        if breaker is None:
            cfg = config or BreakerConfig()
            breaker = CircuitBreaker(
                key,
                failure_threshold=cfg.failure_threshold,
                reset_timeout=cfg.reset_timeout,
                success_threshold=cfg.success_threshold,
                max_reset_timeout=cfg.max_reset_timeout,
                backoff=cfg.backoff,
            )
            _breakers[key] = breaker
        elif config is not None and config != breaker.config:
            raise ValueError(
                f"the shared breaker for {key} already runs with {breaker.config}, not {config}; "
                "use the same BreakerConfig everywhere in this process, or give this client its "
                "own: ModelRegistry(uri, breaker=CircuitBreaker(uri, ...))"
            )
        return breaker
