"""The correlation rule engine: rules as data (``config/rules.yaml``), pure and stateful only
through the JSON-safe per-site state it is handed.

    engine = RuleEngine(load_rules(path, topology), topology)
    changes = engine.observe(state, event, now)   # -> [AlertChange(opened|updated|escalated)]
    changes += engine.tick(state, now, site_id)   # due absences, silent sensors
    engine.reload(load_rules(path, topology))     # keeps state of rules whose id is unchanged
"""

from pipelines.stages.correlate.rules.alerts import AlertChange, alert_id
from pipelines.stages.correlate.rules.commands import commands_for
from pipelines.stages.correlate.rules.context import SiteContext, site_contexts
from pipelines.stages.correlate.rules.engine import RuleEngine, State
from pipelines.stages.correlate.rules.loader import RuleError, load_rules, parse_rules
from pipelines.stages.correlate.rules.model import ChangeKind, Rule, RuleSet

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
    "commands_for",
    "load_rules",
    "parse_rules",
    "site_contexts",
]
