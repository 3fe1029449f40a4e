"""Is a sound in a phone's recording? Level and normalised cross-correlation (numpy).

The recording is what the phone decoded from RTP: the source sent through G.711 μ-law
(8 kHz), delayed by the call set-up and the phone's jitter buffer, surrounded by silence.
The normalised cross-correlation of the source with a same-length window of the recording
is 1.0 where the recording holds an exact copy; μ-law quantisation (~38 dB SNR for speech)
keeps a true match above 0.99, while a different sound or silence stays far below.

One number over the whole sound is fragile, though: when the phone's clock and the RTP
stream slip by a frame (20 ms) mid-sound (seen now and then with two calls at once on a
busy machine), the whole-sound score drops to ~0.5-0.9 although every word was heard.
:func:`coverage` therefore also matches each 0.1 s piece of the source on its own and asks
that the pieces are found, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float64]


def as_float(samples: Sequence[int]) -> Samples:
    """16-bit samples as floats in [-1, 1)."""
    return np.asarray(samples, dtype=np.float64) / 32768.0


def rms_dbfs(samples: Samples) -> float:
    """Level in dB below full scale (-inf for digital silence)."""
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(samples**2)))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


@dataclass(frozen=True)
class Match:
    """Where the reference fits the recording best, and how well."""

    score: float  # normalised cross-correlation, -1..1
    offset: float  # seconds into the recording
    rate: int

    def __str__(self) -> str:
        """E.g. ``0.998 at 0.52 s``."""
        return f"{self.score:.3f} at {self.offset:.2f} s"


def best_match(reference: Samples, recording: Samples, rate: int = 8000) -> Match:
    """The best normalised cross-correlation of ``reference`` over ``recording``.

    The recording is padded with silence on both sides, so a copy cut short at either end
    still matches: it scores the square root of the share of the reference's energy heard.
    """
    n = reference.size
    if n == 0 or recording.size == 0:
        return Match(0.0, 0.0, rate)
    ref = reference - reference.mean()
    ref_norm = float(np.linalg.norm(ref))
    if ref_norm == 0:
        return Match(0.0, 0.0, rate)
    padded = np.concatenate((np.zeros(n - 1), recording, np.zeros(n - 1)))
    size = 1 << math.ceil(math.log2(padded.size + n))
    spectrum = np.fft.rfft(padded, size) * np.conj(np.fft.rfft(ref, size))
    numerator = np.fft.irfft(spectrum, size)[: padded.size - n + 1]
    energy = np.concatenate(([0.0], np.cumsum(padded**2)))
    window = np.sqrt(np.maximum(energy[n:] - energy[:-n], 0.0))
    # Windows of (near) silence cannot match: their score is 0, not noise over a tiny norm.
    floor = 1e-3 * ref_norm
    scores = np.where(window > floor, numerator / (np.maximum(window, floor) * ref_norm), 0.0)
    best = int(np.argmax(scores))
    return Match(float(scores[best]), (best - (n - 1)) / rate, rate)


@dataclass(frozen=True)
class Coverage:
    """How much of a sound was heard, piece by piece (0.1 s pieces that are not silent)."""

    pieces: int
    found: int  # pieces matching at >= threshold, each at a later place than the one before
    worst: float  # lowest piece score

    @property
    def share(self) -> float:
        """Share of the pieces found (1.0: all of it, in order)."""
        return self.found / self.pieces if self.pieces else 0.0

    def __str__(self) -> str:
        """E.g. ``14/14 pieces (worst 0.998)``."""
        return f"{self.found}/{self.pieces} pieces (worst {self.worst:.3f})"


def coverage(
    reference: Samples,
    recording: Samples,
    *,
    rate: int = 8000,
    piece: float = 0.1,
    threshold: float = 0.9,
    quiet_dbfs: float = -45.0,
) -> Coverage:
    """Match every non-silent ``piece`` of ``reference`` in ``recording`` on its own."""
    size = int(piece * rate)
    scores: list[float] = []
    found = 0
    last = -math.inf
    for start in range(0, reference.size - size + 1, size):
        part = reference[start : start + size]
        if rms_dbfs(part) < quiet_dbfs:
            continue
        match = best_match(part, recording, rate)
        scores.append(match.score)
        # In order: a piece may not be found earlier than the one before it (2 frames slack).
        if match.score >= threshold and match.offset * rate >= last - 2 * 160:
            found += 1
            last = match.offset * rate + size
    return Coverage(len(scores), found, min(scores) if scores else 0.0)
