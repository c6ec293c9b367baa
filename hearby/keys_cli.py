"""``hearby keys``: create, list, rotate and revoke the API keys hearby services accept.

    hearby keys create --name partner-x --scopes read          # prints the key once
    hearby keys create --name ingest-bot --scopes write --rate 50
    hearby keys list
    hearby keys rotate 3f9a1c2e          # a new key, same name and scopes; the old one still works
    hearby keys revoke 3f9a1c2e          # refused from the next call on, no restart

The key file is ``--file``, else ``HEARBY_AUTH_KEYS_FILE``, else ``var/stack/keys/keys.json``
(the one ``hearby up`` uses with its default data folder). It holds only SHA-256 hashes of
the secrets; servers re-read it when it changes. Scopes: ``read`` (Similar, Recommend,
Session, lookups), ``write`` (catalog submissions, events, ratings), ``admin`` (versions,
experiments, dead letters, rating exports; includes read and write).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.common.auth import add_key, parse_scopes, read_key_file, revoke_key
from services.common.errors import HearbyError
from services.common.private_files import write_secret
from services.common.settings_base import SecuritySettings

DEFAULT_FILE = Path("var/stack/keys/keys.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``create | list | rotate ID | revoke ID`` with ``--file``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1] if __doc__ else None
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help=f"the key file (HEARBY_AUTH_KEYS_FILE, else {DEFAULT_FILE})",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key and print it (shown only once)")
    create.add_argument("--name", required=True, help="who holds the key, e.g. partner-x")
    create.add_argument(
        "--scopes", required=True, help="comma-separated: read, write, admin (admin = all)"
    )
    create.add_argument(
        "--rate",
        type=float,
        default=None,
        help="calls/s per server for this key (default: HEARBY_RATE_LIMIT_PER_SECOND; 0 = none)",
    )
    create.add_argument("--out", type=Path, default=None, help="also write the key to this file")
    actions.add_parser("list", help="the keys, without secrets")
    rotate = actions.add_parser(
        "rotate", help="a new key with the same name, scopes and rate; revoke the old one later"
    )
    rotate.add_argument("key_id", help="8-hex id of the key to replace")
    rotate.add_argument("--out", type=Path, default=None, help="also write the key to this file")
    revoke = actions.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id", help="8-hex id of the key")
    # `--file` reads naturally after the action too (`hearby keys create ... --file F`).
    for action in actions.choices.values():
        action.add_argument("--file", type=Path, default=argparse.SUPPRESS, help="the key file")


def _file(args: argparse.Namespace) -> Path:
    if args.file is not None:
        return args.file
    return SecuritySettings().auth_keys_file or DEFAULT_FILE


def _created(token: str, key_id: str, path: Path, out: Path | None) -> None:
    if out is not None:
        write_secret(out, token)
        print(f"key {key_id} written to {out} (and its hash to {path})")
        return
    print(token)
    print(
        f"key {key_id} added to {path}; this is the only time the key is shown",
        file=sys.stderr,
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby keys``: 0 on success, 1 with a message on error."""
    path = _file(args)
    try:
        if args.action == "create":
            token, entry = add_key(path, args.name, parse_scopes(args.scopes), args.rate)
            _created(token, entry.key_id, path, args.out)
        elif args.action == "rotate":
            old = read_key_file(path).get(args.key_id)
            if old is None:
                print(f"error: no key {args.key_id!r} in {path}", file=sys.stderr)
                return 1
            token, entry = add_key(path, old.name, old.scopes, old.rate_per_second)
            _created(token, entry.key_id, path, args.out)
            print(
                f"revoke the old key once its users switched: hearby keys revoke {old.key_id}",
                file=sys.stderr,
            )
        elif args.action == "revoke":
            entry = revoke_key(path, args.key_id)
            print(f"key {entry.key_id} ({entry.name}) revoked at {entry.revoked}")
        else:
            keys = read_key_file(path)
            print(f"{'id':<9} {'name':<20} {'scopes':<17} {'rate/s':>7}  created / revoked")
            for key in keys.values():
                scopes = ",".join(sorted(s.value for s in key.scopes))
                rate = "default" if key.rate_per_second is None else f"{key.rate_per_second:g}"
                state = f"REVOKED {key.revoked}" if key.revoked else key.created
                print(f"{key.key_id:<9} {key.name:<20} {scopes:<17} {rate:>7}  {state}")
    except HearbyError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
