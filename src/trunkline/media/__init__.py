"""Media engine: codecs, DSP, resampling, WAV files and SRTP.

* :mod:`trunkline.media.codecs` -- codec registry (G.711, G.722, Opus, telephone-event)
* :mod:`trunkline.media.resample` -- streaming resampler for the live path
* :mod:`trunkline.media.tones` -- call progress tones (ITU-T E.180) and DTMF generation
* :mod:`trunkline.media.dtmf` -- in-band DTMF detection (Goertzel, ITU-T Q.24)
* :mod:`trunkline.media.mixer` -- mixing with clipping protection, N-1 conference mixes
* :mod:`trunkline.media.dsp` -- gain, levels, voice activity detection
* :mod:`trunkline.media.wav` -- WAV files in and out at the call's rate
* :mod:`trunkline.media.srtp` -- SRTP/SRTCP (RFC 3711) with SDES keys (RFC 4568)

All audio is mono ``numpy.int16`` PCM.
"""
