"""``argus plates list``: hotlists and allow lists of plates (add, remove, show, check).

    argus plates list add stolen AB12CDE --reason "reported stolen" [--kind hotlist]
                                         [--expires-in-days 30]
    argus plates list add staff-depot KX70ABC --kind allow --reason "staff car"
    argus plates list remove stolen AB12CDE
    argus plates list show stolen
    argus plates list check stolen A812CDE      (what a read would hit, with the distance)
    argus plates sightings 'AB12*' [--since 7d] [--until TIME] [--site depot] [--fuzzy]
                                   [--limit 100] [--json]

Entries are stored under a keyed hash of the plate, with the plate and the reason sealed
(``argus/plates/hotlist.py``); sightings likewise (``argus/plates/sightings.py``). Every
command needs ``ARGUS_PLATE_KEY`` and writes who did it (``--actor``, default the login name)
to the audit stream ``argus:audit:plates``, searches included (by the pattern's keyed hash,
never the plate). Times: Unix seconds, ISO 8601, or an age such as ``90m``, ``24h``, ``7d``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Sequence

import redis

from argus.plates.hotlist import PlateKeys, PlateListStore, load_plate_key
from argus.plates.patterns import PatternError
from argus.plates.sightings import SightingSearch, SightingStore
from argus.redact import redact_url
from argus.settings import get_settings
from argus.watchlist.crypto import WatchlistError
from services.alert_api.queries import parse_time

AGES = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def when(text: str) -> float:
    """Unix seconds, ISO 8601, or an age (``90m``, ``24h``, ``7d``) before now.

    >>> round(time.time() - when("2h"))
    7200
    >>> when("1700000000")
    1700000000.0
    """
    text = text.strip()
    if text[-1:].lower() in AGES:
        try:
            return time.time() - float(text[:-1]) * AGES[text[-1].lower()]
        except ValueError:
            pass
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (Unix s, ISO 8601, or an age such as 24h, 7d)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="argus plates", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=None, help="default: ARGUS_REDIS_URL")
    parser.add_argument("--actor", default=None, help="who (default: the login name)")
    top = parser.add_subparsers(dest="group", required=True)
    lists = top.add_parser("list", help="hotlists and allow lists")
    sub = lists.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="list a plate")
    add.add_argument("list_id")
    add.add_argument("plate")
    add.add_argument("--reason", required=True)
    add.add_argument("--kind", choices=["hotlist", "allow"], default="hotlist")
    add.add_argument("--expires-in-days", type=float, default=None)
    remove = sub.add_parser("remove", help="delist a plate")
    remove.add_argument("list_id")
    remove.add_argument("plate")
    show = sub.add_parser("show", help="the entries of a list (clear text: needs the key)")
    show.add_argument("list_id")
    check = sub.add_parser("check", help="what a read would hit")
    check.add_argument("list_id")
    check.add_argument("read")
    seen = top.add_parser("sightings", help="where a plate was seen (audited)")
    seen.add_argument("pattern", help="a plate, or * (any run) and ? (one character)")
    seen.add_argument("--since", type=when, default=None, help="default: the retention")
    seen.add_argument("--until", type=when, default=None)
    seen.add_argument("--site", default=None)
    seen.add_argument("--fuzzy", action="store_true",
                      help="also one edit away, or OCR confusions (0/O, 1/I, 8/B, 5/S)")
    seen.add_argument("--limit", type=lambda text: max(1, int(text)), default=100)
    seen.add_argument("--json", action="store_true", help="JSON instead of a table")
    return parser


def print_sightings(result: SightingSearch, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"count": len(result.sightings), "truncated": result.truncated,
                          "scanned": result.scanned,
                          "sightings": [s.model_dump(mode="json") for s in result.sightings]},
                         indent=2))
        return
    for s in result.sightings:
        where = "-" if s.lat is None or s.lon is None else f"{s.lat:.5f},{s.lon:.5f}"
        heading = "-" if s.direction_deg is None else f"{s.direction_deg:.0f}deg"
        hits = ",".join(h.list_id for h in s.hits) or "-"
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(s.ts))}Z  {s.plate:<10} "
              f"d={s.distance}  {s.camera_id:<14} {s.site_id:<12} {where:<20} "
              f"{s.vehicle_class} {s.colour} {heading}  conf {s.confidence:.2f}  "
              f"lists {hits}  {s.snapshot_ref or '-'}")
    if result.truncated:
        print(f"stopped after decrypting {result.scanned} sightings: narrow --since/--until "
              "or give --site", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    client = redis.Redis.from_url(args.redis_url or settings.redis_url)
    keys = PlateKeys.from_master(load_plate_key())
    store = PlateListStore(client, keys)
    actor = args.actor or getpass.getuser()
    if args.group == "sightings":
        sightings = SightingStore(client, keys,
                                  retention_s=settings.plate_sightings_retention_s)
        result = sightings.query(args.pattern, args.since, args.until, args.site, args.fuzzy,
                                 args.limit, actor)
        print_sightings(result, args.json)
        if not result.sightings and not args.json:
            print("no sightings", file=sys.stderr)
        return 0 if result.sightings else 1
    if args.action == "add":
        expires = None if args.expires_in_days is None else \
            time.time() + args.expires_in_days * 86400
        entry = store.add(args.list_id, args.kind, args.plate, args.reason, actor, expires)
        print(f"added to {entry.list_id} ({entry.kind}): entry {entry.entry_id}")
    elif args.action == "remove":
        if not store.remove(args.list_id, args.plate, actor):
            print(f"not on {args.list_id}", file=sys.stderr)
            return 1
        print(f"removed from {args.list_id}")
    elif args.action == "show":
        for entry, plate, reason in store.show(args.list_id):
            expiry = "never" if entry.expires_at is None else time.strftime(
                "%Y-%m-%d %H:%M", time.gmtime(entry.expires_at))
            print(f"{plate:<10} {entry.kind:<8} expires {expiry:<16} by {entry.created_by:<12} "
                  f"{reason}")
    else:
        match = store.match(args.list_id, args.read)
        if match is None:
            print(f"no hit on {args.list_id}")
            return 1
        print(f"hit: {match.plate} ({match.entry.kind}, distance {match.distance}): "
              f"{match.reason}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return run(args)
    except (WatchlistError, PatternError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"error: Redis: {redact_url(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
