"""REGISTER requests for location service tests, built the short way.

:func:`register_request` makes the :class:`RegisterRequest` that the
registrar hands a location backend once a REGISTER is parsed and
authenticated (RFC 3261 §10.3): contact URIs (or :class:`ContactSpec`
values with q, expires, instance and reg-id), the Call-ID and CSeq that
order updates (§10.3 step 7), the Expires header and ``Contact: *``.
"""

from __future__ import annotations

from trunkline.proxy.location import ContactSpec, RegisterRequest

#: A fixed wall-clock time for bindings (2027-01-15), far from the epoch.
T0 = 1_800_000_000.0


def register_request(
    *contacts: ContactSpec | str,
    aor: str,
    call_id: str = "c1",
    cseq: int = 1,
    expires: int | None = None,
    star: bool = False,
    received: str | None = None,
    transport: str | None = None,
    flow: str | None = None,
    path: tuple[str, ...] = (),
    user_agent: str | None = None,
) -> RegisterRequest:
    """A REGISTER for ``aor`` binding ``contacts`` (URIs or specs), with the given fields."""
    return RegisterRequest(
        aor=aor,
        call_id=call_id,
        cseq=cseq,
        contacts=tuple(ContactSpec(c) if isinstance(c, str) else c for c in contacts),
        star=star,
        expires=expires,
        received=received,
        transport=transport,
        flow=flow,
        path=path,
        user_agent=user_agent,
    )
