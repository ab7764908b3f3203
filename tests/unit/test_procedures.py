"""Rules' procedures as the alert API reads them (``argus.procedures``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from argus.procedures import Procedures, parse_procedures
from argus.settings import REPO_ROOT
from pipelines.stages.correlate.rules.loader import load_rules


@pytest.mark.parametrize(("text", "expected"), [
    ("rules:\n  - id: fire\n    procedure: [Call 112, Evacuate]\n", {"fire": ["Call 112",
                                                                              "Evacuate"]}),
    ("rules:\n  - id: fire\n    title: t\n", {}),  # no procedure: not listed
    ("rules: []\n", {}),
    ("", {}),
    ("version: 1\nrules:\n  - {id: a, procedure: [x]}\n  - {id: b, procedure: []}\n",
     {"a": ["x"]}),
])
def test_parse_procedures(text: str, expected: dict[str, list[str]]) -> None:
    assert parse_procedures(text) == expected


def test_the_shipped_rules_have_procedures_the_engine_accepts() -> None:
    path = REPO_ROOT / "config" / "rules.yaml"
    procedures = Procedures(path)
    assert len(procedures.steps("confirmed_intrusion")) == 4
    assert procedures.steps("fire")[0].startswith("Call the fire brigade")
    assert procedures.steps("loitering") == []
    engine = {rule.id: rule.procedure for rule in load_rules(path).rules}
    assert engine["confirmed_intrusion"] == procedures.steps("confirmed_intrusion")


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_last(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {id: a, procedure: [one]}\n")
    procedures = Procedures(path)
    assert procedures.steps("a") == ["one"]
    path.write_text("rules:\n  - {id: a, procedure: [one, two]}\n")
    os.utime(path, (1, 1))  # a different modification time, however fast the test runs
    assert procedures.steps("a") == ["one", "two"]
    path.write_text("rules: [unclosed\n")
    os.utime(path, (2, 2))
    assert procedures.steps("a") == ["one", "two"]
    assert Procedures(tmp_path / "missing.yaml").steps("a") == []
