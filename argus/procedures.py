"""Rules' procedures: the optional ``procedure:`` list of steps of each rule in the rules
file (``ARGUS_RULES``), which the operations console shows as a checklist.

Read here, in the core, so the alert API needs nothing of the rule engine: only each
rule's ``id`` and ``procedure`` are looked at (the engine validates the whole rule). The
file is read again when it changes, like the workers' hot reload; a file that cannot be
read keeps the last good procedures.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from argus.log import get_logger

log = get_logger(__name__)


class _RuleSteps(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    procedure: list[str] = Field(default_factory=list)


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rules: list[_RuleSteps] = Field(default_factory=list)


def parse_procedures(text: str) -> dict[str, list[str]]:
    """The steps of every rule that has a procedure.

    >>> parse_procedures("rules:\\n  - id: fire\\n    title: x\\n    procedure: [Call 112]\\n"
    ...                  "  - id: loitering\\n")
    {'fire': ['Call 112']}
    """
    parsed = _RulesFile.model_validate(yaml.safe_load(text) or {})
    return {rule.id: rule.procedure for rule in parsed.rules if rule.procedure}


class Procedures:
    """The procedures of a rules file, re-read when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._steps: dict[str, list[str]] = {}

    def steps(self, rule: str) -> list[str]:
        """The steps of ``rule`` (empty if it has none or the file cannot be read)."""
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self._steps = parse_procedures(self.path.read_text())
                self._mtime = mtime
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            log.warning("procedures.unreadable", extra={"path": str(self.path),
                                                        "error": str(exc)[:300]})
        return self._steps.get(rule, [])
