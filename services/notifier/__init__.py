"""The webhook notifier: alert changes from the ``alerts`` topic to HTTP receivers
(``python -m services.notifier``; see ``docs/alerts.md``)."""
