"""The alert API: REST, live feed and operator actions over the Redis live picture
(``python -m services.alert_api``; see ``docs/alerts.md``)."""
