"""Credentials in URLs are masked wherever the text comes from (argus.redact)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import aiohttp
import pytest

from argus.redact import redact_url

MASKED = [
    # userinfo: the password is masked, the user kept
    ("rtsp://admin:secret@10.0.0.5/stream", "rtsp://admin:***@10.0.0.5/stream"),
    ("rtsp://admin:secret@10.0.0.5", "rtsp://admin:***@10.0.0.5"),
    ("rtsp://admin:secret@10.0.0.5:554/Streaming/Channels/101",
     "rtsp://admin:***@10.0.0.5:554/Streaming/Channels/101"),
    ("rtsps://viewer:s3cr3t@cam.example.org/live", "rtsps://viewer:***@cam.example.org/live"),
    ("RTSP://Admin:Secret@CAM/live", "RTSP://Admin:***@CAM/live"),
    ("rtmp://pub:key@ingest:1935/app/stream", "rtmp://pub:***@ingest:1935/app/stream"),
    ("http://user:pass@cam/mjpg/video.mjpg", "http://user:***@cam/mjpg/video.mjpg"),
    # '@' in the password, raw or percent-encoded: masked up to the last '@' of the host
    ("rtsp://u:p@ss@host/", "rtsp://u:***@host/"),
    ("rtsp://u:p@s@s@host:554/x", "rtsp://u:***@host:554/x"),
    ("rtsp://u:p%40ss@host/", "rtsp://u:***@host/"),
    ("rtsp://u%40corp:p%3Ass@host/", "rtsp://u%40corp:***@host/"),
    # ':', '?', '#' and quotes inside the password
    ("rtsp://u:a:b:c@host/", "rtsp://u:***@host/"),
    ("rtsp://admin:Pa#ss?1@cam/live", "rtsp://admin:***@cam/live"),
    ("rtsp://admin:it's\"x@cam/live", "rtsp://admin:***@cam/live"),
    # an empty password still marks a user:password form
    ("rtsp://admin:@cam/live", "rtsp://admin:***@cam/live"),
    # IPv6 hosts and ports
    ("rtsp://admin:pw@[fe80::1]:554/stream", "rtsp://admin:***@[fe80::1]:554/stream"),
    ("rtsp://admin:pw@[2001:db8::7]/s", "rtsp://admin:***@[2001:db8::7]/s"),
    # no password: the user alone may be a token, masked whole
    ("rtsp://user@host/live", "rtsp://***@host/live"),
    ("https://ghp_abcdef123@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
    # connection URLs from the settings
    ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
    ("rediss://default:pw@cache.example:6380", "rediss://default:***@cache.example:6380"),
    ("kafka://svc:pw@broker:9092", "kafka://svc:***@broker:9092"),
    ("amqp://guest:guest@localhost:5672/%2F", "amqp://guest:***@localhost:5672/%2F"),
    # inside log messages and exception texts
    ("cannot open rtsp://admin:secret@10.0.0.5/stream; retrying in 2s",
     "cannot open rtsp://admin:***@10.0.0.5/stream; retrying in 2s"),
    ("[ WARN:0@1.2] global cap_ffmpeg_impl.hpp:1541 open Could not open "
     "'rtsp://admin:secret@10.0.0.5/stream'",
     "[ WARN:0@1.2] global cap_ffmpeg_impl.hpp:1541 open Could not open "
     "'rtsp://admin:***@10.0.0.5/stream'"),
    ("source='rtsp://a:b@h/x'", "source='rtsp://a:***@h/x'"),
    ('{"source": "rtsp://a:b@h/x", "fps": 5}', '{"source": "rtsp://a:***@h/x", "fps": 5}'),
    ("(rtsp://a:b@h)", "(rtsp://a:***@h)"),
    ("camera_rtsp://a:b@h/x", "camera_rtsp://a:***@h/x"),
    ("source=rtsp://a:b@h/x", "source=rtsp://a:***@h/x"),
    ("two: rtsp://a:b@h1/x and rtsp://c:d@h2/y",
     "two: rtsp://a:***@h1/x and rtsp://c:***@h2/y"),
    ("line one rtsp://a:b@h1/x\nline two http://c:d@h2",
     "line one rtsp://a:***@h1/x\nline two http://c:***@h2"),
    # credential-looking query parameters, any case
    ("http://host/path?x=1&token=abc", "http://host/path?x=1&token=***"),
    ("http://host/path?token=abc&x=1", "http://host/path?token=***&x=1"),
    ("https://h/hook?Password=p&passwd=q&PWD=r", "https://h/hook?Password=***&passwd=***&PWD=***"),
    ("https://h/?access_token=a.b.c#frag", "https://h/?access_token=***#frag"),
    ("https://h/?api_key=k1&apikey=k2&key=k3", "https://h/?api_key=***&apikey=***&key=***"),
    ("https://h/?secret=s&auth=a&signature=x%2By", "https://h/?secret=***&auth=***&signature=***"),
    ("https://b.s3.example/o?X-Amz-Credential=AK%2F1&X-Amz-Signature=ab12",
     "https://b.s3.example/o?X-Amz-Credential=AK%2F1&X-Amz-Signature=***"),
    ("https://h/?client_secret=c&refresh_token=r", "https://h/?client_secret=***&refresh_token=***"),
    ("rtsp://cam/live;token=t1", "rtsp://cam/live;token=***"),
    ("GET /ws?api_key=abc HTTP/1.1", "GET /ws?api_key=*** HTTP/1.1"),
    ("url=URL('https://h/x?token=abc')", "url=URL('https://h/x?token=***')"),
    # both at once
    ("rtsp://admin:pw@cam/live?token=t", "rtsp://admin:***@cam/live?token=***"),
]

UNCHANGED = [
    "",
    "camera started",
    "rtsp://10.0.0.5/stream",
    "rtsp://10.0.0.5:554/stream?channel=1&subtype=0",
    "rtsp://[::1]:554/stream",
    "http://host/users/@alice/feed",
    "http://host/path/a@b?x=1",
    "https://h/?monkey=1&keyboard=2&tokens=3&keys=4",
    "https://h/?token=&x=1",
    "/videos/lobby@night.mp4",
    "file:///videos/a@b.mp4",
    "C:\\videos\\a.mp4",
    "0",
    "write to ops@example.org",
    "a=1 b=2 password is not a query",
    "10.0.0.5:9092",
    "rtsp://@host/live",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_masks_credentials(text: str, expected: str) -> None:
    assert redact_url(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_leaves_text_without_credentials_alone(text: str) -> None:
    assert redact_url(text) == text


@pytest.mark.parametrize("text", [t for t, _ in MASKED] + UNCHANGED)
def test_redacting_twice_changes_nothing(text: str) -> None:
    once = redact_url(text)
    assert redact_url(once) == once


@pytest.mark.parametrize(("text", "secret"), [
    ("rtsp://admin:secret@10.0.0.5/stream", "secret"),
    ("rtsp://u:p@ss@host/", "p@ss"),
    ("rtsp://u:p@ss@host/", "ss@"),
    ("redis://:hunter2@redis:6379/0", "hunter2"),
    ("http://host/path?x=1&token=abc", "abc"),
])
def test_the_secret_is_gone(text: str, secret: str) -> None:
    assert secret not in redact_url(text)


# --- where URLs reach messages -----------------------------------------------------------

BAD_YAML = "{source: rtsp://admin:s3cret@cam/x?token=t0k: y: z}\n"


def test_topology_yaml_errors_mask_the_quoted_line() -> None:
    from argus.topology import TopologyError, parse_topology

    with pytest.raises(TopologyError) as err:
        parse_topology(BAD_YAML)
    assert "rtsp://admin:***@cam/x?token=***" in str(err.value)
    assert "s3cret" not in str(err.value) and "t0k" not in str(err.value)
    assert err.value.__cause__ is None  # the unmasked YAML error is not chained


def test_rules_yaml_errors_mask_the_quoted_line() -> None:
    from pipelines.stages.correlate.rules.loader import RuleError, parse_rules

    with pytest.raises(RuleError) as err:
        parse_rules(BAD_YAML.replace("rtsp", "https"))
    assert "https://admin:***@cam/x?token=***" in str(err.value)
    assert "s3cret" not in str(err.value) and "t0k" not in str(err.value)


def test_webhooks_file_errors_mask_the_quoted_line(tmp_path: Path) -> None:
    from services.notifier.service import NotifierConfig, WebhookConfigError, load_webhooks

    path = tmp_path / "webhooks.yaml"
    path.write_text(BAD_YAML.replace("rtsp", "https"))
    with pytest.raises(WebhookConfigError) as err:
        load_webhooks(NotifierConfig(webhook_urls="", webhooks_file=path))
    assert "s3cret" not in str(err.value) and "t0k" not in str(err.value)


class _RefusingSession:
    """An aiohttp session whose POSTs fail with an error quoting the URL."""

    def post(self, url: str, **kwargs: object) -> None:
        raise aiohttp.InvalidURL(url)


def test_webhook_delivery_errors_are_masked() -> None:
    from services.notifier.notifier import RetryPolicy, post

    url = "https://hooks.example/argus?token=t0k&x=1"
    done = asyncio.run(post(cast(aiohttp.ClientSession, _RefusingSession()), url, b"{}", {},
                            "hook-1", RetryPolicy(attempts=1)))
    assert done.outcome == "failed"
    assert done.error == "InvalidURL: https://hooks.example/argus?token=***&x=1"


def test_api_keys_are_left_out_of_the_settings_repr() -> None:
    from argus.settings import Settings
    from services.alert_api.config import ApiConfig

    secret = "ops=s3cr3t-key-value:operator"
    for settings in (Settings(api_keys=secret), ApiConfig(api_keys=secret)):
        assert settings.api_keys == secret
        assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings)
