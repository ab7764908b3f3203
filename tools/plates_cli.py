"""``argus plates list``: hotlists and allow lists of plates (add, remove, show, check).

    argus plates list add stolen AB12CDE --reason "reported stolen" [--kind hotlist]
                                         [--expires-in-days 30]
    argus plates list add staff-depot KX70ABC --kind allow --reason "staff car"
    argus plates list remove stolen AB12CDE
    argus plates list show stolen
    argus plates list check stolen A812CDE      (what a read would hit, with the distance)

Entries are stored under a keyed hash of the plate, with the plate and the reason sealed
(``argus/plates/hotlist.py``); every command needs ``ARGUS_PLATE_KEY`` and writes who did it
(``--actor``, default the login name) to the audit stream ``argus:audit:plates``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Sequence

import redis

from argus.plates.hotlist import PlateKeys, PlateListStore, load_plate_key
from argus.redact import redact_url
from argus.settings import get_settings
from argus.watchlist.crypto import WatchlistError


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
    return parser


def run(args: argparse.Namespace) -> int:
    client = redis.Redis.from_url(args.redis_url or get_settings().redis_url)
    store = PlateListStore(client, PlateKeys.from_master(load_plate_key()))
    actor = args.actor or getpass.getuser()
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
    except WatchlistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"error: Redis: {redact_url(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
