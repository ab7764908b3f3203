"""Masking credentials in URLs before they reach a log line, an error or CLI output.

:func:`redact_url` is the one helper: every place that logs, prints or returns a camera
source, a connection URL (Redis, Kafka, Triton) or a webhook URL passes it through here,
and the JSON log formatter (:mod:`argus.log`) applies it to every log event as well.

What is masked, anywhere in a text (one or more URLs, inside any message):

* the password of a ``scheme://user:password@host`` URL: ``user:***`` (the user name is
  kept, it helps tell cameras apart); a userinfo without ``:`` may itself be a token
  (``https://<token>@host``), so it is masked whole (``***@host``);
* the value of credential-looking query parameters (after ``?``, ``&`` or ``;``):
  ``password``, ``passwd``, ``pwd``, ``token``, ``access_token``, ``api_key``,
  ``apikey``, ``key``, ``secret``, ``auth``, ``signature``, ``sig`` and any name ending in
  ``_``/``-`` plus one of these (``client_secret``, ``X-Amz-Signature``), any case.

The userinfo runs from ``://`` to the *last* ``@`` before the first ``/`` or whitespace,
so a password holding ``@``, ``:``, ``?`` or ``#`` (encoded or not) is masked whole, and an
``@`` in the path is left alone. A ``?`` query holding ``@`` with no path before it reads
as userinfo and is masked too: masking too much beats leaking. The output is stable
(redacting twice changes nothing); text without credentials comes back unchanged.
"""

from __future__ import annotations

import re

MASK = "***"

_USERINFO = re.compile(
    r"(?P<scheme>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/]*)@")
"""``scheme://`` then everything up to the last ``@`` before a ``/`` or whitespace."""

_SECRET_NAMES = ("password|passwd|pwd|access_token|token|api_key|apikey|key|secret|auth"
                 "|signature|sig")
_QUERY = re.compile(
    rf"(?P<name>[?&;](?:[\w.-]*[_-])?(?:{_SECRET_NAMES})=)(?P<value>[^\s&#;\"'<>()\[\]{{}},]+)",
    re.IGNORECASE)
"""A credential-looking parameter (``?token=…``, ``&X-Amz-Signature=…``) and its value."""


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match["userinfo"]
    if not userinfo:  # ``rtsp://@host``: nothing to hide
        return match[0]
    user, colon, _password = userinfo.partition(":")
    masked = f"{user}:{MASK}" if colon else MASK
    return f"{match['scheme']}{masked}@"


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it masked (see the module docs).

    >>> redact_url("rtsp://admin:secret@10.0.0.5/stream")
    'rtsp://admin:***@10.0.0.5/stream'
    >>> redact_url("reconnecting to rtsp://u:p@ss@cam:554/live (attempt 3)")
    'reconnecting to rtsp://u:***@cam:554/live (attempt 3)'
    >>> redact_url("redis://:hunter2@redis:6379/0")
    'redis://:***@redis:6379/0'
    >>> redact_url("https://ghp_abc123@github.com/org/repo.git")
    'https://***@github.com/org/repo.git'
    >>> redact_url("http://host/hook?x=1&Token=abc&y=2")
    'http://host/hook?x=1&Token=***&y=2'
    >>> redact_url("rtsp://10.0.0.5/stream and /videos/a.mp4")
    'rtsp://10.0.0.5/stream and /videos/a.mp4'
    """
    if "@" in text and "://" in text:
        text = _USERINFO.sub(_mask_userinfo, text)
    if "=" in text:
        text = _QUERY.sub(lambda m: f"{m['name']}{MASK}", text)
    return text
