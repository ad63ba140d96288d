"""Interop with SoX: WAV files both ways, and the G.711 decode tables."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.support.peers import require_peer

from trunkline.media.codecs import g711
from trunkline.media.wav import load_wav, read_wav_info, write_wav

pytestmark = pytest.mark.interop


@pytest.mark.parametrize(
    ("rate", "bits", "channels"), [(44100, 24, 2), (48000, 32, 1), (8000, 8, 1), (16000, 16, 2)]
)
def test_read_sox_generated_tone(tmp_path: Path, rate: int, bits: int, channels: int) -> None:
    sox = require_peer("sox", "sox")
    path = tmp_path / "tone.wav"
    subprocess.run(
        [sox, "-n", "-r", str(rate), "-b", str(bits), "-c", str(channels), "-e",
         "unsigned-integer" if bits == 8 else "signed-integer",
         str(path), "synth", "0.5", "sine", "1000", "vol", "0.5"],
        check=True, timeout=20, capture_output=True,
    )  # fmt: skip
    pcm, info = read_wav_info(path)
    assert (info.sample_rate, info.channels, info.sample_width) == (rate, channels, bits // 8)
    assert len(pcm) == rate // 2
    peak = int(np.abs(pcm.astype(np.int32)).max())
    assert 15000 < peak < 17500  # half of full scale
    at_8k = load_wav(path, 8000)
    spectrum = np.abs(np.fft.rfft(at_8k.astype(np.float64), 8000))
    assert int(np.argmax(spectrum)) == 1000


def test_sox_reads_what_we_write(tmp_path: Path) -> None:
    sox = require_peer("sox", "sox")
    t = np.arange(16000) / 16000
    x = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    path = tmp_path / "ours.wav"
    write_wav(path, x, 16000, sample_width=3)
    stat = subprocess.run(
        [sox, str(path), "-n", "stat"], check=True, timeout=20, capture_output=True, text=True
    ).stderr
    fields = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in stat.splitlines())
    )
    assert float(fields["Length (seconds)"]) == pytest.approx(1.0)
    assert float(fields["Maximum amplitude"]) == pytest.approx(8000 / 32768, abs=1e-3)
    assert float(fields["Rough   frequency"]) == pytest.approx(440, abs=5)


@pytest.mark.parametrize(
    ("encoding", "decode"), [("u-law", g711.ulaw2lin), ("a-law", g711.alaw2lin)]
)
def test_g711_decode_tables_match_sox(tmp_path: Path, encoding: str, decode: Any) -> None:
    sox = require_peer("sox", "sox")
    codes, linear = tmp_path / "codes.raw", tmp_path / "linear.raw"
    codes.write_bytes(bytes(range(256)))
    subprocess.run(
        [sox, "-t", "raw", "-r", "8000", "-e", encoding, "-b", "8", "-c", "1", str(codes),
         "-t", "raw", "-e", "signed-integer", "-b", "16", str(linear)],
        check=True, timeout=20, capture_output=True,
    )  # fmt: skip
    assert np.array_equal(
        np.frombuffer(linear.read_bytes(), dtype="<i2"), decode(bytes(range(256)))
    )
