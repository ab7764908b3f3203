"""Check a rules file against a topology.

``python -m pipelines.stages.correlate.rules.check [RULES]``.

Prints one line per rule, or the errors (file, line, field); exits 1 on errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from argus.settings import REPO_ROOT, get_settings
from argus.topology import TopologyError, load_topology
from pipelines.stages.correlate.rules.loader import RuleError, load_rules

DEFAULT_RULES = REPO_ROOT / "config" / "rules.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rules", nargs="?", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--topology", type=Path, default=None,
                        help="default: ARGUS_TOPOLOGY (config/topology.yaml)")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        topology = load_topology(args.topology or settings.topology, settings.shared)
        rules = load_rules(args.rules, topology)
    except (RuleError, TopologyError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    for rule in rules.rules:
        what = (f"{len(rule.events)} event(s)" if rule.events
                else f"silence {rule.silence.for_s if rule.silence else 0:g} s")
        state = "" if rule.enabled else " (disabled)"
        sys.stdout.write(f"{rule.id:24} {rule.severity.value:9} {what}{state}\n")
    sys.stdout.write(f"{args.rules}: {len(rules.rules)} rules OK\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
