"""trunkline.toml loading: defaults, validation, and errors that name file, line and field."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.config import (
    Config,
    ConfigError,
    TomlLocator,
    apply_overrides,
    load_config,
    parse_config,
)


def _error(text: str, name: str = "trunkline.toml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, name)
    return str(info.value).splitlines()


def test_zero_config_defaults_give_a_working_server() -> None:
    config = load_config(None)
    assert config == Config()
    assert (config.listen.udp.port, config.listen.tcp.port) == (5060, 5060)
    assert config.listen.tls.port == 5061
    assert config.listen.ws.port == 8080
    assert config.location.backend == "memory"
    assert config.location.min_expires <= config.location.default_expires
    assert config.users == []
    assert config.trusted == []


def test_full_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "trunkline.toml"
    path.write_text(
        """
domains = ["Example.COM", "voip.example.com"]
trusted = ["10.0.0.0/8", "2001:db8::/32"]

[listen.udp]
host = "127.0.0.1"
port = 5070

[listen.tls]
port = 5071
certificate = "/etc/ssl/cert.pem"
key = "/etc/ssl/key.pem"

[[users]]
name = "alice"
password = "wonderland"

[[users]]
name = "bob"
domain = "voip.example.com"
ha1 = { MD5 = "0123456789abcdef0123456789ABCDEF" }

[limits]
requests_per_second = 20.5

[logging]
level = "debug"
sip_trace = true

[location]
backend = "redis"
redis_url = "redis://127.0.0.1:6400/2"
""",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.domains == ["example.com", "voip.example.com"]
    assert config.trusted == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    ]
    assert (config.listen.udp.host, config.listen.udp.port) == ("127.0.0.1", 5070)
    assert config.listen.tcp.port == 5060
    assert config.listen.tls.certificate == Path("/etc/ssl/cert.pem")
    assert [u.name for u in config.users] == ["alice", "bob"]
    assert config.users[0].password == "wonderland"
    assert config.users[1].ha1 == {"MD5": "0123456789abcdef0123456789abcdef"}
    assert config.limits.requests_per_second == 20.5
    assert config.logging.sip_trace is True
    assert config.location.redis_url.endswith("/2")


def test_example_from_the_issue_names_file_line_field() -> None:
    text = "\n" * 8 + "[listen.udp]\nhost = '0.0.0.0'\n\nport = 65536\n"
    assert _error(text) == ["trunkline.toml:12: listen.udp.port: Input should be less than 65536"]


def test_every_error_is_reported_with_its_line() -> None:
    text = """\
domains = ["ok.example"]
trusted = [
  "10.0.0.0/8",
  "not-a-network",
]
[listen]
tcp = { host = "::1", port = 0 }

[[users]]
name = "alice"
password = "x"

[[users]]
name = "bob"
"ha1" = { md5 = "zz" }

[[users]]
name = "carol"
password = '''spans
two = lines [x]'''
colour = "blue"
[location]
backend = "mongo"
"""
    assert _error(text, "conf/site.toml") == [
        "conf/site.toml:7: listen.tcp.port: Input should be greater than 0",
        "conf/site.toml:15: users[1].ha1: md5: expected 32 hex digits",
        "conf/site.toml:21: users[2].colour: Extra inputs are not permitted",
        "conf/site.toml:4: trusted[1]: value is not a valid IPv4 or IPv6 network",
        "conf/site.toml:23: location.backend: Input should be 'memory' or 'redis'",
    ]


def test_model_level_errors_point_at_the_table() -> None:
    text = "[[users]]\nname = 'a'\n\n[[users]]\nname = 'b'\npassword = 'p'\nha1 = {}\n"
    lines = _error(text)
    assert lines[0] == "trunkline.toml:1: users[0]: give exactly one of password and ha1"
    assert lines[1].startswith("trunkline.toml:7: users[1].ha1:")


def test_cross_field_rules() -> None:
    assert _error("[location]\nmin_expires = 7200\n") == [
        "trunkline.toml:1: location: need min_expires <= default_expires <= max_expires"
    ]
    assert _error("[listen.tls]\nport = 5061\nkey = 'k.pem'\n") == [
        "trunkline.toml:1: listen.tls: certificate and key must be given together"
    ]
    lines = _error("[[users]]\nname='a'\npassword='p'\n[[users]]\nname='a'\npassword='q'\n")
    assert lines == ["trunkline.toml: user 'a' is defined twice"]


def test_unknown_top_level_key_and_wrong_type() -> None:
    assert _error("domains = 'x.com'\n\nlisten_udp = 1\n") == [
        "trunkline.toml:1: domains: Input should be a valid list",
        "trunkline.toml:3: listen_udp: Extra inputs are not permitted",
    ]


def test_toml_syntax_error_reports_tomllib_line() -> None:
    assert _error("a = 1\n[listen\nport = 1\n") == [
        "trunkline.toml:2: Expected ']' at the end of a table declaration (column 8)"
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_config(tmp_path / "missing.toml")


def test_locator_nested_tables_arrays_of_tables_and_dotted_keys() -> None:
    text = """\
top = 1
a.b.c = 2            # dotted key
[x.y]
z = "[not.a.table]"
[[srv]]
name = "one"
[srv.inner]
k = 1
[[srv]]
name = "two"
[[srv.port]]
n = 1
[[srv.port]]
n = 2
list = [1,
  2, [3,
  4]]
"quoted.key" = { a = 1, b = { c = 3 } }
"""
    locator = TomlLocator(text)
    assert locator.line_of(("top",)) == 1
    assert locator.line_of(("a", "b", "c")) == 2
    assert locator.line_of(("a", "b")) == 2
    assert locator.line_of(("x", "y", "z")) == 4
    assert locator.line_of(("x", "y")) == 3
    assert locator.line_of(("srv", 0, "name")) == 6
    assert locator.line_of(("srv", 0, "inner", "k")) == 8
    assert locator.line_of(("srv", 1, "name")) == 10
    assert locator.line_of(("srv", 1, "port", 0, "n")) == 12
    assert locator.line_of(("srv", 1, "port", 1, "n")) == 14
    assert locator.line_of(("srv", 1, "port", 1, "list", 1)) == 16
    assert locator.line_of(("srv", 1, "port", 1, "list", 2, 1)) == 17
    assert locator.line_of(("srv", 1, "port", 1, "quoted.key", "b", "c")) == 18
    assert locator.line_of(("srv", 1, "port", 1, "missing")) == 13
    assert locator.line_of(("nowhere",)) is None


def test_overrides_from_the_command_line() -> None:
    config = apply_overrides(
        Config(),
        host="127.0.0.1",
        sip_port=5080,
        http_port=8088,
        trusted=["192.0.2.0/24"],
        data_dir=Path("/tmp/x"),
    )
    assert {config.listen.udp.host, config.listen.tls.host} == {"127.0.0.1"}
    assert (config.listen.udp.port, config.listen.tcp.port) == (5080, 5080)
    assert config.listen.tls.port == 5061
    assert config.listen.ws.port == 8088
    assert config.trusted == [ipaddress.ip_network("192.0.2.0/24")]
    assert config.data_dir == Path("/tmp/x")
    with pytest.raises(ConfigError, match=r"command line: listen\.udp\.port"):
        apply_overrides(Config(), sip_port=70000)


# -- property: the locator finds every key the way TOML lays it out ----------------------

_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
_scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.text(alphabet="ab =[]{}#.,'\\\"\n", max_size=8),
)


def _render_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    assert isinstance(value, str)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@st.composite
def _documents(draw: st.DrawFn) -> tuple[str, dict[tuple[str | int, ...], int], dict[str, Any]]:
    """A TOML text, the line of every key path in it, and the data it means."""
    lines: list[str] = []
    where: dict[tuple[str | int, ...], int] = {}
    data: dict[str, Any] = {}

    def key_values(prefix: tuple[str | int, ...], target: dict[str, Any]) -> None:
        for name in draw(st.lists(_names, max_size=3, unique=True)):
            if draw(st.booleans()):
                values = draw(st.lists(st.integers(-99, 99), max_size=3))
                lines.append(f"{name} = [")
                where[(*prefix, name)] = len(lines)
                for index, value in enumerate(values):
                    lines.append(f"  {value},")
                    where[(*prefix, name, index)] = len(lines)
                lines.append("]")
                target[name] = values
            else:
                scalar = draw(_scalars)
                lines.append(f"{name} = {_render_scalar(scalar)}  # note")
                where[(*prefix, name)] = len(lines)
                target[name] = scalar

    key_values((), data)
    used = set(data)
    for table in draw(st.lists(_names.filter(lambda n: n not in used), max_size=3, unique=True)):
        if draw(st.booleans()):
            items: list[dict[str, Any]] = []
            for index in range(draw(st.integers(1, 3))):
                lines.append("")
                lines.append(f"[[{table}]]")
                where[(table, index)] = len(lines)
                item: dict[str, Any] = {}
                key_values((table, index), item)
                items.append(item)
            data[table] = items
        else:
            lines.append(f"[{table}]")
            where[(table,)] = len(lines)
            data[table] = {}
            key_values((table,), data[table])
    return "\n".join(lines) + "\n", where, data


@settings(max_examples=100, deadline=None)
@given(_documents())
def test_locator_property(document: tuple[str, dict[tuple[str | int, ...], int], Any]) -> None:
    text, where, data = document
    assert tomllib.loads(text) == data
    locator = TomlLocator(text)
    for path, line in where.items():
        assert locator.line_of(path) == line, (path, text)


def test_the_documented_example_is_valid() -> None:
    import trunkline.config as module

    doc = module.__doc__ or ""
    example = doc.split("Example::\n", 1)[1]
    text = "\n".join(line.removeprefix("    ") for line in example.splitlines())
    config = parse_config(text)
    assert config.domains == ["example.com"]
    assert config.users[0].name == "alice"
    assert config.location.backend == "redis"


def test_trusted_networks_from_the_command_line_revalidate() -> None:
    from trunkline.config import apply_overrides, parse_config

    config = parse_config('trusted = ["10.0.0.0/8"]\n')
    merged = apply_overrides(config, trusted=["127.0.0.0/8"])
    assert [str(n) for n in merged.trusted] == ["10.0.0.0/8", "127.0.0.0/8"]


def test_workers_default_to_one_per_cpu_and_ban_times_are_settable() -> None:
    assert Config().workers == 0  # one per CPU: responses are handed over (proxy.handoff)
    config = parse_config(
        "workers = 0\n[limits]\nflood_ban_seconds = 15\nauth_failure_window = 120.5\n"
        '[logging]\nformat = "json"\nfile = "/var/log/trunkline.log"\n'
    )
    assert config.workers == 0  # trunkline.proxy.workers: one per CPU, capped
    assert (config.limits.flood_ban_seconds, config.limits.auth_failure_window) == (15, 120.5)
    assert config.limits.ban_seconds == 600.0
    assert config.logging.format == "json" and config.logging.file == Path("/var/log/trunkline.log")
    assert _error("[limits]\nflood_ban_seconds = -1\n")[0].startswith(
        "trunkline.toml:2: limits.flood_ban_seconds"
    )
