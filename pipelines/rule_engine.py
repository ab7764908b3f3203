"""The correlation rule engine's public API (the code lives in :mod:`pipelines.correlation`).

Rules are data in ``config/rules.yaml`` (see ``docs/rules.md``); the engine turns video and
sensor events into alert changes on a JSON-safe per-site state:

    engine = RuleEngine(load_rules(path, topology), topology)
    changes = engine.observe(state, event, now)   # -> [AlertChange(opened|updated|escalated)]
"""

from pipelines.correlation import (
    AlertChange,
    ChangeKind,
    Rule,
    RuleEngine,
    RuleError,
    RuleSet,
    SiteContext,
    State,
    alert_id,
    load_rules,
    parse_rules,
    site_contexts,
)

__all__ = [
    "AlertChange",
    "ChangeKind",
    "Rule",
    "RuleEngine",
    "RuleError",
    "RuleSet",
    "SiteContext",
    "State",
    "alert_id",
    "load_rules",
    "parse_rules",
    "site_contexts",
]
