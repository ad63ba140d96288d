"""STUN messages and the Binding transaction (RFC 5389) against the RFC 5769 test vectors.

The vectors (RFC 5769 §2.1-§2.3) were checked against the RFC text and several
independent implementations' test suites; all use the short-term password
``VOkJxbRl1RmTxUk/WvJxBt`` and pad with spaces (0x20).
"""

from __future__ import annotations

import pytest

from trunkline.ua.stun import (
    MAGIC_COOKIE,
    Attribute,
    BindingTransaction,
    StunClass,
    StunMessage,
    StunParseError,
    TransactionState,
    decode_xor_address,
    encode_xor_address,
    is_stun,
    long_term_key,
    message_type,
    split_type,
)

PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")

# RFC 5769 §2.1: Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
# MESSAGE-INTEGRITY and FINGERPRINT.
REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"
    "002400046e0001ff"
    "80290008932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf"
)
# RFC 5769 §2.2: success response, XOR-MAPPED-ADDRESS 192.0.2.1:32853.
IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
# RFC 5769 §2.3: success response, XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
IPV6_RESPONSE = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)


def test_rfc5769_request_decodes_and_verifies() -> None:
    message = StunMessage.parse(REQUEST)
    assert (message.method, message.cls) == (0x001, StunClass.REQUEST)
    assert message.transaction_id == TXID
    assert message.software == "STUN test client"
    assert message.get(Attribute.USERNAME) == b"evtj:h6vY"
    assert message.get(0x0024) == bytes.fromhex("6e0001ff")  # PRIORITY (RFC 8445)
    assert message.get(0x8029) == bytes.fromhex("932ff9b151263b36")  # ICE-CONTROLLED
    assert message.check_integrity(PASSWORD)
    assert not message.check_integrity(b"wrong")


def test_rfc5769_request_encodes_byte_for_byte() -> None:
    message = StunMessage(
        0x001,
        StunClass.REQUEST,
        TXID,
        (
            (Attribute.SOFTWARE, b"STUN test client"),
            (0x0024, bytes.fromhex("6e0001ff")),
            (0x8029, bytes.fromhex("932ff9b151263b36")),
            (Attribute.USERNAME, b"evtj:h6vY"),
        ),
    )
    assert message.encode(integrity_key=PASSWORD, fingerprint=True, padding=b" ") == REQUEST


@pytest.mark.parametrize(
    ("data", "address"),
    [
        (IPV4_RESPONSE, ("192.0.2.1", 32853)),
        (IPV6_RESPONSE, ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
    ],
    ids=["ipv4", "ipv6"],
)
def test_rfc5769_responses(data: bytes, address: tuple[str, int]) -> None:
    message = StunMessage.parse(data)
    assert message.cls is StunClass.SUCCESS and message.method == 0x001
    assert message.software == "test vector"
    assert message.xor_mapped_address == address
    assert message.check_integrity(PASSWORD)
    rebuilt = StunMessage(
        0x001,
        StunClass.SUCCESS,
        TXID,
        (
            (Attribute.SOFTWARE, b"test vector"),
            (Attribute.XOR_MAPPED_ADDRESS, encode_xor_address(*address, TXID)),
        ),
    )
    assert rebuilt.encode(integrity_key=PASSWORD, fingerprint=True, padding=b" ") == data


def test_fingerprint_mismatch_is_rejected() -> None:
    broken = IPV4_RESPONSE[:-1] + bytes([IPV4_RESPONSE[-1] ^ 1])
    with pytest.raises(StunParseError, match="FINGERPRINT"):
        StunMessage.parse(broken)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        IPV4_RESPONSE[:19],
        b"\x80" + IPV4_RESPONSE[1:],  # top bits set
        IPV4_RESPONSE[:4] + b"\x00\x00\x00\x00" + IPV4_RESPONSE[8:],  # no magic cookie
        IPV4_RESPONSE[:-4],  # length field says more
        IPV4_RESPONSE[:2] + b"\x00\x40" + IPV4_RESPONSE[4:] + b"\x00\x09\x00\x08",  # overrun
    ],
)
def test_malformed_messages_raise(data: bytes) -> None:
    with pytest.raises(StunParseError):
        StunMessage.parse(data)


def test_type_bits_and_demultiplexing() -> None:
    """§6: class bits C0/C1 sit at bits 4 and 8 of the type."""
    assert message_type(0x001, StunClass.REQUEST) == 0x0001
    assert message_type(0x001, StunClass.INDICATION) == 0x0011
    assert message_type(0x001, StunClass.SUCCESS) == 0x0101
    assert message_type(0x001, StunClass.ERROR) == 0x0111
    assert message_type(0x003, StunClass.REQUEST) == 0x0003  # TURN Allocate
    for method in (0x001, 0x003, 0x0FF, 0xFFF):
        for cls in StunClass:
            assert split_type(message_type(method, cls)) == (method, cls)
    assert is_stun(REQUEST) and is_stun(IPV6_RESPONSE)
    assert not is_stun(b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n")
    assert not is_stun(b"\x80\x00" + bytes(18))  # RTP version 2


def test_xor_address_round_trip() -> None:
    for host in ("203.0.113.9", "::1", "2001:db8::5"):
        value = encode_xor_address(host, 5060, TXID)
        assert decode_xor_address(value, TXID) == (host, 5060)
    assert int.from_bytes(encode_xor_address("0.0.0.0", 0, TXID)[4:], "big") == MAGIC_COOKIE


def test_long_term_key_is_md5_of_user_realm_password() -> None:
    """§15.4: key = MD5("user:realm:pass"); `printf 'user:realm:pass' | md5sum`."""
    assert long_term_key("user", "realm", "pass").hex() == "8493fbc53ba582fb4c044c456bdc40eb"


def test_error_response_attributes() -> None:
    value = bytes([0, 0, 4, 1]) + b"Unauthorized"
    message = StunMessage(0x001, StunClass.ERROR, TXID, ((Attribute.ERROR_CODE, value),))
    assert StunMessage.parse(bytes(message)).error_code == (401, "Unauthorized")


# -- the client transaction (§7.2.1) -----------------------------------------------------
def run_until_over(txn: BindingTransaction, limit: int = 20) -> list[float]:
    """Fire the timer until the transaction ends; the times the request went out."""
    sends = [0.0] * len(txn.datagrams_to_send())
    for _ in range(limit):
        at = txn.get_timer()
        if at is None:
            break
        txn.handle_timer(at)
        sends += [at] * len(txn.datagrams_to_send())
    return sends


def test_retransmission_schedule_and_timeout() -> None:
    """§7.2.1: sent at 0, 500, 1500, 3500, 7500, 15500, 31500 ms; failed at 39500 ms."""
    txn = BindingTransaction(0.0)
    sends = run_until_over(txn)
    assert sends == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert txn.state is TransactionState.FAILED and txn.error is not None
    assert "timeout" in txn.error


def test_timeout_moment_and_early_timer_is_ignored() -> None:
    txn = BindingTransaction(100.0, rto=0.1, rc=2, rm=4)
    assert len(txn.datagrams_to_send()) == 1
    txn.handle_timer(100.05)  # not due yet
    assert txn.datagrams_to_send() == []
    txn.handle_timer(100.1)
    assert len(txn.datagrams_to_send()) == 1
    assert txn.get_timer() == pytest.approx(100.1 + 0.4)
    txn.handle_timer(100.5)
    assert txn.state is TransactionState.FAILED and txn.get_timer() is None


def _success_for(txn: BindingTransaction, host: str, port: int) -> bytes:
    tid = txn.transaction_id
    response = StunMessage(
        0x001,
        StunClass.SUCCESS,
        tid,
        ((Attribute.XOR_MAPPED_ADDRESS, encode_xor_address(host, port, tid)),),
    )
    return response.encode(fingerprint=True)


def test_success_response_ends_the_transaction() -> None:
    txn = BindingTransaction(0.0)
    (wire,) = txn.datagrams_to_send()
    request = StunMessage.parse(wire)  # our request carries a valid FINGERPRINT
    assert request.cls is StunClass.REQUEST and request.get(Attribute.FINGERPRINT)
    other = StunMessage(0x001, StunClass.SUCCESS, bytes(12)).encode()
    assert not txn.handle_datagram(other, 0.1)  # another transaction's response
    assert not txn.handle_datagram(b"SIP/2.0 200 OK\r\n\r\n", 0.1)
    assert txn.handle_datagram(_success_for(txn, "198.51.100.4", 61000), 0.2)
    assert txn.state is TransactionState.SUCCEEDED
    assert txn.mapped == ("198.51.100.4", 61000)
    assert txn.get_timer() is None
    assert not txn.handle_datagram(_success_for(txn, "198.51.100.4", 61000), 0.3)


def test_error_response_fails_the_transaction() -> None:
    txn = BindingTransaction(0.0)
    tid = txn.transaction_id
    value = bytes([0, 0, 4, 20]) + b"Unknown Attribute"
    error = StunMessage(0x001, StunClass.ERROR, tid, ((Attribute.ERROR_CODE, value),))
    assert txn.handle_datagram(bytes(error), 0.1)
    assert txn.state is TransactionState.FAILED
    assert txn.error == "error response 420 Unknown Attribute"
