from __future__ import annotations

import pytest

from hokusai.breaker import BreakerConfig, CircuitBreaker, breaker_for


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, **kw: float) -> tuple[CircuitBreaker, list[str]]:
    seen: list[str] = []
    b = CircuitBreaker(
        "uri",
        clock=clock,
        on_state_change=lambda _n, s: seen.append(s),
        **kw,  # type: ignore[arg-type]
    )
    return b, seen


def test_opens_after_threshold_consecutive_failures() -> None:
    clock = Clock()
    b, seen = make(clock, failure_threshold=3, reset_timeout=10)
    b.record_failure()
    b.record_failure()
    b.record_success()  # resets the count
    b.record_failure()
    b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open"
    assert not b.allow()
    assert seen == ["open"]
    assert b.seconds_until_probe() == pytest.approx(10)


def test_half_open_lets_exactly_one_probe_and_closes_on_success() -> None:
    clock = Clock()
    b, seen = make(clock, failure_threshold=1, reset_timeout=5)
    b.record_failure()
    clock.now = 4.9
    assert not b.allow()
    clock.now = 5.0
    assert b.allow()
    assert b.state == "half-open"
    assert not b.allow()  # a second concurrent call is refused while the probe runs
    b.record_success()
    assert b.state == "closed"
    assert b.allow() and b.allow()
    assert seen == ["open", "half-open", "closed"]


def test_failed_probes_back_off_up_to_the_cap_and_success_resets() -> None:
    clock = Clock()
    b, _ = make(clock, failure_threshold=1, reset_timeout=1, max_reset_timeout=5)
    b.record_failure()
    opened = []
    for _ in range(5):  # each failed probe doubles the wait: 1, 2, 4, then the 5 s cap
        wait = b.seconds_until_probe()
        opened.append(wait)
        clock.now += wait - 0.01
        assert not b.allow()
        clock.now += 0.01
        assert b.allow() and b.state == "half-open"
        b.record_failure()
    assert opened == [1, 2, 4, 5, 5]
    clock.now += 5
    assert b.allow()
    b.record_success()
    assert b.state == "closed"
    b.record_failure()  # a new outage starts from the short timeout again
    assert b.seconds_until_probe() == 1


def test_default_probes_within_seconds() -> None:
    cfg = BreakerConfig()
    assert (cfg.reset_timeout, cfg.max_reset_timeout, cfg.backoff) == (1.0, 10.0, 2.0)
    old = BreakerConfig(reset_timeout=60)  # a 0.2 config keeps its fixed 60 s
    assert (old.reset_timeout, old.max_reset_timeout) == (60, 60)


def test_success_threshold_needs_several_probes() -> None:
    clock = Clock()
    b, _ = make(clock, failure_threshold=1, reset_timeout=1, success_threshold=2)
    b.record_failure()
    clock.now = 1
    assert b.allow()
    b.record_success()
    assert b.state == "half-open"
    assert b.allow()
    b.record_success()
    assert b.state == "closed"


def test_release_frees_the_probe_slot() -> None:
    clock = Clock()
    b, _ = make(clock, failure_threshold=1, reset_timeout=0)
    b.record_failure()
    assert b.allow()
    b.release()
    assert b.allow()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"failure_threshold": 0}, "thresholds must be >= 1"),
        ({"success_threshold": 0}, "thresholds must be >= 1"),
        ({"reset_timeout": -1}, "reset_timeout"),
        ({"reset_timeout": 10, "max_reset_timeout": 5}, "max_reset_timeout"),
        ({"backoff": 0.5}, "backoff"),
    ],
)
def test_config_validation(kw: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BreakerConfig(**kw)  # type: ignore[arg-type]


def test_one_breaker_per_tracking_uri() -> None:
    a = breaker_for("http://127.0.0.1:7001/", BreakerConfig(failure_threshold=2))
    assert breaker_for("http://127.0.0.1:7001") is a
    assert breaker_for("http://127.0.0.1:7002") is not a
    assert a.config.failure_threshold == 2


def test_a_different_config_for_a_shared_breaker_is_refused() -> None:
    a = breaker_for("http://127.0.0.1:7003", BreakerConfig(failure_threshold=2))
    assert breaker_for("http://127.0.0.1:7003", BreakerConfig(failure_threshold=2)) is a
    assert breaker_for("http://127.0.0.1:7003") is a  # no config: whatever is in use
    with pytest.raises(ValueError, match="already runs with"):
        breaker_for("http://127.0.0.1:7003", BreakerConfig(failure_threshold=9))


def test_listener_added_later_gets_current_state() -> None:
    b, _ = make(Clock(), failure_threshold=1)
    b.record_failure()
    seen: list[str] = []
    b.add_listener(lambda _n, s: seen.append(s))
    assert seen == ["open"]


def test_keyed_listeners_replace_each_other() -> None:
    b, _ = make(Clock(), failure_threshold=1)
    first: list[str] = []
    second: list[str] = []
    b.add_listener(lambda _n, s: first.append(s), key="gauge")
    b.add_listener(lambda _n, s: second.append(s), key="gauge")
    b.record_failure()
    assert (first, second) == (["closed"], ["closed", "open"])
