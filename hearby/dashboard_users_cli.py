"""``hearby dashboard-users``: add, re-password, disable and list the dashboard's users.

    hearby dashboard-users add ana                          # asks for the password twice
    hearby dashboard-users add ben --role admin --generate  # prints a random one, once
    hearby dashboard-users add cleo --password-stdin < cleo.password
    hearby dashboard-users passwd ana                       # --generate, --password-stdin too
    hearby dashboard-users disable ana                      # logged out at their next click
    hearby dashboard-users list

The users file is ``--file``, else ``HEARBY_DASHBOARD_USERS_FILE``, else
``var/stack/keys/dashboard-users.json`` (the one ``hearby up`` uses with its default data
folder). It holds scrypt hashes only; the dashboard re-reads it on every page run, so
changes apply without a restart. Roles: ``reviewer`` (every page) and ``admin`` (the same
today, plus any page that changes the stack). The login is on while ``HEARBY_AUTH=keys``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from dashboard.settings import DashboardSettings
from dashboard.users import (
    Role,
    add_user,
    check_password,
    disable_user,
    generate_password,
    read_users,
    set_password,
)
from services.common.errors import HearbyError, InvalidArgument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``add NAME | passwd NAME | disable NAME | list`` with ``--file``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1] if __doc__ else None
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help="the users file (HEARBY_DASHBOARD_USERS_FILE, else "
        "var/stack/keys/dashboard-users.json)",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="a new user (the name is also their rater id)")
    add.add_argument("name", help="login name: letters, digits and . _ @ -")
    add.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.REVIEWER.value,
        help="reviewer (default) or admin",
    )
    _password_source(add)
    passwd = actions.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name")
    _password_source(passwd)
    disable = actions.add_parser("disable", help="refuse a user's logins from now on")
    disable.add_argument("name")
    actions.add_parser("list", help="the users, without password hashes")


def _password_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    source.add_argument(
        "--generate",
        action="store_true",
        help="make a random password and print it (the only time it is shown)",
    )


def _file(args: argparse.Namespace) -> Path:
    return args.file if args.file is not None else DashboardSettings().users_file


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The new password, and whether it was generated (and must be printed).

    Raises:
        InvalidArgument: Empty input, the two prompts differ, or it is too short.
    """
    if args.generate:
        return generate_password(), True
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InvalidArgument("no password on standard input")
        return check_password(password), False
    password = getpass.getpass(f"password for {args.name}: ")
    check_password(password)
    if getpass.getpass("again: ") != password:
        raise InvalidArgument("the two passwords differ; nothing changed")
    return password, False


def _show_generated(name: str, password: str) -> None:
    print(password)
    print(
        f"the password of {name}; this is the only time it is shown",
        file=sys.stderr,
    )


def _list(path: Path) -> None:
    users = read_users(path)
    if not users:
        print(f"no users in {path}", file=sys.stderr)
        return
    print(f"{'name':<24} {'role':<9} {'created':<26} state")
    for user in users.values():
        state = "DISABLED" if user.disabled else "active"
        print(f"{user.name:<24} {user.role.value:<9} {user.created:<26} {state}")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby dashboard-users``: 0 on success, 1 with a message on error."""
    path = _file(args)
    try:
        if args.action == "add":
            password, generated = _password(args)
            user = add_user(path, args.name, password, Role(args.role))
            if generated:
                _show_generated(user.name, password)
            print(f"user {user.name} ({user.role.value}) added to {path}", file=sys.stderr)
        elif args.action == "passwd":
            if args.name not in read_users(path):
                print(f"error: no user {args.name!r} in {path}", file=sys.stderr)
                return 1
            password, generated = _password(args)
            set_password(path, args.name, password)
            if generated:
                _show_generated(args.name, password)
            print(f"password of {args.name} changed in {path}", file=sys.stderr)
        elif args.action == "disable":
            user = disable_user(path, args.name)
            print(f"user {user.name} disabled in {path}", file=sys.stderr)
        else:
            _list(path)
    except HearbyError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, EOFError, KeyboardInterrupt) as exc:
        print(f"error: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    return 0
