"""The data directory: database, nonce secret and TLS certificate in one place.

``trunkline serve`` with no configuration creates ``./trunkline-data/``
(mode 0700) on first use and keeps there everything that must survive a
restart:

- ``trunkline.db``: the SQLite database (WAL mode). Its schema lives in this
  module only: :data:`MIGRATIONS` is an ordered list of SQL scripts and the
  ``schema_version`` table records how many have run, so an older data
  directory is brought up to date when it is opened.
- ``nonce.secret``: 32 random bytes (mode 0600) keying the stateless digest
  nonces (``trunkline.sip.digest.DigestServer``), shared by every worker.
- ``tls/<domain>.crt`` and ``tls/<domain>.key``: a self-signed certificate
  with the domain, 127.0.0.1 and ::1 as subject alternative names, for TLS
  and WSS until the admin configures a real one.

Nothing here is protocol logic; every function is idempotent.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_DOMAIN",
    "MIGRATIONS",
    "DataDir",
    "TlsFiles",
    "generate_self_signed",
    "migrate",
    "open_database",
]

DEFAULT_DATA_DIR = Path("trunkline-data")
DEFAULT_DOMAIN = "localhost"
"""The domain a fresh data directory serves until told otherwise."""

_SECRET_SIZE = 32

MIGRATIONS: Sequence[str] = (
    # 1: settings, users, location bindings.
    """
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE users (
        domain TEXT NOT NULL,
        name TEXT NOT NULL,
        ha1_md5 TEXT NOT NULL,
        ha1_sha256 TEXT NOT NULL,
        ha1_sha512_256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (domain, name)
    );
    CREATE TABLE bindings (
        aor TEXT NOT NULL,
        key TEXT NOT NULL,
        contact_uri TEXT NOT NULL,
        expires_at REAL NOT NULL,
        q REAL NOT NULL,
        call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        received TEXT,
        transport TEXT,
        flow TEXT,
        path TEXT NOT NULL,
        user_agent TEXT,
        instance TEXT,
        reg_id INTEGER,
        updated_at REAL NOT NULL,
        PRIMARY KEY (aor, key)
    );
    """,
    # 2: a counter of user changes, bumped by triggers whoever writes (any process,
    # any tool), so a server's HA1 cache knows when to re-read (trunkline.store.users).
    """
    CREATE TABLE users_generation (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL
    );
    INSERT INTO users_generation (id, generation) VALUES (1, 0);
    CREATE TRIGGER users_inserted AFTER INSERT ON users BEGIN
        UPDATE users_generation SET generation = generation + 1;
    END;
    CREATE TRIGGER users_updated AFTER UPDATE ON users BEGIN
        UPDATE users_generation SET generation = generation + 1;
    END;
    CREATE TRIGGER users_deleted AFTER DELETE ON users BEGIN
        UPDATE users_generation SET generation = generation + 1;
    END;
    """,
)
"""Schema migrations, oldest first. Append; never edit one that has shipped."""


def _statements(script: str) -> list[str]:
    """The SQL statements of ``script``; a trigger body's ``;`` does not end its CREATE."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                statements.append(pending)
            pending = ""
    if pending.strip(" \t\n;"):
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:60]!r}")
    return statements


def migrate(db: sqlite3.Connection) -> int:
    """Run the migrations ``db`` has not seen; returns the schema version now.

    The whole upgrade holds SQLite's write lock (``BEGIN IMMEDIATE``), so
    several workers opening a fresh data directory at once migrate it once.
    """
    db.commit()
    saved, db.isolation_level = db.isolation_level, None  # explicit transactions below
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = 0 if row is None else int(row[0])
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"database schema version {version} is newer than this Trunkline "
                    f"({len(MIGRATIONS)}); upgrade Trunkline"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    db.execute(statement)
                db.execute("UPDATE schema_version SET version = ?", (number,))
                version = number
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    finally:
        db.isolation_level = saved
    return version


def open_database(path: Path | str, *, threads: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite database at ``path``, migrated, in WAL mode.

    ``threads=True`` lets the connection be used from a worker thread (one
    at a time: the caller serializes), e.g. for the location service's flush.
    """
    db = sqlite3.connect(str(path), timeout=10.0, check_same_thread=not threads)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    migrate(db)
    return db


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where a certificate and its private key are."""

    certificate: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _san_entries(domain: str) -> list[str]:
    names = [domain, "127.0.0.1", "::1"]
    return list(dict.fromkeys(names))


def generate_self_signed(domain: str, files: TlsFiles, days: int = 3650) -> None:
    """Write a self-signed certificate for ``domain`` (+127.0.0.1, ::1) and its key.

    Uses the ``cryptography`` package (an EC P-256 key), or the ``openssl``
    command line when the package is missing.
    """
    try:
        _generate_with_cryptography(domain, files, days)
    except ImportError:
        _generate_with_openssl(domain, files, days)


def _generate_with_cryptography(domain: str, files: TlsFiles, days: int) -> None:
    from cryptography import x509  # noqa: PLC0415 (optional dependency)
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    alt_names: list[x509.GeneralName] = []
    for entry in _san_entries(domain):
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            alt_names.append(x509.DNSName(entry))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(files.key, key_pem)
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _generate_with_openssl(domain: str, files: TlsFiles, days: int) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("neither the cryptography package nor openssl is available")
    san = ",".join(
        f"IP:{entry}" if _is_ip(entry) else f"DNS:{entry}" for entry in _san_entries(domain)
    )
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            f"/CN={domain}",
            "-addext",
            f"subjectAltName={san}",
            "-keyout",
            str(files.key),
            "-out",
            str(files.certificate),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    files.key.chmod(0o600)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class DataDir:
    """The data directory at ``path``; created (0700) on first use.

    ``DataDir(path).database()`` opens the migrated database;
    ``nonce_secret()`` and ``tls_files(domain)`` create what is missing.
    """

    DATABASE = "trunkline.db"
    SECRET = "nonce.secret"

    def __init__(self, path: Path | str = DEFAULT_DATA_DIR) -> None:
        self.path = Path(path)

    def ensure(self) -> Path:
        """Create the directory (mode 0700) if missing; returns its path."""
        if not self.path.exists():
            self.path.mkdir(parents=True, mode=0o700)
            self.path.chmod(0o700)  # mkdir's mode is filtered by the umask
        elif not self.path.is_dir():
            raise NotADirectoryError(f"{self.path} is not a directory")
        return self.path

    @property
    def database_path(self) -> Path:
        return self.path / self.DATABASE

    def database(self, *, threads: bool = False) -> sqlite3.Connection:
        """A new connection to the data directory's database (see :func:`open_database`)."""
        self.ensure()
        if not self.database_path.exists():
            # Owner-only from the start; SQLite gives -wal/-shm the same mode.
            os.close(os.open(self.database_path, os.O_CREAT | os.O_WRONLY, 0o600))
        return open_database(self.database_path, threads=threads)

    def nonce_secret(self) -> bytes:
        """The 32-byte nonce secret, created (mode 0600) on first use."""
        path = self.ensure() / self.SECRET
        try:
            secret = path.read_bytes()
        except FileNotFoundError:
            secret = secrets.token_bytes(_SECRET_SIZE)
            _write_private(path, secret)
            return secret
        if len(secret) < _SECRET_SIZE:
            raise ValueError(f"{path}: the nonce secret must be {_SECRET_SIZE} bytes")
        return secret

    def tls_files(self, domain: str) -> TlsFiles:
        """The certificate and key for ``domain``, generated self-signed when missing."""
        directory = self.ensure() / "tls"
        directory.mkdir(mode=0o700, exist_ok=True)
        safe = domain.replace("/", "_").replace(":", "_")
        files = TlsFiles(directory / f"{safe}.crt", directory / f"{safe}.key")
        if not (files.certificate.exists() and files.key.exists()):
            generate_self_signed(domain, files)
        return files

    @staticmethod
    def get_setting(db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def set_setting(db: sqlite3.Connection, key: str, value: str) -> None:
        with db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def default_domain(self, db: sqlite3.Connection, fallback: str = DEFAULT_DOMAIN) -> str:
        """The domain users belong to when none is named; set to ``fallback`` on first use."""
        value = self.get_setting(db, "default_domain")
        if value is None:
            self.set_setting(db, "default_domain", fallback)
            return fallback
        return value
