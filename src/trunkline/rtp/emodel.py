"""A call-quality score: the E-model (ITU-T G.107) reduced to what a VoIP
endpoint measures, and the R -> MOS mapping (G.107 Annex B).

    R = Ro - Is - Id - Ie,eff + A                       (G.107 §3, eq. 3-1)

* ``Ro - Is`` takes the G.107 default parameter values (Table 3): 93.2.
  ``A`` (advantage factor) is 0.
* ``Id`` (delay impairment) uses the widely used fit of G.107's delay terms
  with default echo values by Cole and Rosenbluth ("Voice over IP
  performance monitoring", ACM CCR 31(2), 2001)::

      Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)      d = one-way delay in ms

* ``Ie,eff`` (equipment impairment with packet loss, G.107 eq. 7-29)::

      Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)

  with ``Ppl`` the packet-loss percentage *as heard*, i.e. network loss plus
  packets the jitter buffer discarded as late, and ``BurstR`` = 1 (random
  loss) unless the caller measured burstiness.

* MOS (conversational quality estimate, G.107 Annex B, eq. B-4)::

      MOS = 1                                  R < 0
      MOS = 1 + 0.035 R + R (R - 60)(100 - R) 7e-6    0 <= R <= 100
      MOS = 4.5                                R > 100

Codec ``Ie``/``Bpl`` come from ITU-T G.113 Appendix I (Tables I.1 and I.3):
G.711 Ie 0 with Bpl 4.3 without packet-loss concealment and 25.1 with PLC
(G.711 Appendix I); G.729A + VAD Ie 11, Bpl 19.0; G.723.1 (6.3 kbit/s)
Ie 15, Bpl 16.1. G.722 and Opus have only wideband (G.107.1, Ie,wb) values
in the ITU tables, which do not live on this narrowband scale; a wideband
codec at its usual rates is at least as good as G.711, so they are rated
here as Ie 0 with a concealment-grade Bpl (G.722 with its Appendix IV PLC,
Opus with its built-in PLC): a project assumption, not an ITU value.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CODEC_IMPAIRMENTS",
    "CodecImpairment",
    "QualityScore",
    "delay_impairment",
    "effective_equipment_impairment",
    "mos_from_r",
    "r_factor",
    "score_call",
]

#: Ro - Is with G.107 default values (Table 3).
R_DEFAULT = 93.2


@dataclass(slots=True, frozen=True)
class CodecImpairment:
    """Equipment impairment factor Ie and packet-loss robustness Bpl."""

    ie: float
    bpl: float
    source: str


CODEC_IMPAIRMENTS: dict[str, CodecImpairment] = {
    "PCMU": CodecImpairment(0.0, 25.1, "G.113 App. I: G.711 with PLC (G.711 App. I)"),
    "PCMA": CodecImpairment(0.0, 25.1, "G.113 App. I: G.711 with PLC (G.711 App. I)"),
    "PCMU-noplc": CodecImpairment(0.0, 4.3, "G.113 App. I: G.711 without PLC"),
    "PCMA-noplc": CodecImpairment(0.0, 4.3, "G.113 App. I: G.711 without PLC"),
    "G729": CodecImpairment(11.0, 19.0, "G.113 App. I: G.729A + VAD"),
    "G723": CodecImpairment(15.0, 16.1, "G.113 App. I: G.723.1 6.3 kbit/s"),
    "G722": CodecImpairment(0.0, 25.1, "assumption: wideband, PLC per G.722 App. IV"),
    "opus": CodecImpairment(0.0, 25.1, "assumption: wideband, built-in PLC"),
}


def delay_impairment(one_way_delay: float) -> float:
    """Id for a one-way mouth-to-ear delay in seconds (Cole & Rosenbluth fit)."""
    d = max(0.0, one_way_delay * 1000.0)
    id_ = 0.024 * d
    if d > 177.3:
        id_ += 0.11 * (d - 177.3)
    return id_


def effective_equipment_impairment(
    codec: CodecImpairment, loss_fraction: float, burst_ratio: float = 1.0
) -> float:
    """Ie,eff (G.107 eq. 7-29) for a loss fraction in [0, 1]."""
    ppl = min(100.0, max(0.0, loss_fraction * 100.0))
    burst_ratio = max(1.0, burst_ratio)
    return codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst_ratio + codec.bpl)


def r_factor(
    codec: CodecImpairment,
    loss_fraction: float,
    one_way_delay: float,
    burst_ratio: float = 1.0,
    advantage: float = 0.0,
) -> float:
    """The transmission rating R (G.107 eq. 3-1) with default Ro - Is."""
    return (
        R_DEFAULT
        - delay_impairment(one_way_delay)
        - effective_equipment_impairment(codec, loss_fraction, burst_ratio)
        + advantage
    )


def mos_from_r(r: float) -> float:
    """Estimated MOS (conversational quality, G.107 Annex B eq. B-4)."""
    if r < 0:
        return 1.0
    if r > 100:
        return 4.5
    # The cubic dips just below 1 for 0 < R < 6.5; clamp so MOS stays in [1, 4.5].
    return max(1.0, 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6)


@dataclass(slots=True, frozen=True)
class QualityScore:
    """R and MOS of one direction of a call, with the inputs that made them."""

    r: float
    mos: float
    loss_fraction: float
    one_way_delay: float
    codec: str


def score_call(
    codec: str,
    *,
    network_loss: float,
    discarded: float = 0.0,
    one_way_delay: float,
    burst_ratio: float = 1.0,
) -> QualityScore:
    """Score one direction of a call.

    ``network_loss`` and ``discarded`` (late packets dropped by the jitter
    buffer) are fractions of packets expected; both are heard as loss.
    ``one_way_delay`` (seconds) should include network delay (RTT / 2),
    packetization and the jitter buffer's delay. Unknown codecs are rated
    like G.711 with PLC.
    """
    impairment = CODEC_IMPAIRMENTS.get(codec) or CODEC_IMPAIRMENTS.get(
        codec.upper(), CODEC_IMPAIRMENTS["PCMU"]
    )
    loss = min(1.0, max(0.0, network_loss) + max(0.0, discarded))
    r = r_factor(impairment, loss, one_way_delay, burst_ratio)
    return QualityScore(r, mos_from_r(r), loss, one_way_delay, codec)
