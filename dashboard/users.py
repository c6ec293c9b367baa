"""The people who may log in to the dashboard: the users file, password hashes, throttling.

Pure Python, no Streamlit: :mod:`dashboard.login` draws the login form over it, and
``hearby dashboard-users`` (and ``hearby up``, for the stack's first admin) edits the file.

The users file is JSON, written atomically with mode 0600 (like the API key file of
:mod:`services.common.auth`)::

    {"format": 1, "users": [{"name": "ana", "role": "reviewer", "created": "...",
      "disabled": false, "password": {"scheme": "scrypt", "n": 16384, "r": 8, "p": 1,
      "salt": "<hex>", "hash": "<hex>"}}]}

Unlike API keys, passwords are chosen by people and can be guessed, so they are stored as
scrypt hashes with a per-user random salt: every guess costs about 16 MiB of memory and
tens of milliseconds. The parameters are stored with each hash, so raising them later
leaves existing passwords valid.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.common.private_files import locked, read_entries, write_entries

FILE_FORMAT = 1
# scrypt's cost: n=2**14, r=8 needs 128*n*r = 16 MiB per hash (OpenSSL's default memory
# cap is 32 MiB) and about 50 ms on one core; p=1 because the dashboard hashes one login
# at a time. These are the parameters the scrypt paper and OWASP give for interactive logins.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
# Letters, digits and . _ @ -: the name becomes the rater id of every rating and is
# logged, so no spaces, quotes or control characters.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_LENGTH = 8


class Role(enum.StrEnum):
    """What a user may do on the dashboard; ADMIN may do everything REVIEWER may."""

    REVIEWER = "reviewer"
    ADMIN = "admin"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class PasswordHash:
    """A scrypt hash with everything needed to check a password against it.

    Args:
        salt: Hex of the per-user random salt (16 bytes).
        digest: Hex of the derived key (32 bytes).
        n: scrypt's CPU/memory cost (a power of two).
        r: scrypt's block size.
        p: scrypt's parallelism.
    """

    salt: str
    digest: str
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def of(cls, password: str, salt: bytes | None = None) -> PasswordHash:
        """Hashes ``password`` with a fresh random salt (or ``salt``, for tests)."""
        salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
        return cls(salt.hex(), _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P).hex())

    def matches(self, password: str) -> bool:
        """Whether ``password`` is the one hashed (compared in constant time)."""
        derived = _scrypt(password, bytes.fromhex(self.salt), self.n, self.r, self.p)
        return hmac.compare_digest(derived, bytes.fromhex(self.digest))

    def to_json(self) -> dict[str, object]:
        """The users file's ``password`` entry."""
        return {
            "scheme": "scrypt",
            "n": self.n,
            "r": self.r,
            "p": self.p,
            "salt": self.salt,
            "hash": self.digest,
        }

    @classmethod
    def from_json(cls, entry: dict[str, object]) -> PasswordHash:
        """Reads a ``password`` entry.

        Raises:
            ValueError: Not a scrypt hash.
        """
        if entry.get("scheme") != "scrypt":
            raise ValueError(f"unknown password scheme {entry.get('scheme')!r}")
        return cls(
            salt=str(entry["salt"]),
            digest=str(entry["hash"]),
            n=int(entry["n"]),  # type: ignore[call-overload]
            r=int(entry["r"]),  # type: ignore[call-overload]
            p=int(entry["p"]),  # type: ignore[call-overload]
        )


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # maxmem above the 128*n*r bytes scrypt needs, so that stored hashes with a larger n
    # (raised later) still verify instead of failing on OpenSSL's 32 MiB default.
    maxmem = 128 * n * r * p + 2 * 1024 * 1024
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=_HASH_BYTES
    )


@dataclass(frozen=True)
class User:
    """One person as the users file holds them (never the password itself).

    Args:
        name: Login name, also the rater id of their ratings.
        role: ``reviewer`` or ``admin``.
        password: The scrypt hash of their password.
        created: ISO-8601 UTC creation time.
        disabled: True once ``hearby dashboard-users disable`` refused them; kept in the
            file so their ratings can still be traced to a known person.
    """

    name: str
    role: Role
    password: PasswordHash = field(repr=False)
    created: str = field(default_factory=_now)
    disabled: bool = False

    def to_json(self) -> dict[str, object]:
        """The users file's entry."""
        return {
            "name": self.name,
            "role": self.role.value,
            "created": self.created,
            "disabled": self.disabled,
            "password": self.password.to_json(),
        }

    @classmethod
    def from_json(cls, entry: dict[str, object]) -> User:
        """Reads a users file entry."""
        return cls(
            name=str(entry["name"]),
            role=Role(str(entry["role"])),
            password=PasswordHash.from_json(entry["password"]),  # type: ignore[arg-type]
            created=str(entry.get("created", "")),
            disabled=bool(entry.get("disabled", False)),
        )


def check_name(name: str) -> str:
    """Returns ``name`` if it may be a user name.

    Raises:
        InvalidArgument: Empty, too long (64), or with characters other than letters,
            digits and ``. _ @ -``.
    """
    if not _NAME.match(name):
        raise InvalidArgument(
            f"invalid user name {name!r}: 1 to 64 letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    """Returns ``password`` if it is long enough.

    Raises:
        InvalidArgument: Shorter than :data:`MIN_PASSWORD_LENGTH` characters.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


def parse_role(text: str) -> Role:
    """The role named ``text``.

    Raises:
        InvalidArgument: Not ``reviewer`` or ``admin``.
    """
    try:
        return Role(text.strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidArgument(f"unknown role {text!r}; roles are {allowed}") from None


def generate_password() -> str:
    """A random password: 20 URL-safe characters (120 bits)."""
    return secrets.token_urlsafe(15)


# -- the file ---------------------------------------------------------------------------


def read_users(path: Path) -> dict[str, User]:
    """The users in ``path`` by name; an absent file holds none.

    Raises:
        InvalidArgument: The file is not a hearby users file (the message says where).
    """
    users = read_entries(path, "users file", "users", FILE_FORMAT, User.from_json)
    return {user.name: user for user in users}


def write_users(path: Path, users: Iterable[User]) -> None:
    """Writes the users file atomically with mode 0600 (see private_files)."""
    write_entries(path, "users", FILE_FORMAT, (u.to_json() for u in users))


@contextlib.contextmanager
def _editing(path: Path) -> Iterator[dict[str, User]]:
    """The users, to change in place; written back when the block ends without error.

    The lock keeps two writers (the CLI and ``hearby up``) from losing each other's
    change; readers need no lock.
    """
    with locked(path):
        users = read_users(path)
        yield users
        write_users(path, users.values())


def add_user(path: Path, name: str, password: str, role: Role = Role.REVIEWER) -> User:
    """Adds a user with this password.

    Raises:
        AlreadyExists: A user of that name exists (disabled ones too: names are not reused,
            so a rater id always means one person).
        InvalidArgument: A bad name or a too short password.
    """
    check_name(name)
    check_password(password)
    with _editing(path) as users:
        if name in users:
            raise AlreadyExists(f"user {name!r} exists already in {path}")
        users[name] = User(name, role, PasswordHash.of(password))
        return users[name]


def set_password(path: Path, name: str, password: str) -> User:
    """Replaces a user's password (with a fresh salt).

    Raises:
        NotFound: No such user.
        InvalidArgument: A too short password.
    """
    check_password(password)
    with _editing(path) as users:
        if name not in users:
            raise NotFound(f"no user {name!r} in {path}")
        users[name] = replace(users[name], password=PasswordHash.of(password))
        return users[name]


def disable_user(path: Path, name: str) -> User:
    """Refuses a user's logins from now on; open sessions end at their next interaction.

    The user stays in the file, and the name is not given to anyone else.

    Raises:
        NotFound: No such user.
    """
    with _editing(path) as users:
        if name not in users:
            raise NotFound(f"no user {name!r} in {path}")
        users[name] = replace(users[name], disabled=True)
        return users[name]


def ensure_user(path: Path, name: str, role: Role | str = Role.ADMIN) -> str | None:
    """Creates ``name`` with a random password unless the users file has them already.

    ``hearby up`` calls it for the stack's first admin.

    Returns:
        The new user's password (to show or store once), or None when the user exists.
    """
    role = parse_role(role) if isinstance(role, str) else role
    check_name(name)
    with _editing(path) as users:
        if name in users:
            return None
        password = generate_password()
        users[name] = User(name, role, PasswordHash.of(password))
        return password


# What unknown names are checked against, so that they cost the same scrypt as known ones
# and the answer's timing does not tell which names exist. A random digest: no password
# derives it, and making it costs no scrypt.
_DECOY = PasswordHash(salt=secrets.token_hex(_SALT_BYTES), digest=secrets.token_hex(_HASH_BYTES))


def verify(users: dict[str, User], name: str, password: str) -> User | None:
    """The user if ``password`` is theirs and they are not disabled, else None.

    Every call runs one scrypt, whether the name is unknown, the user disabled or the
    password wrong, so the time taken does not tell them apart.

    Args:
        users: The users file's users (:func:`read_users`).
        name: The name typed in.
        password: The password typed in.
    """
    user = users.get(name)
    matches = (user.password if user else _DECOY).matches(password)
    if user is None or user.disabled or not matches:
        return None
    return user


# -- throttling -------------------------------------------------------------------------


class LoginThrottle:
    """Refuses a user name for a while after repeated failed logins.

    After ``max_failures`` failures of one name within ``window_seconds``, that name is
    refused for ``lockout_seconds`` whatever the password, which caps online guessing at
    ``max_failures`` tries per ``lockout_seconds``. Counted per name as typed (known or
    not), so the throttle does not reveal which names exist. Thread-safe: one instance
    serves every browser session of a dashboard process.

    Args:
        max_failures: Failures that trigger a lockout (default 5).
        window_seconds: How far back failures count, in seconds (default 300).
        lockout_seconds: How long a locked-out name is refused, in seconds (default 30).
        clock: Monotonic seconds (``time.monotonic``; tests pass a fake).
    """

    # Names tracked at most; past it, the oldest entries are dropped, so a flood of
    # made-up names cannot grow memory without bound.
    MAX_NAMES = 10_000

    def __init__(
        self,
        max_failures: int = 5,
        window_seconds: float = 300.0,
        lockout_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def retry_after(self, name: str) -> float:
        """Seconds until ``name`` may try again; 0 when it may try now."""
        with self._lock:
            until = self._locked_until.get(name, 0.0)
            left = until - self._clock()
            if left <= 0:
                self._locked_until.pop(name, None)
                return 0.0
            return left

    def failed(self, name: str) -> float:
        """Records a failed login of ``name``.

        Returns:
            Seconds the name is now locked out for; 0 if it is not.
        """
        with self._lock:
            now = self._clock()
            failures = self._failures.setdefault(name, deque())
            failures.append(now)
            while failures and failures[0] <= now - self.window_seconds:
                failures.popleft()
            if len(failures) >= self.max_failures:
                # A fresh count after the lockout: the next burst earns the next lockout.
                del self._failures[name]
                self._locked_until[name] = now + self.lockout_seconds
                self._prune(now)
                return self.lockout_seconds
            self._prune(now)
            return 0.0

    def _prune(self, now: float) -> None:
        """Drops expired lockouts and the stalest names once more than MAX_NAMES are kept."""
        if len(self._locked_until) > self.MAX_NAMES:
            for name in [n for n, until in self._locked_until.items() if until <= now]:
                del self._locked_until[name]
        if len(self._failures) > self.MAX_NAMES:
            stalest = min(self._failures, key=lambda n: self._failures[n][-1])
            del self._failures[stalest]

    def succeeded(self, name: str) -> None:
        """Forgets ``name``'s failures after a successful login."""
        with self._lock:
            self._failures.pop(name, None)
