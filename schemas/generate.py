"""Write ``schemas/json/<topic>.schema.json`` from the pydantic models.

Run ``python -m schemas.generate``; ``--check`` exits 1 if a file is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from schemas import TOPIC_MODELS

JSON_DIR = Path(__file__).parent / "json"


def render(topic: str) -> str:
    schema = TOPIC_MODELS[topic].model_json_schema()
    schema["$id"] = f"https://argus.dev/schemas/{topic}.schema.json"
    schema["x-topic"] = topic
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file differs")
    args = parser.parse_args(argv)
    stale = []
    JSON_DIR.mkdir(exist_ok=True)
    for topic in TOPIC_MODELS:
        path = JSON_DIR / f"{topic}.schema.json"
        text = render(topic)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        sys.stderr.write(f"out of date: {', '.join(stale)}; run python -m schemas.generate\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
