"""SIP users per domain, with digest HA1 values stored and never the password.

RFC 3261 §22.4 and RFC 7616 §3.4.2: a server only needs
``HA1 = H(username ":" realm ":" password)`` per algorithm, so that is all we
keep: one HA1 each for MD5, SHA-256 and SHA-512-256, with the domain as the
realm. The password is hashed at ``add``/``passwd`` and forgotten.

:meth:`UserStore.ha1` is the ``Ha1Lookup`` that
``trunkline.sip.digest.DigestServer.verify`` calls on every authenticated
request, so it answers from an in-memory cache of every user. The cache
follows the database: the ``users_generation`` counter (bumped by triggers on
every insert, update and delete of ``users``, whichever process or tool
writes; see ``trunkline.store.datadir``) is read by a lookup when the last
check is older than ``max_staleness`` seconds (default 1 s), and a change
re-reads the table. So ``trunkline users passwd|remove`` run against a live
server's data directory takes effect within a second, in every worker
process. Checking on every lookup (``max_staleness=0``) would cost a SQLite
read transaction per authenticated request: about 30 us measured here once
other connections write the database (the workers' shared location), a few
percent of a REGISTER.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from trunkline.sip.digest import base_algorithm, ha1
from trunkline.sip.errors import LocalSipError

__all__ = [
    "DEMO_USERS",
    "STORED_ALGORITHMS",
    "ConfiguredUser",
    "User",
    "UserError",
    "UserStore",
    "demo_password",
    "ensure_demo_users",
    "load_config_users",
]

STORED_ALGORITHMS: tuple[str, ...] = ("MD5", "SHA-256", "SHA-512-256")
"""The base digest algorithms an HA1 is kept for."""

# RFC 3261 §25.1 "user" is broader, but names also end up in file names, URLs
# and shell commands: keep them to unreserved characters.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~+-]{0,63}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,255}$")


class UserError(ValueError):
    """A user operation that cannot be done (bad name, exists, unknown)."""


@dataclass(frozen=True, slots=True)
class User:
    """One SIP account: ``name@domain`` and its HA1 per base algorithm."""

    domain: str
    name: str
    ha1: dict[str, str]
    created_at: float

    @property
    def aor(self) -> str:
        return f"sip:{self.name}@{self.domain}"


def demo_password() -> str:
    """A random password good enough to print once for a demo user (~96 bits)."""
    return secrets.token_urlsafe(12)


def _check(name: str, domain: str) -> str:
    """Validate ``name`` and ``domain``; returns the domain in lower case (the realm)."""
    if not _NAME.match(name):
        raise UserError(f"invalid user name {name!r}: use letters, digits and . _ ~ + - (up to 64)")
    if not _DOMAIN.match(domain):
        raise UserError(f"invalid domain {domain!r}")
    return domain.lower()


def _normalize(hashes: dict[str, str]) -> dict[str, str]:
    """HA1 values by canonical base algorithm, checked to be hex of the right size."""
    sizes = {"MD5": 32, "SHA-256": 64, "SHA-512-256": 64}
    stored: dict[str, str] = {}
    for algorithm, value in hashes.items():
        name = algorithm.upper()
        if name not in sizes:
            raise UserError(f"unknown digest algorithm {algorithm!r}")
        if not re.fullmatch(rf"[0-9a-fA-F]{{{sizes[name]}}}", value):
            raise UserError(f"{name}: HA1 must be {sizes[name]} hex digits")
        stored[name] = value.lower()
    if not stored:
        raise UserError("give at least one HA1")
    return stored


def _hashes(name: str, domain: str, password: str) -> dict[str, str]:
    if not password:
        raise UserError("the password must not be empty")
    return {algorithm: ha1(name, domain, password, algorithm) for algorithm in STORED_ALGORITHMS}


_SELECT_USERS = "SELECT domain, name, ha1_md5, ha1_sha256, ha1_sha512_256, created_at FROM users"
_SELECT_GENERATION = "SELECT generation FROM users_generation"
_INSERT = (
    "INSERT INTO users (domain, name, ha1_md5, ha1_sha256, ha1_sha512_256, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


class UserStore:
    """Users in the ``users`` table of a data directory's database.

    ``now`` (wall-clock seconds) is only recorded as the creation time.
    Lookups see changes made by another connection at most ``max_staleness``
    seconds of ``clock`` late (see the module docstring); changes made through
    this store are seen at once.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        *,
        max_staleness: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._cache: dict[tuple[str, str], User] = {}
        self._generation = -1
        self.max_staleness = max_staleness
        self._clock = clock
        self._checked = float("-inf")
        self.reloads = 0
        """How many times the whole table was read (for tests and status)."""
        self.reload()

    def _db_generation(self) -> int:
        row = self._db.execute(_SELECT_GENERATION).fetchone()
        return int(row[0]) if row is not None else 0

    def reload(self) -> None:
        """Re-read every user from the database into the lookup cache."""
        self._checked = self._clock()
        # The generation first: a change committed between the two reads leaves
        # the cache newer than its generation, so the next refresh() reads again.
        generation = self._db_generation()
        rows = self._db.execute(_SELECT_USERS).fetchall()
        self._cache = {(str(r[1]), str(r[0])): self._user(r) for r in rows}
        self._generation = generation
        self.reloads += 1

    def refresh(self) -> bool:
        """Re-read the users if any changed since the cache was filled; True when re-read."""
        self._checked = self._clock()
        if self._db_generation() == self._generation:
            return False
        self.reload()
        return True

    @staticmethod
    def _user(row: tuple[object, ...]) -> User:
        domain, name, md5, sha256, sha512, created = row
        return User(
            domain=str(domain),
            name=str(name),
            ha1={
                algorithm: str(value)
                for algorithm, value in zip(STORED_ALGORITHMS, (md5, sha256, sha512), strict=True)
                if value
            },
            created_at=float(str(created)),
        )

    def _users(self) -> dict[tuple[str, str], User]:
        """The cache, brought up to date first when the last check is too old."""
        if self._generation < 0 or self._clock() - self._checked >= self.max_staleness:
            self.refresh()
        return self._cache

    # -- lookups ----------------------------------------------------------------

    def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """The stored HA1 of ``username`` in ``realm`` for ``algorithm`` (``-sess`` ok).

        This is a ``trunkline.sip.digest.Ha1Lookup``; None for unknown users
        or unsupported algorithms.
        """
        user = self._users().get((username, realm))
        if user is None:
            return None
        try:
            return user.ha1.get(base_algorithm(algorithm))
        except LocalSipError:
            return None

    def get(self, name: str, domain: str) -> User | None:
        return self._users().get((name, domain.lower()))

    def exists(self, name: str, domain: str) -> bool:
        return (name, domain.lower()) in self._users()

    def users(self, domain: str | None = None) -> list[User]:
        """Users sorted by domain then name; only ``domain``'s when given."""
        wanted = None if domain is None else domain.lower()
        users = (u for u in self._users().values() if wanted is None or u.domain == wanted)
        return sorted(users, key=lambda u: (u.domain, u.name))

    def domains(self) -> list[str]:
        return sorted({u.domain for u in self._users().values()})

    def __len__(self) -> int:
        return len(self._users())

    # -- changes -----------------------------------------------------------------

    def _changed(
        self, rows: int, users: Iterable[User] = (), removed: Iterable[tuple[str, str]] = ()
    ) -> None:
        """After our own commit of ``rows`` row changes: update the cache in place.

        Called inside the write transaction, so the generation read here is
        ours; if it moved by more than ``rows`` another process changed users
        too, and the whole table is re-read after the commit instead.
        """
        generation = self._db_generation()
        if generation != self._generation + rows:
            self._generation = -1  # refresh() re-reads
            return
        self._generation = generation
        for user in users:
            self._cache[(user.name, user.domain)] = user
        for name, domain in removed:
            self._cache.pop((name, domain), None)

    def add(self, name: str, domain: str, password: str, now: float) -> User:
        """Create ``name@domain``; raises UserError if it exists or is invalid."""
        domain = _check(name, domain)
        hashes = _hashes(name, domain, password)
        return self.add_ha1(name, domain, hashes, now)

    def add_many(self, users: Iterable[tuple[str, str, str]], now: float) -> int:
        """Create ``(name, domain, password)`` users in one transaction; returns how many.

        All or nothing: one invalid or existing user and none is added
        (UserError). For provisioning (and tests) of thousands of users.
        """
        created: list[User] = []
        for name, domain, password in users:
            realm = _check(name, domain)
            created.append(User(realm, name, _hashes(name, realm, password), now))
        rows = [
            (u.domain, u.name, *(u.ha1.get(a, "") for a in STORED_ALGORITHMS), now) for u in created
        ]
        try:
            with self._db:
                self._db.executemany(_INSERT, rows)
                self._changed(len(rows), created)
        except sqlite3.IntegrityError:
            raise UserError("a user to add already exists (none were added)") from None
        return len(created)

    def add_ha1(self, name: str, domain: str, hashes: dict[str, str], now: float) -> User:
        """Create a user from precomputed HA1 values (e.g. from the config file).

        ``hashes`` maps base algorithm names to HA1 hex. A password cannot be
        recovered to compute the others, so an algorithm left out cannot
        authenticate this user (its lookup gives None).
        """
        domain = _check(name, domain)
        stored = _normalize(hashes)
        user = User(domain, name, stored, now)
        try:
            with self._db:
                self._db.execute(
                    _INSERT, (domain, name, *(stored.get(a, "") for a in STORED_ALGORITHMS), now)
                )
                self._changed(1, [user])
        except sqlite3.IntegrityError:
            raise UserError(f"user {name}@{domain} already exists") from None
        return user

    def put(
        self,
        name: str,
        domain: str,
        now: float,
        *,
        password: str | None = None,
        hashes: dict[str, str] | None = None,
    ) -> User:
        """Create or overwrite ``name@domain`` (the users listed in ``trunkline.toml``)."""
        domain = _check(name, domain)
        if password is not None:
            stored = _hashes(name, domain, password)
        elif hashes is not None:
            stored = _normalize(hashes)
        else:
            raise UserError("give a password or HA1 values")
        with self._db:
            self._db.execute(
                _INSERT + " ON CONFLICT (domain, name) DO UPDATE"
                " SET ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256,"
                " ha1_sha512_256 = excluded.ha1_sha512_256",
                (domain, name, *(stored.get(a, "") for a in STORED_ALGORITHMS), now),
            )
            row = self._db.execute(
                _SELECT_USERS + " WHERE domain = ? AND name = ?", (domain, name)
            ).fetchone()
            user = self._user(row)
            self._changed(1, [user])
        return user

    def passwd(self, name: str, domain: str, password: str) -> User:
        """Change the password of ``name@domain``; raises UserError if unknown."""
        domain = _check(name, domain)
        hashes = _hashes(name, domain, password)
        with self._db:
            cursor = self._db.execute(
                "UPDATE users SET ha1_md5 = ?, ha1_sha256 = ?, ha1_sha512_256 = ?"
                " WHERE domain = ? AND name = ?",
                (*(hashes[a] for a in STORED_ALGORITHMS), domain, name),
            )
            if cursor.rowcount == 0:
                raise UserError(f"no user {name}@{domain}")
            row = self._db.execute(
                _SELECT_USERS + " WHERE domain = ? AND name = ?", (domain, name)
            ).fetchone()
            user = self._user(row)
            self._changed(1, [user])
        return user

    def remove(self, name: str, domain: str) -> None:
        """Delete ``name@domain``; raises UserError if unknown."""
        domain = domain.lower()
        with self._db:
            cursor = self._db.execute(
                "DELETE FROM users WHERE domain = ? AND name = ?", (domain, name)
            )
            if cursor.rowcount == 0:
                raise UserError(f"no user {name}@{domain}")
            self._changed(1, removed=[(name, domain)])


class ConfiguredUser(Protocol):
    """A user entry of ``trunkline.toml`` (``trunkline.config.ConfigUser``)."""

    @property
    def name(self) -> str: ...
    @property
    def domain(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def ha1(self) -> dict[str, str] | None: ...


def load_config_users(
    store: UserStore, users: Iterable[ConfiguredUser], default_domain: str, now: float
) -> int:
    """Create or overwrite the users listed in the config file; returns how many.

    The file wins over the database for these users, so editing a password
    in ``trunkline.toml`` and restarting takes effect.
    """
    count = 0
    for user in users:
        store.put(
            user.name,
            user.domain or default_domain,
            now,
            password=user.password,
            hashes=user.ha1,
        )
        count += 1
    return count


DEMO_USERS: tuple[str, ...] = ("alice", "bob", "carol")


def ensure_demo_users(
    store: UserStore, domain: str, now: float, names: Iterable[str] = DEMO_USERS
) -> dict[str, str]:
    """On a store with no users at all, add demo users with random passwords.

    Returns ``{name: password}`` to print once (issue 6, zero-config serve);
    empty when the store already had users.
    """
    if len(store):
        return {}
    created: dict[str, str] = {}
    for name in names:
        password = demo_password()
        store.add(name, domain, password, now)
        created[name] = password
    return created
