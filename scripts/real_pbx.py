"""A real Asterisk and real SIP phones for ``scripts/demo`` and ``scripts/develop``.

The same pair the tests run (``tests/asterisk``: Asterisk 22 and baresip from the Debian sid
root, on 127.0.0.1). Where it cannot run (not root, no sid root yet, a start that fails),
:func:`start` returns the reason in one line and the caller goes on without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import shutil
import sys

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.asterisk import (  # noqa: E402
    PbxError,
    RealPbx,
    Recording,
    read_wav,
    sound_path,
    unavailable,
)
from tests.asterisk.audio import Match, as_float, best_match, rms_dbfs  # noqa: E402

PHONES = ("1000", "1001")


def start(phones: tuple[str, ...] = PHONES) -> RealPbx | str:
    """A started Asterisk with a registered phone on each of ``phones``, or why not."""
    if (reason := unavailable()) is not None:
        return reason
    pbx = RealPbx(phones)
    try:
        pbx.start()
    except (PbxError, OSError) as err:
        return f"it did not start: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    return pbx


def entry_form(pbx: RealPbx) -> dict[str, object]:
    """What a user types into the Asterisk step of the config flow for this PBX."""
    return {
        "url": pbx.ari_url,
        "username": pbx.ari_user,
        "password": pbx.ari_password,
        "app": pbx.app,
        "verify_ssl": False,
    }


@dataclass(frozen=True)
class Heard:
    """What a phone recorded of its last call, kept where the user can play it."""

    path: Path
    seconds: float
    rate: int
    level_dbfs: float

    def __str__(self) -> str:
        """One line for the transcript."""
        return (
            f"{self.seconds:.2f} s at {self.rate} Hz, level {self.level_dbfs:.1f} dBFS, "
            f"saved as {self.path}"
        )


def keep(recording: Recording, target: Path) -> Heard:
    """Copy a phone's recording out of the PBX's run directory (deleted when it stops)."""
    shutil.copyfile(recording.path, target)
    level = rms_dbfs(as_float(recording.samples))
    return Heard(target, recording.seconds, recording.rate, level)


def find_sound(pbx: RealPbx, name: str, recording: Recording) -> Match:
    """Where one of Asterisk's sounds is in a recording, and how well it matches (0..1)."""
    reference = read_wav(sound_path(pbx, name))
    return best_match(as_float(reference.samples), as_float(recording.samples), recording.rate)


def describe(pbx: RealPbx) -> str:
    """Where the PBX is and how to add it (develop's instructions)."""
    phones = "".join(
        f"       {number}: what it hears goes to {pbx.phone(number).recording_path}\n"
        for number in pbx.phones
    )
    return (
        f"     ARI URL {pbx.ari_url}, username {pbx.ari_user}, password {pbx.ari_password},\n"
        f"     Stasis application {pbx.app}. Phones that answer by themselves:\n{phones}"
    )
