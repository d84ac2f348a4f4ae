"""The supervisor's pure parts: the settings a worker inherits, and when a dead one restarts."""

from __future__ import annotations

import pytest

from tickrelay.server.settings import Settings
from tickrelay.server.supervisor import (
    BACKOFF_FIRST,
    BACKOFF_MAX,
    STABLE_AFTER,
    RestartPolicy,
    child_environment,
    settings_environment,
)

UNUSUAL = Settings(
    port=9123,
    workers=3,
    redis_url="redis://127.0.0.1:7000/0",
    auth_secret="s" * 40,
    allowed_origins=["https://a.example", "https://b.example"],
    tick_rate=30,
    create_rooms_on_join=False,
    resume_grace=2.5,
    permessage_deflate=True,
)


def test_a_worker_rebuilds_every_setting_from_its_environment(monkeypatch):
    for name, value in settings_environment(UNUSUAL).items():
        monkeypatch.setenv(name, value)
    assert Settings() == UNUSUAL.model_copy(update={"workers": 1})


def test_a_setting_unset_for_the_supervisor_stays_unset_for_its_workers(monkeypatch):
    monkeypatch.setenv("tickrelay_admin_token", "from-the-shell")  # read case-blind
    settings = Settings(admin_token=None, workers=2, redis_url="redis://x", port=9000)
    env = child_environment(settings, 0, 5)
    assert not [name for name in env if name.upper() == "TICKRELAY_ADMIN_TOKEN"]


def test_a_worker_is_told_its_index():
    settings = Settings(workers=2, redis_url="redis://x", port=9000)
    assert child_environment(settings, 1, 5)["TICKRELAY_WORKER_INDEX"] == "1"


def test_restarts_back_off_doubling_up_to_the_cap():
    policy = RestartPolicy(per_minute=1000)
    delays = [policy.delay(0, lived=0.1, now=float(i * 100))[0] for i in range(10)]
    assert delays[:3] == [BACKOFF_FIRST, 2 * BACKOFF_FIRST, 4 * BACKOFF_FIRST]
    assert delays[-1] == BACKOFF_MAX


def test_a_worker_that_lived_long_restarts_without_backoff():
    policy = RestartPolicy(per_minute=1000)
    for i in range(5):
        policy.delay(0, lived=0.1, now=float(i * 100))
    assert policy.delay(0, lived=STABLE_AFTER, now=1000.0) == (BACKOFF_FIRST, False)


def test_backoff_is_kept_per_worker():
    policy = RestartPolicy(per_minute=1000)
    for i in range(5):
        policy.delay(0, lived=0.1, now=float(i * 100))
    assert policy.delay(1, lived=0.1, now=1000.0) == (BACKOFF_FIRST, False)


def test_restarts_beyond_the_bound_per_minute_wait_for_the_minute_to_pass():
    policy = RestartPolicy(per_minute=3)
    for index in range(3):
        assert policy.delay(index, lived=STABLE_AFTER, now=100.0) == (BACKOFF_FIRST, False)
    delay, bounded = policy.delay(3, lived=STABLE_AFTER, now=100.0)
    assert bounded
    assert delay == pytest.approx(60.0 + BACKOFF_FIRST)
