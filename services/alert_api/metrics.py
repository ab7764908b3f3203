"""Prometheus metrics of the alert API (served on its own ``/metrics``).

Labels are bounded: route templates (never raw paths), methods, status codes, actions
and outcomes — never an alert id or an API key.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from argus.metrics import LATENCY_BUCKETS

REQUESTS = Counter("argus_alert_api_requests_total", "HTTP requests answered",
                   ["route", "method", "status"])
REQUEST_LATENCY = Histogram("argus_alert_api_request_seconds", "Time to answer a request",
                            ["route"], buckets=LATENCY_BUCKETS)
ACTIONS = Counter("argus_alert_actions_total", "Operator actions on alerts",
                  ["action", "outcome"])
FEED_CLIENTS = Gauge("argus_alert_feed_clients", "Connected live-feed clients", ["kind"])
FEED_FOREIGN = Counter("argus_alert_feed_foreign_total",
                       "Changes on the shared channel of alerts another Redis database holds")
FEED_DROPPED = Counter("argus_alert_feed_dropped_total",
                       "Live-feed clients disconnected for falling behind")
CHANGES_PUBLISHED = Counter("argus_alert_changes_published_total",
                            "Alert changes sent to the alerts topic by the API",
                            ["outcome"])
SESSIONS = Counter("argus_console_sessions_total", "Console sign-ins and sign-outs",
                   ["outcome"])
EXPORTS = Counter("argus_case_exports_total", "Case exports (zip of an alert's evidence)",
                  ["outcome"])
