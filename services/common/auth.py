"""API keys: their format, the hashed key file, and checking a presented key and its scope.

A key reads ``hb_<id>_<secret>``: ``id`` (8 hex characters) names the key in the file and
in logs; ``secret`` (43 URL-safe characters, 256 random bits) is shown once, at creation,
and stored only as its SHA-256. A fast hash is enough here, unlike for passwords: a
256-bit random secret cannot be guessed from its hash, so a slow KDF would only slow every
call down (GitHub tokens and AWS keys are checked the same way).

The key file is JSON, written atomically with mode 0600 by ``hearby keys``
(:mod:`services.common.private_files`). Servers re-read
it when its modification time, size or inode change (checked on every call: one
``stat``), so a key is added, rotated or revoked without restarting anything.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from services.common.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from services.common.private_files import locked, read_entries, write_entries

logger = logging.getLogger(__name__)

KEY_PREFIX = "hb"
_KEY = re.compile(r"^hb_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
FILE_FORMAT = 1


class Scope(enum.StrEnum):
    """What a key may do; ADMIN includes the others (see proto/hearby/common/v1/auth.proto)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    """Scopes from ``"read,write"`` or a list of names.

    Raises:
        InvalidArgument: An unknown scope name, or none at all.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    scopes: set[Scope] = set()
    for name in (n.strip().lower() for n in names):
        if not name:
            continue
        try:
            scopes.add(Scope(name))
        except ValueError:
            allowed = ", ".join(s.value for s in Scope)
            raise InvalidArgument(f"unknown scope {name!r}; scopes are {allowed}") from None
    if not scopes:
        raise InvalidArgument("a key needs at least one scope (read, write or admin)")
    return frozenset(scopes)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One key as the key file holds it (never the secret itself).

    Args:
        key_id: 8 hex characters, the public part of the key.
        name: Who or what holds the key (e.g. ``ranker``, ``partner-x``).
        scopes: What it may do.
        secret_sha256: Hex SHA-256 of the secret part.
        created: ISO-8601 UTC creation time.
        revoked: ISO-8601 UTC revocation time; "" while the key is valid.
        rate_per_second: This key's rate limit per server; None takes the servers'
            default, 0 means unlimited (internal service keys).
    """

    key_id: str
    name: str
    scopes: frozenset[Scope]
    secret_sha256: str
    created: str = field(default_factory=_now)
    revoked: str = ""
    rate_per_second: float | None = None

    def allows(self, scope: Scope) -> bool:
        """Whether this key may call an RPC that needs ``scope``."""
        return scope in self.scopes or Scope.ADMIN in self.scopes

    def to_json(self) -> dict[str, object]:
        """The key file's entry."""
        entry = asdict(self)
        entry["scopes"] = sorted(s.value for s in self.scopes)
        return entry

    @classmethod
    def from_json(cls, entry: dict[str, object]) -> ApiKey:
        """Reads a key file entry."""
        rate = entry.get("rate_per_second")
        return cls(
            key_id=str(entry["key_id"]),
            name=str(entry.get("name", "")),
            scopes=parse_scopes([str(s) for s in entry["scopes"]]),  # type: ignore[union-attr]
            secret_sha256=str(entry["secret_sha256"]),
            created=str(entry.get("created", "")),
            revoked=str(entry.get("revoked", "")),
            rate_per_second=None if rate is None else float(rate),  # type: ignore[arg-type]
        )


def new_key(
    name: str, scopes: frozenset[Scope], rate_per_second: float | None = None
) -> tuple[str, ApiKey]:
    """Makes a fresh key.

    Returns:
        The full key to hand out (shown once) and its file entry.
    """
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    entry = ApiKey(key_id, name, scopes, _digest(secret), rate_per_second=rate_per_second)
    return f"{KEY_PREFIX}_{key_id}_{secret}", entry


def split_key(token: str) -> tuple[str, str]:
    """The id and secret of a presented key.

    Raises:
        Unauthenticated: The text is not a hearby key (the message never repeats it).
    """
    match = _KEY.match(token.strip())
    if match is None:
        raise Unauthenticated("malformed API key: expected hb_<8 hex>_<43 characters>")
    return match.group(1), match.group(2)


def key_id_of(token: str) -> str:
    """The id of a key, or ``"?"`` when it is malformed (safe to log)."""
    try:
        return split_key(token)[0]
    except Unauthenticated:
        return "?"


def read_key_file(path: Path) -> dict[str, ApiKey]:
    """The keys in ``path`` by id; an absent file holds none.

    Raises:
        InvalidArgument: The file is not a hearby key file (the message says where).
    """
    keys = read_entries(path, "key file", "keys", FILE_FORMAT, ApiKey.from_json)
    return {key.key_id: key for key in keys}


def write_key_file(path: Path, keys: Iterable[ApiKey]) -> None:
    """Writes the key file atomically with mode 0600."""
    write_entries(path, "keys", FILE_FORMAT, (k.to_json() for k in keys))


def add_key(
    path: Path, name: str, scopes: frozenset[Scope], rate_per_second: float | None = None
) -> tuple[str, ApiKey]:
    """Creates a key and appends it to the key file; returns the full key and its entry."""
    with locked(path):
        keys = read_key_file(path)
        token, entry = new_key(name, scopes, rate_per_second)
        keys[entry.key_id] = entry
        write_key_file(path, keys.values())
    return token, entry


def revoke_key(path: Path, key_id: str) -> ApiKey:
    """Marks a key revoked (kept in the file, so logs can still be traced to it).

    Raises:
        NotFound: No key with that id.
    """
    with locked(path):
        keys = read_key_file(path)
        if key_id not in keys:
            raise NotFound(f"no key {key_id!r} in {path}")
        keys[key_id] = replace(keys[key_id], revoked=keys[key_id].revoked or _now())
        write_key_file(path, keys.values())
    return keys[key_id]


class KeyStore:
    """Checks presented keys against the key file, following its changes.

    Thread-safe; the check is a ``stat``, a dict lookup and one SHA-256.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, ApiKey] = {}
        self._reload()
        if not path.exists():
            raise FileNotFoundError(
                f"authentication is on but the key file {path} does not exist: create a "
                "key with `hearby keys create --name NAME --scopes admin --file "
                f"{path}`, or set HEARBY_AUTH=off for local development"
            )

    def _reload(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            stamp = None
        else:
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                keys = read_key_file(self.path)
            except InvalidArgument as exc:
                # Keep the last good keys: a half-edited file must not lock everyone out.
                logger.error("%s; keeping the %d keys read before", exc.message, len(self._keys))
                self._stamp = stamp
                return
            self._keys, self._stamp = keys, stamp
            logger.info(
                "key file %s: %d keys (%d revoked)",
                self.path,
                len(keys),
                sum(1 for k in keys.values() if k.revoked),
            )

    def authenticate(self, token: str) -> ApiKey:
        """The key entry for a presented key.

        Raises:
            Unauthenticated: Malformed, unknown, wrong secret, or revoked.
        """
        key_id, secret = split_key(token)
        self._reload()
        entry = self._keys.get(key_id)
        if entry is None or not hmac.compare_digest(entry.secret_sha256, _digest(secret)):
            raise Unauthenticated(f"unknown API key {key_id}")
        if entry.revoked:
            raise Unauthenticated(f"API key {key_id} was revoked at {entry.revoked}")
        return entry

    def authorize(self, token: str, scope: Scope) -> ApiKey:
        """Authenticates ``token`` and checks it may use ``scope``.

        Raises:
            Unauthenticated: See :meth:`authenticate`.
            PermissionDenied: The key lacks the scope.
        """
        entry = self.authenticate(token)
        if not entry.allows(scope):
            held = ",".join(sorted(s.value for s in entry.scopes))
            raise PermissionDenied(
                f"API key {entry.key_id} ({entry.name}) has scopes {held}; this call needs "
                f"{scope.value}"
            )
        return entry
