"""FeedbackSettings: the HEARBY_FEEDBACK_ prefix, the shared HEARBY_REDIS_URL and the units."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.feedback.settings import DEFAULT_PORT, FeedbackSettings

pytestmark = pytest.mark.usefixtures("clean_hearby_env")


def test_settings_defaults_serve_on_the_feedback_port_with_a_local_redis():
    settings = FeedbackSettings()
    assert settings.port == DEFAULT_PORT == 50055
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.key_prefix == "hearby:{feedback}"
    assert settings.history_length == 200
    assert settings.impression_ttl_seconds == 7 * 86400
    assert settings.event_dedupe_ttl_seconds == 30 * 86400
    assert settings.events_max_length == 1_000_000


def test_settings_read_the_shared_redis_url_and_prefer_the_feedback_one(monkeypatch):
    monkeypatch.setenv("HEARBY_REDIS_URL", "redis://shared:6379/2")
    assert FeedbackSettings().redis_url == "redis://shared:6379/2"
    monkeypatch.setenv("HEARBY_FEEDBACK_REDIS_URL", "redis://own:6379/0")
    assert FeedbackSettings().redis_url == "redis://own:6379/0"


def test_settings_convert_hours_and_days_to_seconds(monkeypatch):
    monkeypatch.setenv("HEARBY_FEEDBACK_IMPRESSION_TTL_HOURS", "0.5")
    monkeypatch.setenv("HEARBY_FEEDBACK_EVENT_DEDUPE_TTL_DAYS", "2")
    settings = FeedbackSettings()
    assert (settings.impression_ttl_seconds, settings.event_dedupe_ttl_seconds) == (
        1800,
        2 * 86400,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HEARBY_FEEDBACK_HISTORY_LENGTH", "0"),
        ("HEARBY_FEEDBACK_IMPRESSION_TTL_HOURS", "0"),
        ("HEARBY_FEEDBACK_REDIS_TIMEOUT_SECONDS", "-1"),
        ("HEARBY_FEEDBACK_EVENTS_MAX_LENGTH", "-1"),
    ],
)
def test_settings_reject_values_out_of_range(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("HEARBY_FEEDBACK_").lower()):
        FeedbackSettings()
