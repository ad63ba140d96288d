"""The data directory, the user store and the ``trunkline users`` command."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trunkline.cli import app
from trunkline.sip.authheaders import Credentials
from trunkline.sip.digest import DigestClient, DigestServer, ha1
from trunkline.store.datadir import MIGRATIONS, DataDir, migrate, open_database
from trunkline.store.users import STORED_ALGORITHMS, UserError, UserStore, demo_password

NOW = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(DataDir(tmp_path / "data").database()) as connection:
        yield connection


@pytest.fixture
def store(db: sqlite3.Connection) -> UserStore:
    return UserStore(db)


# -- data directory --------------------------------------------------------------


def test_data_dir_created_private_with_wal_database(tmp_path: Path) -> None:
    directory = DataDir(tmp_path / "fresh" / "trunkline-data")
    with contextlib.closing(directory.database()) as db:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        version = db.execute("SELECT version FROM schema_version").fetchone()[0]
    assert mode == "wal"
    assert version == len(MIGRATIONS)
    assert stat.S_IMODE(directory.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.database_path.stat().st_mode) == 0o600


def test_migrations_run_once_and_refuse_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with contextlib.closing(open_database(path)) as db:
        db.execute("INSERT INTO settings VALUES ('k', 'v')")
        db.commit()
    with contextlib.closing(open_database(path)) as db:
        assert migrate(db) == len(MIGRATIONS)
        assert db.execute("SELECT value FROM settings").fetchall() == [("v",)]
        db.execute("UPDATE schema_version SET version = 99")
        db.commit()
        with pytest.raises(RuntimeError, match="newer"):
            migrate(db)


def test_a_version_1_database_gets_the_user_generation(tmp_path: Path) -> None:
    from trunkline.store import datadir

    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (1)")
        db.execute("INSERT INTO users VALUES ('example.com', 'old', 'x', '', '', 0)")
        db.commit()
    with contextlib.closing(open_database(path)) as db:
        store = UserStore(db, max_staleness=0.0)
        assert store.exists("old", "example.com")
        with db:
            db.execute("DELETE FROM users")
        assert db.execute("SELECT generation FROM users_generation").fetchall() == [(1,)]
        assert not store.exists("old", "example.com")
    assert len(datadir._statements(MIGRATIONS[1])) == 5  # a trigger body's ';' kept inside
    with pytest.raises(ValueError, match="incomplete"):
        datadir._statements("CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1;")


def test_nonce_secret_is_private_and_stable(tmp_path: Path) -> None:
    directory = DataDir(tmp_path / "d")
    secret = directory.nonce_secret()
    assert len(secret) == 32
    assert DataDir(tmp_path / "d").nonce_secret() == secret
    path = directory.path / DataDir.SECRET
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DataDir(tmp_path / "other").nonce_secret() != secret


def test_self_signed_certificate_has_the_domain_and_loopback(tmp_path: Path) -> None:
    from cryptography import x509

    directory = DataDir(tmp_path / "d")
    files = directory.tls_files("pbx.example.org")
    certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["pbx.example.org"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    before = files.certificate.read_bytes()
    assert directory.tls_files("pbx.example.org").certificate.read_bytes() == before


def test_openssl_fallback_makes_a_usable_pair(tmp_path: Path) -> None:
    from trunkline.store import datadir

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    files = datadir.TlsFiles(tmp_path / "c.crt", tmp_path / "c.key")
    datadir._generate_with_openssl("sip.example", files, 30)
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["sip.example"]
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600


def test_default_domain_is_remembered(db: sqlite3.Connection, tmp_path: Path) -> None:
    directory = DataDir(tmp_path / "data")
    assert directory.default_domain(db, "first.example") == "first.example"
    assert directory.default_domain(db, "second.example") == "first.example"


# -- user store --------------------------------------------------------------------


def test_add_stores_ha1_for_every_algorithm_never_the_password(
    store: UserStore, db: sqlite3.Connection
) -> None:
    store.add("alice", "example.com", "wonderland", NOW)
    expected = hashlib.md5(b"alice:example.com:wonderland").hexdigest()
    assert store.ha1("alice", "example.com", "MD5") == expected
    assert store.ha1("alice", "example.com", "md5-sess") == expected
    for algorithm in STORED_ALGORITHMS:
        assert store.ha1("alice", "example.com", algorithm) == ha1(
            "alice", "example.com", "wonderland", algorithm
        )
    dump = "\n".join(db.iterdump())
    assert "wonderland" not in dump
    assert store.ha1("alice", "other.com", "MD5") is None
    assert store.ha1("nobody", "example.com", "MD5") is None
    assert store.ha1("alice", "example.com", "SHA-1") is None


def test_duplicates_and_bad_names_are_refused(store: UserStore) -> None:
    store.add("alice", "example.com", "pw", NOW)
    with pytest.raises(UserError, match="already exists"):
        store.add("alice", "example.com", "pw2", NOW)
    store.add("alice", "example.net", "pw", NOW)
    for name in ("", "a b", "x@y", "-lead", "a" * 65):
        with pytest.raises(UserError, match="invalid user name"):
            store.add(name, "example.com", "pw", NOW)
    with pytest.raises(UserError, match="password"):
        store.add("bob", "example.com", "", NOW)
    assert len(store) == 2


def test_passwd_remove_and_listing(store: UserStore) -> None:
    store.add("bob", "b.example", "old", NOW)
    store.add("alice", "b.example", "x", NOW)
    store.add("carol", "a.example", "y", NOW + 1)
    store.passwd("bob", "b.example", "new")
    assert store.ha1("bob", "b.example", "SHA-256") == ha1("bob", "b.example", "new", "SHA-256")
    assert [(u.domain, u.name) for u in store.users()] == [
        ("a.example", "carol"),
        ("b.example", "alice"),
        ("b.example", "bob"),
    ]
    assert [u.name for u in store.users("b.example")] == ["alice", "bob"]
    assert store.domains() == ["a.example", "b.example"]
    store.remove("alice", "b.example")
    assert store.ha1("alice", "b.example", "MD5") is None
    with pytest.raises(UserError, match="no user"):
        store.remove("alice", "b.example")
    with pytest.raises(UserError, match="no user"):
        store.passwd("ghost", "b.example", "pw")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_changes_from_another_connection_are_seen_within_max_staleness(tmp_path: Path) -> None:
    """``trunkline users passwd|remove`` against a running server's data directory."""
    directory = DataDir(tmp_path / "data")
    clock = FakeClock()
    with (
        contextlib.closing(directory.database()) as first,
        contextlib.closing(directory.database()) as second,
    ):
        server = UserStore(first, max_staleness=1.0, clock=clock)
        admin = UserStore(second)
        admin.add("dave", "example.com", "pw", NOW)
        assert server.ha1("dave", "example.com", "MD5") is None  # checked under a second ago
        clock.now += 1.0
        assert server.ha1("dave", "example.com", "MD5") == ha1("dave", "example.com", "pw")
        admin.passwd("dave", "example.com", "new")
        clock.now += 0.5
        assert server.ha1("dave", "example.com", "MD5") == ha1("dave", "example.com", "pw")
        clock.now += 0.5
        assert server.ha1("dave", "example.com", "MD5") == ha1("dave", "example.com", "new")
        admin.remove("dave", "example.com")
        clock.now += 1.0
        assert server.ha1("dave", "example.com", "MD5") is None
        assert not server.exists("dave", "example.com")
        # A writer that does not go through UserStore (raw SQL) is seen too: triggers.
        with second:
            second.execute(
                "INSERT INTO users VALUES ('example.com', 'erin', ?, '', '', 0)",
                (ha1("erin", "example.com", "pw"),),
            )
        clock.now += 1.0
        assert server.ha1("erin", "example.com", "MD5") == ha1("erin", "example.com", "pw")
        # max_staleness=0: every lookup checks.
        strict = UserStore(first, max_staleness=0.0, clock=clock)
        admin.remove("erin", "example.com")
        assert strict.ha1("erin", "example.com", "MD5") is None


def test_lookups_read_the_table_only_after_a_change(tmp_path: Path) -> None:
    directory = DataDir(tmp_path / "data")
    with (
        contextlib.closing(directory.database()) as first,
        contextlib.closing(directory.database()) as second,
    ):
        server, admin = UserStore(first, max_staleness=0.0), UserStore(second)
        server.add("alice", "example.com", "a", NOW)  # our own change: cache updated in place
        assert server.add_many([(f"u{i}", "example.com", f"p{i}") for i in range(50)], NOW) == 50
        server.passwd("alice", "example.com", "b")
        server.put("bob", "example.com", NOW, password="c")
        server.put("bob", "example.com", NOW, password="d")
        server.remove("u0", "example.com")
        reloads = server.reloads
        for _ in range(20):
            assert server.ha1("alice", "example.com", "MD5") == ha1("alice", "example.com", "b")
            assert server.ha1("bob", "example.com", "MD5") == ha1("bob", "example.com", "d")
            assert server.ha1("nobody", "example.com", "MD5") is None
        assert len(server) == 51
        assert server.reloads == reloads
        admin.passwd("u7", "example.com", "changed")
        assert server.ha1("u7", "example.com", "MD5") == ha1("u7", "example.com", "changed")
        assert server.reloads == reloads + 1
        # Another writer between our cache and our own write: the cache is re-read.
        admin.remove("u8", "example.com")
        server.add("carol", "example.com", "e", NOW)
        assert not server.exists("u8", "example.com")
        assert server.exists("carol", "example.com")


def test_add_many_is_all_or_nothing(store: UserStore) -> None:
    store.add("u3", "example.com", "pw", NOW)
    with pytest.raises(UserError, match="already exists"):
        store.add_many([(f"u{i}", "example.com", "pw") for i in range(10)], NOW)
    with pytest.raises(UserError, match="invalid user name"):
        store.add_many([("ok", "example.com", "pw"), ("bad name", "example.com", "pw")], NOW)
    assert [u.name for u in store.users()] == ["u3"]
    assert store.add_many([("Ok", "Example.com", "pw")], NOW) == 1
    assert store.ha1("Ok", "example.com", "SHA-256") == ha1("Ok", "example.com", "pw", "SHA-256")


def test_put_from_config_with_partial_ha1(store: UserStore) -> None:
    md5 = ha1("erin", "example.com", "pw", "MD5")
    store.put("erin", "example.com", NOW, hashes={"md5": md5.upper()})
    assert store.ha1("erin", "example.com", "MD5") == md5
    assert store.ha1("erin", "example.com", "SHA-256") is None
    store.put("erin", "example.com", NOW, password="pw2")
    assert store.ha1("erin", "example.com", "SHA-256") == ha1(
        "erin", "example.com", "pw2", "SHA-256"
    )
    with pytest.raises(UserError, match="hex digits"):
        store.put("erin", "example.com", NOW, hashes={"MD5": "abc"})
    with pytest.raises(UserError, match="password or HA1"):
        store.put("erin", "example.com", NOW)


def test_store_answers_digest_server_verification(store: UserStore) -> None:
    """End to end with helper D's DigestServer: right password accepted, wrong refused."""
    store.add("alice", "example.com", "wonderland", NOW)
    server = DigestServer("example.com", b"k" * 32)
    for password, ok in (("wonderland", True), ("guess", False)):
        client = DigestClient("alice", password)
        assert client.challenged(server.challenge(NOW))
        [(_, value)] = client.authorization("REGISTER", "sip:example.com")
        result = server.verify(
            Credentials.parse(value), "REGISTER", b"", store.ha1, NOW, request_uri="sip:example.com"
        )
        assert result.ok is ok


def test_demo_passwords_are_random_and_long() -> None:
    passwords = {demo_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) >= 16 for p in passwords)


# -- trunkline users ----------------------------------------------------------------


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["users", *args])
    return result.exit_code, result.output


def test_cli_add_list_passwd_remove(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    code, out = _run("add", "alice", "--password", "wonderland", "--data-dir", data)
    assert (code, out) == (0, "added alice@localhost\n")
    code, out = _run("add", "bob", "--data-dir", data, "--domain", "example.com")
    assert code == 0
    assert out.startswith("added bob@example.com\npassword: ")
    generated = out.split("password: ")[1].split()[0]
    code, out = _run("add", "alice", "--password", "x", "--data-dir", data)
    assert code == 1
    assert "already exists" in out

    code, out = _run("list", "--data-dir", data)
    assert code == 0
    assert "2 users" in out
    assert "alice" in out and "example.com" in out and "SHA-512-256" in out

    code, out = _run("passwd", "alice", "--password", "looking-glass", "--data-dir", data)
    assert (code, out) == (0, "password changed for alice@localhost\n")
    code, out = _run("passwd", "ghost", "--password", "x", "--data-dir", data)
    assert code == 1

    with contextlib.closing(DataDir(data).database()) as db:
        store = UserStore(db)
        assert store.ha1("alice", "localhost", "MD5") == ha1("alice", "localhost", "looking-glass")
        assert store.ha1("bob", "example.com", "MD5") == ha1("bob", "example.com", generated)

    code, out = _run("remove", "alice", "--data-dir", data)
    assert (code, out) == (0, "removed alice@localhost\n")
    code, out = _run("remove", "alice", "--data-dir", data)
    assert code == 1
    code, out = _run("list", "--data-dir", data, "--domain", "localhost")
    assert "0 users" in out


def test_cli_passwd_prompts_when_password_omitted(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert _run("add", "carol", "--password", "a", "--data-dir", data)[0] == 0
    result = CliRunner().invoke(
        app, ["users", "passwd", "carol", "--data-dir", data], input="s3cret\ns3cret\n"
    )
    assert result.exit_code == 0, result.output
    with contextlib.closing(DataDir(data).database()) as db:
        assert UserStore(db).ha1("carol", "localhost", "MD5") == ha1("carol", "localhost", "s3cret")


def test_config_users_are_loaded_and_win_over_the_database(store: UserStore) -> None:
    from trunkline.config import parse_config
    from trunkline.store.users import load_config_users

    md5 = ha1("bob", "voip.example", "pw", "MD5")
    config = parse_config(
        '[[users]]\nname = "alice"\npassword = "one"\n'
        f'[[users]]\nname = "bob"\ndomain = "voip.example"\nha1 = {{MD5 = "{md5}"}}\n'
    )
    store.add("alice", "example.com", "old", NOW)
    assert load_config_users(store, config.users, "example.com", NOW) == 2
    assert store.ha1("alice", "example.com", "MD5") == ha1("alice", "example.com", "one")
    assert store.ha1("bob", "voip.example", "MD5") == md5
    assert store.ha1("bob", "voip.example", "SHA-256") is None


def test_demo_users_only_on_an_empty_store(store: UserStore) -> None:
    from trunkline.store.users import ensure_demo_users

    created = ensure_demo_users(store, "example.com", NOW)
    assert sorted(created) == ["alice", "bob", "carol"]
    for name, password in created.items():
        assert store.ha1(name, "example.com", "SHA-256") == ha1(
            name, "example.com", password, "SHA-256"
        )
    assert ensure_demo_users(store, "example.com", NOW) == {}


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "race.db"
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with contextlib.closing(open_database(path)) as db:
                db.execute("SELECT count(*) FROM users").fetchone()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with contextlib.closing(open_database(path)) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]


def test_domains_are_stored_in_lower_case(store: UserStore) -> None:
    store.add("frank", "Example.COM", "pw", NOW)
    assert store.exists("frank", "example.com")
    assert store.ha1("frank", "example.com", "MD5") == ha1("frank", "example.com", "pw")
    store.passwd("frank", "EXAMPLE.com", "pw2")
    assert store.ha1("frank", "example.com", "MD5") == ha1("frank", "example.com", "pw2")
    store.remove("frank", "Example.Com")
    assert len(store) == 0
