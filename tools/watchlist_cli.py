"""``argus watchlist``: enroll, update, list and remove watchlist entries; lists; audit.

    argus watchlist enroll --list wanted --ref CASE-42 --name "J. Doe" photo1.jpg photo2.jpg
    argus watchlist update --list wanted --ref CASE-42 --add-photo photo3.jpg
    argus watchlist list [--list wanted] [--names]
    argus watchlist remove --list wanted --ref CASE-42      (or: remove --id PERSON_ID)
    argus watchlist set-list wanted --threshold 0.62 --category wanted
    argus watchlist audit [--count 20]

Photos are embedded by Triton's ``faces`` model (``--via local``: in-process, same code). A
photo with no usable face or with several is refused with a message naming it; nothing is
enrolled unless every photo is accepted (``--allow-partial`` enrolls the accepted ones).
Needs ``ARGUS_FACE_KEY`` for anything that seals or reads names/embeddings; every change is
written to the audit stream with ``--actor`` (default: the login name).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import redis

from argus.redact import redact_url
from argus.settings import get_settings
from argus.watchlist.photos import ENROLL_MIN_QUALITY, embed_photos, embed_photos_local
from argus.watchlist.store import Person, WatchList, WatchlistError, WatchlistStore, load_key


def photo_embeddings(paths: Sequence[Path], via: str = "triton",
                     min_quality: float = ENROLL_MIN_QUALITY,
                     ) -> tuple[list[npt.NDArray[np.float32]], list[str]]:
    """One embedding per accepted photo, and a message per refused photo."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        return [], [f"{p}: no such file" for p in missing]
    photos = [(p.name, p.read_bytes()) for p in paths]
    if via != "triton":
        return embed_photos_local(photos, get_settings().models_dir, min_quality)

    async def run() -> tuple[list[npt.NDArray[np.float32]], list[str]]:
        from argus.inference.faces import TritonFaces

        client = TritonFaces(get_settings().triton_grpc_url, timeout_s=120.0)
        try:
            return await embed_photos(photos, client, min_quality)
        finally:
            await client.close()

    return asyncio.run(run())


def _store(args: argparse.Namespace, need_key: bool) -> WatchlistStore:
    client = redis.Redis.from_url(args.redis_url or get_settings().redis_url)
    return WatchlistStore(client, load_key() if need_key else None)


def _resolve(store: WatchlistStore, args: argparse.Namespace) -> Person:
    person = store.get(args.id) if args.id else (
        store.find(args.list, args.ref) if args.list and args.ref else None)
    if person is None:
        what = args.id or f"{args.list}/{args.ref}"
        raise WatchlistError(f"no watchlist entry {what} (give --id, or --list and --ref)")
    return person


def _accepted_photos(args: argparse.Namespace, photos: Sequence[str],
                     ) -> list[npt.NDArray[np.float32]]:
    accepted, refused = photo_embeddings([Path(p) for p in photos], args.via)
    for message in refused:
        print(f"refused: {message}", file=sys.stderr)
    if refused and not (args.allow_partial and accepted):
        raise WatchlistError(f"{len(refused)} of {len(photos)} photo(s) refused; nothing "
                             "changed" + ("" if accepted else " (no usable photo)"))
    return accepted


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _row(person: Person, name: str | None = None) -> str:
    expires = time.strftime("%Y-%m-%d", time.gmtime(person.expires_at)) \
        if person.expires_at else "-"
    cols = [person.person_id, person.list_id, person.reference, person.category,
            str(person.photos), expires]
    return "  ".join(cols + ([name] if name is not None else []))


def _run(args: argparse.Namespace) -> int:
    expires = time.time() + args.expires_days * 86400 if getattr(
        args, "expires_days", None) else None
    if args.action == "enroll":
        store = _store(args, need_key=True)
        embeddings = _accepted_photos(args, args.photos)
        person = store.enroll(args.list, args.ref, args.name, np.stack(embeddings), args.actor,
                              category=args.category, expires_at=expires)
        print(f"enrolled {person.person_id} ({person.list_id}/{person.reference}) from "
              f"{person.photos} photo(s)")
    elif args.action == "update":
        store = _store(args, need_key=True)
        person = _resolve(store, args)
        add = np.stack(_accepted_photos(args, args.add_photo)) if args.add_photo else None
        replace = (np.stack(_accepted_photos(args, args.replace_photos))
                   if args.replace_photos else None)
        person = store.update(person.person_id, args.actor, name=args.name,
                              category=args.category, embeddings=replace,
                              add_embeddings=add, expires_at=expires)
        print(f"updated {person.person_id}: {person.photos} photo(s)")
    elif args.action == "list":
        store = _store(args, need_key=args.names)
        for wl in store.lists():
            if args.list in (None, wl.list_id):
                print(f"list {wl.list_id}: threshold {wl.threshold:.3f}, {wl.category}")
        for person in store.persons(args.list):
            print(_row(person, store.name(person.person_id) if args.names else None))
    elif args.action == "remove":
        store = _store(args, need_key=False)
        person = _resolve(store, args)
        store.remove(person.person_id, args.actor)
        print(f"removed {person.person_id} ({person.list_id}/{person.reference})")
    elif args.action == "set-list":
        store = _store(args, need_key=False)
        old = store.get_list(args.list_id)
        wl = WatchList(list_id=args.list_id,
                       threshold=args.threshold if args.threshold is not None else (
                           old.threshold if old else WatchList.model_fields["threshold"].default),
                       category=args.category or (old.category if old else "watch"),
                       description=args.description or (old.description if old else ""))
        store.set_list(wl, args.actor)
        print(f"list {wl.list_id}: threshold {wl.threshold:.3f}, {wl.category}")
    elif args.action == "audit":
        store = _store(args, need_key=False)
        for entry_id, fields in store.redis.xrevrange(store.audit_stream, count=args.count) or []:
            text = " ".join(f"{_str(k)}={_str(v)}" for k, v in (fields or {}).items())
            print(f"{_str(entry_id)}  {text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="argus watchlist", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="default: ARGUS_REDIS_URL")
    parser.add_argument("--actor", default=getpass.getuser(), help="who, for the audit log")
    sub = parser.add_subparsers(dest="action", required=True)

    def entry(p: argparse.ArgumentParser, need_ref: bool) -> None:
        p.add_argument("--list", required=need_ref, help="list id")
        p.add_argument("--ref", required=need_ref, help="the operator's reference")
        p.add_argument("--category", help="e.g. wanted, missing, banned")
        p.add_argument("--expires-days", type=float, help="retention: delete after N days")
        p.add_argument("--via", choices=("triton", "local"), default="triton")
        p.add_argument("--allow-partial", action="store_true",
                       help="enroll with the accepted photos even if some are refused")

    p = sub.add_parser("enroll", help="enroll a person from photos")
    entry(p, need_ref=True)
    p.add_argument("--name", required=True, help="stored encrypted")
    p.add_argument("photos", nargs="+")
    p = sub.add_parser("update", help="change an entry")
    entry(p, need_ref=False)
    p.add_argument("--id", help="the entry id (instead of --list and --ref)")
    p.add_argument("--name")
    p.add_argument("--add-photo", nargs="+", default=[])
    p.add_argument("--replace-photos", nargs="+", default=[])
    p = sub.add_parser("list", help="lists and entries")
    p.add_argument("--list")
    p.add_argument("--names", action="store_true", help="decrypt and show names")
    p = sub.add_parser("remove", help="delete an entry everywhere")
    p.add_argument("--id")
    p.add_argument("--list")
    p.add_argument("--ref")
    p = sub.add_parser("set-list", help="create or change a list")
    p.add_argument("list_id")
    p.add_argument("--threshold", type=float, help="cosine similarity to match")
    p.add_argument("--category")
    p.add_argument("--description")
    p = sub.add_parser("audit", help="the newest audit entries")
    p.add_argument("--count", type=int, default=20)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return _run(args)
    except WatchlistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"error: Redis: {redact_url(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
