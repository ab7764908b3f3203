"""The webhook notifier's pure parts: status verdicts, backoff, filters, signing and
its configuration."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from schemas.alerts import Alert, ChangeKind, Severity
from services.notifier.notifier import RetryPolicy, Webhook, request_for, verdict
from services.notifier.service import NotifierConfig, WebhookConfigError, load_webhooks


@pytest.mark.parametrize(("status", "expected"), [
    (200, "delivered"), (201, "delivered"), (204, "delivered"), (299, "delivered"),
    (301, "failed"), (400, "failed"), (401, "failed"), (404, "failed"), (410, "failed"),
    (408, "retry"), (425, "retry"), (429, "retry"), (500, "retry"), (502, "retry"),
    (503, "retry"), (504, "retry"),
])
def test_verdicts(status: int, expected: str) -> None:
    assert verdict(status) == expected


@pytest.mark.parametrize(("attempt", "retry_after", "delay"), [
    (1, None, 0.5), (2, None, 1.0), (4, None, 4.0), (7, None, 30.0), (20, None, 30.0),
    (1, 3.0, 3.0), (1, 120.0, 30.0), (1, -5.0, 0.0),
])
def test_backoff(attempt: int, retry_after: float | None, delay: float) -> None:
    assert RetryPolicy(base_s=0.5, cap_s=30.0).delay(attempt, retry_after) == delay


def _alert(**update: object) -> Alert:
    base: dict[str, object] = dict(
        alert_id="a1", rule="r", title="t", severity=Severity.HIGH, site_id="s1", zone_id="z",
        lat=1.0, lon=2.0, first_seen=1.0, last_seen=2.0, evidence=[], created_at=2.0)
    return Alert.model_validate(base | update)


@pytest.mark.parametrize(("hook", "alert", "wanted"), [
    ({}, {}, True),
    ({"min_severity": "critical"}, {}, False),
    ({"min_severity": "high"}, {"severity": "critical"}, True),
    ({"changes": ["created"]}, {"change": "updated", "version": 2}, False),
    ({"changes": ["created", "updated"]}, {"change": "updated", "version": 2}, True),
    ({"sites": ["s2"]}, {}, False),
    ({"sites": ["s1", "s2"]}, {}, True),
])
def test_webhook_filters(hook: dict[str, object], alert: dict[str, object], wanted: bool
                         ) -> None:
    webhook = Webhook.model_validate({"name": "h", "url": "http://127.0.0.1:1/x", **hook})
    assert webhook.wants(_alert(**alert)) is wanted


def test_request_body_headers_and_signature() -> None:
    webhook = Webhook(name="h", url="http://127.0.0.1:1/x", secret="s3cret")
    alert = _alert(version=3, change=ChangeKind.UPDATED)
    body, headers = request_for(webhook, alert)
    assert json.loads(body) == {"change": "updated", "alert": alert.model_dump(mode="json")}
    assert headers["X-Argus-Event"] == "alert.updated"
    assert headers["X-Argus-Delivery"] == "a1:3"
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Argus-Signature"] == f"sha256={expected}"
    unsigned = Webhook(name="h", url="http://127.0.0.1:1/x")
    assert "X-Argus-Signature" not in request_for(unsigned, alert)[1]


def test_load_webhooks(tmp_path: Path) -> None:
    path = tmp_path / "hooks.yaml"
    path.write_text("webhooks:\n  - {name: chat, url: 'https://chat.example/h', "
                    "min_severity: high, changes: [created]}\n")
    hooks = load_webhooks(NotifierConfig(webhook_urls="http://a.example/1, http://b.example/2",
                                         webhooks_file=path))
    assert [(h.name, str(h.url), h.min_severity.value) for h in hooks] == [
        ("hook-1", "http://a.example/1", "info"), ("hook-2", "http://b.example/2", "info"),
        ("chat", "https://chat.example/h", "high")]
    assert hooks[2].changes == frozenset({ChangeKind.CREATED})


@pytest.mark.parametrize(("urls", "text", "message"), [
    ("not a url", None, "ARGUS_WEBHOOK_URLS"),
    ("", "webhooks: 1\n", "expected a mapping with a 'webhooks' list"),
    ("", "webhooks:\n  - {name: x, url: 'http://a.example', min_severity: huge}\n",
     r"webhooks\[0\].min_severity"),
    ("", "webhooks:\n  - {name: hook-1, url: 'http://a.example'}\n", "must be unique"),
])
def test_bad_webhook_config(tmp_path: Path, urls: str, text: str | None, message: str) -> None:
    path = None
    if text is not None:
        path = tmp_path / "hooks.yaml"
        path.write_text(text)
    if message == "must be unique":
        urls = "http://b.example"
    with pytest.raises(WebhookConfigError, match=message):
        load_webhooks(NotifierConfig(webhook_urls=urls, webhooks_file=path))
