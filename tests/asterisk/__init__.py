"""A real Asterisk 22 and real SIP phones (baresip) on 127.0.0.1, for tests and demos.

``RealPbx`` writes Asterisk's configuration (``templates/``) into a temporary directory,
starts ``asterisk -f -C <dir>/etc/asterisk.conf`` and one baresip per phone, waits until
Asterisk has fully booted and every phone is registered (``GET /ari/endpoints/PJSIP/<n>``
says ``online``), and stops them by PID, also when starting fails::

    with RealPbx() as pbx:
        pbx.ari_url, pbx.ari_user, pbx.ari_password, pbx.app
        pbx.phone("1000").recording()

Where the binaries come from (Debian 12 has no Asterisk; Debian sid has 22.x):

* inside the sid root (the newest test lane runs there): ``asterisk`` and ``baresip`` are on
  PATH and run directly;
* on the host (the floor lane): they run inside the sid root ``.cache/sid/root`` that
  ``scripts/sidroot ensure`` builds. ``scripts/sidroot run`` is not used: it keeps a shell
  between us and the program, so the PID we hold would not be the daemon's. Instead each
  program is started as ``unshare --mount -- sh -c 'mount proc, bind /dev; exec chroot
  <root> env -i … <program>'``: every step ``exec``s, so the PID is the daemon's, and the
  mounts live in the program's own mount namespace and vanish when it exits (nothing is
  left mounted, however it ends). The run directory is made under ``<root>/tmp`` so that
  both sides see it (``/tmp/…`` inside, ``<root>/tmp/…`` outside).

Neither possible (not root, no root built, no packages): :func:`unavailable` says why, and
the tests skip with that reason. The network namespace is shared, so ARI, SIP and RTP are
on this machine's 127.0.0.1 either way.
"""

from __future__ import annotations

import array
import asyncio
import atexit
import base64
from collections.abc import AsyncIterator, Sequence
import contextlib
from dataclasses import dataclass
import json
import os
from pathlib import Path
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import Any, Self
import urllib.error
import urllib.request
import wave

REPO = Path(__file__).resolve().parents[2]
SID_ROOT = REPO / ".cache" / "sid" / "root"
TEMPLATES = Path(__file__).with_name("templates")
MODULE_DIR = "/usr/lib/x86_64-linux-gnu/asterisk/modules"
SOUNDS = "/usr/share/asterisk/sounds/en"
ENV = ("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root", "LANG=C.UTF-8")
# Endpoints in pjsip.conf: phones may register on them; NOT_REGISTERED never has one.
NUMBERS = ("1000", "1001", "1002")
NOT_REGISTERED = "1002"
APP = "voice_prompt"
ARI_USER = "voice_prompt"
ARI_READER = "listener"
ARI_PASSWORD = "Real-Asterisk-Test1"  # a throwaway for a PBX that lives for one test run
SILENCE_SECONDS = 120  # what a phone sends; baresip hangs up when its source file ends
START_TIMEOUT = 20.0
STOP_GRACE = 1.0


class PbxError(RuntimeError):
    """The real PBX could not be started (with the logs' last lines)."""


def _root_usable(root: Path) -> str | None:
    for binary in ("usr/sbin/asterisk", "usr/bin/baresip", "usr/bin/sox"):
        if not (root / binary).exists():
            return (
                f"the sid root {root} has no /{binary} (run scripts/sidroot ensure: its "
                "PACKAGES install asterisk, baresip-core, sox)"
            )
    if not (Runner(root).outside(SOUNDS) / "hello-world.wav").exists():
        return f"the sid root {root} has no asterisk-core-sounds-en-wav"
    return None


@dataclass(frozen=True)
class Runner:
    """How programs of the sid root run from here: directly, or chrooted from the host."""

    root: Path  # "/" when we are inside it

    @property
    def chrooted(self) -> bool:
        """Whether programs run through unshare + chroot."""
        return self.root != Path("/")

    def command(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` (a path inside the root) as the same PID."""
        if not self.chrooted:
            return ["/usr/bin/env", "-i", *ENV, *argv]
        script = (
            'root=$1; shift; mount -t proc proc "$root/proc"; mount --bind /dev "$root/dev"; '
            'exec chroot "$root" /usr/bin/env -i "$@"'
        )
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-euc",
            script,
            "sh",
            str(self.root),
            *ENV,
            *argv,
        ]

    def outside(self, inner: str) -> Path:
        """The path here of a path inside the root (its symlinks resolved inside the root)."""
        if not self.chrooted:
            return Path(inner)
        parts = [p for p in inner.split("/") if p]
        done: list[str] = []
        for _ in range(64):  # symlink hops
            if not parts:
                return self.root.joinpath(*done)
            part = parts.pop(0)
            if part == "..":
                done = done[:-1]
                continue
            candidate = self.root.joinpath(*done, part)
            if not candidate.is_symlink():
                done.append(part)
                continue
            target = str(candidate.readlink())
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
        raise PbxError(f"too many symlinks under {inner}")

    def inside(self, path: Path) -> str:
        """The path inside the root of a path here."""
        if not self.chrooted:
            return str(path)
        return "/" + str(path.relative_to(self.root))


def find_runner() -> Runner | str:
    """The runner for this machine, or why real PBX tests cannot run here."""
    if shutil.which("asterisk") and shutil.which("baresip"):
        reason = _root_usable(Path("/"))
        return reason if reason else Runner(Path("/"))
    if os.geteuid() != 0:
        return "not root: the real Asterisk runs in the sid root through chroot (needs root)"
    for tool in ("unshare", "chroot"):
        if not shutil.which(tool):
            return f"{tool} is missing"
    if not SID_ROOT.is_dir():
        return f"no sid root at {SID_ROOT} (scripts/sidroot ensure builds it)"
    reason = _root_usable(SID_ROOT)
    return reason if reason else Runner(SID_ROOT)


def unavailable() -> str | None:
    """Why a real PBX cannot run on this machine, or None when it can."""
    found = find_runner()
    return found if isinstance(found, str) else None


# ------------------------------------------------------------------------ ports


def _free(kind: int, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_tcp_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_block(size: int, *, tcp_too: bool = False) -> int:
    """The first of ``size`` consecutive free UDP ports (even; TCP free too if asked)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - size) & ~1
        ports = range(base, base + size)
        if all(_free(socket.SOCK_DGRAM, p) for p in ports) and (
            not tcp_too or all(_free(socket.SOCK_STREAM, p) for p in ports)
        ):
            return base
    raise PbxError(f"no block of {size} free UDP ports found")


# ------------------------------------------------------------------------ processes


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _stop(processes: Sequence[_Process]) -> None:
    """SIGTERM them all, give them STOP_GRACE seconds together, then SIGKILL; reap."""
    for process in processes:
        if process.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        process.popen.wait()


# ------------------------------------------------------------------------ phones


@dataclass(frozen=True)
class Recording:
    """What a phone heard during its last call (8 kHz mono 16-bit)."""

    path: Path
    rate: int
    samples: array.array[int]

    @property
    def seconds(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.rate


def read_wav(path: Path) -> Recording:
    """A mono 16-bit WAV file as samples."""
    with wave.open(str(path)) as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path} is not mono 16-bit")
        samples = array.array("h")
        samples.frombytes(wav.readframes(wav.getnframes()))
        return Recording(path, wav.getframerate(), samples)


class Phone:
    """One baresip SIP phone registered on an endpoint, controlled over ctrl_tcp."""

    def __init__(self, pbx: RealPbx, number: str) -> None:
        """Describe the phone; :meth:`start` runs it."""
        self.pbx = pbx
        self.number = number
        self.endpoint = f"PJSIP/{number}"
        self.dir = pbx.dir / f"phone-{number}"
        self.sip_port = 0
        self.ctrl_port = 0
        self.process: _Process | None = None

    @property
    def recording_path(self) -> Path:
        """Where baresip writes what it hears (overwritten by each call)."""
        return self.dir / "rx.wav"

    def start(self) -> None:
        """Write the phone's configuration and start baresip (not waiting for registration)."""
        self.dir.mkdir(exist_ok=True)
        self.sip_port = free_port_block(2, tcp_too=True)
        self.ctrl_port = free_tcp_port()
        rtp = free_port_block(8)
        inner = self.pbx.runner.inside(self.dir)
        values = {
            "dir": inner,
            "sip_port": self.sip_port,
            "ctrl_port": self.ctrl_port,
            "rtp_start": rtp,
            "rtp_end": rtp + 7,
            "number": self.number,
            "password": self.pbx.sip_password(self.number),
            "pbx_port": self.pbx.sip_port,
        }
        _render("baresip.conf", self.dir / "config", values)
        _render("baresip.accounts", self.dir / "accounts", values)
        _write_silence(self.dir / "silence.wav", SILENCE_SECONDS)
        self.process = self.pbx.launch(
            f"baresip {self.number}", ["baresip", "-f", inner], self.dir / "baresip.log"
        )

    def stop(self) -> None:
        """Stop baresip (it unregisters when it can)."""
        if self.process is not None:
            _stop([self.process])
            self.process = None

    # -- control (async: tests run in an event loop) --------------------------------

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        """Run a baresip command (``/answermode``, ``/dnd``, ``/sndcode``...) and return its reply."""
        async with self._control() as (reader, writer):
            return await self._ask(reader, writer, command, params)

    @contextlib.asynccontextmanager
    async def _control(self) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
        try:
            yield reader, writer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _ask(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command: str,
        params: str,
    ) -> dict[str, Any]:
        token = f"t{time.monotonic_ns()}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        writer.write(b"%d:%s," % (len(body), body))
        await writer.drain()
        async with asyncio.timeout(5):
            while True:
                message = await _read_netstring(reader)
                if message.get("response") and message.get("token") == token:
                    if not message.get("ok"):
                        raise PbxError(f"baresip {self.number}: {command} failed: {message}")
                    return message

    async def press(self, key: str) -> None:
        """Send a DTMF key (RFC 4733) in the current call."""
        await self.command("sndcode", key)

    async def set_answer(self, mode: str) -> None:
        """``auto`` answers at once; ``manual`` lets it ring (no answer)."""
        await self.command("answermode", mode)

    async def set_dnd(self, on: bool) -> None:
        """Do not disturb: baresip answers 480, Asterisk reports cause 19 at once."""
        await self.command("dnd", "true" if on else "false")

    @contextlib.asynccontextmanager
    async def rejecting(self) -> AsyncIterator[None]:
        """While inside, decline every incoming call while it rings (486: cause 17).

        baresip 1.1.0 can only decline with 486 Busy Here; phones that send 603 Decline
        give cause 21 (rejected), which the fake shows.
        """
        await self.set_answer("manual")
        async with self._control() as (reader, writer):
            watcher = asyncio.create_task(self._decline(reader, writer))
            try:
                yield
            finally:
                watcher.cancel()
                # A phone that exited ends the watcher with EOF or a reset connection.
                with contextlib.suppress(asyncio.CancelledError, OSError, EOFError):
                    await watcher
        # baresip 1.1.0 sometimes exits right after declining ("auframe: init: unsupported
        # sample format"), once the 486 is out: reset() starts it again if so.
        await self.reset()

    async def _decline(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            message = await _read_netstring(reader)
            if message.get("event") and message.get("type") == "CALL_INCOMING":
                body = json.dumps({"command": "hangup", "params": "", "token": "decline"})
                writer.write(b"%d:%s," % (len(body), body.encode()))
                await writer.drain()

    @property
    def aor(self) -> str:
        """The phone's SIP address of record (as baresip names its user agent)."""
        return f"sip:{self.number}@127.0.0.1:{self.pbx.sip_port}"

    async def unregister(self) -> None:
        """Remove the phone's account: baresip unregisters, the endpoint goes offline."""
        await self.command("uadel", self.aor)
        await asyncio.to_thread(self.pbx.wait_registered, self.number, online=False)

    async def register(self) -> None:
        """Add the account again and wait until the endpoint is online."""
        line = (self.dir / "accounts").read_text().strip()
        await self.command("uanew", line)
        await asyncio.to_thread(self.pbx.wait_registered, self.number)

    async def reset(self) -> None:
        """Back to answering by itself, no DND, registered; running again if it died.

        baresip has been seen to exit between tests (its control port then refuses): it is
        started again, and what it logged last goes to stderr for the test report.
        """
        for attempt in range(2):
            if self.process is None or not self.process.alive():
                if self.process is not None:
                    tail = self.process.tail()
                    print(f"baresip {self.number} had exited:\n{tail}", file=sys.stderr)
                self.stop()
                self.start()
                await self._registered_again()
            try:
                if self.pbx.endpoint_state(self.number) != "online":
                    await self.register()
                await self.set_answer("auto")
                await self.set_dnd(False)
                return
            except (OSError, EOFError):  # it exited while being told (see rejecting): once more
                if attempt:
                    raise
                await asyncio.sleep(0.5)  # let it finish exiting
                if self.process is not None and self.process.alive():
                    raise

    async def _registered_again(self) -> None:
        """Wait until the restarted baresip registered (its SIP port in the contact) and listens.

        Asterisk keeps the dead phone's contact until it expires, so "online" alone says
        nothing here.
        """
        deadline = time.monotonic() + START_TIMEOUT
        while f"127.0.0.1:{self.sip_port}" not in await asyncio.to_thread(
            self.pbx.cli, f"pjsip show aor {self.number}"
        ):
            if self.process is None or not self.process.alive() or time.monotonic() > deadline:
                raise PbxError(f"baresip {self.number} did not register again")
            await asyncio.sleep(0.05)
        while True:  # and its control port listens (the same port may have been reused)
            try:
                async with self._control():
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise PbxError(f"baresip {self.number} did not open its control port") from None
                await asyncio.sleep(0.05)

    # -- what it heard --------------------------------------------------------------

    async def recording(self, *, since: float, seconds: float = 5.0) -> Recording:
        """The recording of a call that ended after ``since`` (time.time()), once complete.

        baresip writes the WAV header's sizes when the call ends; until then they are 0.
        """
        deadline = time.monotonic() + seconds
        while True:
            found = self._complete_recording(since)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise PbxError(f"phone {self.number} wrote no complete recording")
            await asyncio.sleep(0.05)

    def _complete_recording(self, since: float) -> Recording | None:
        path = self.recording_path
        try:
            stat = path.stat()
            if stat.st_mtime < since or stat.st_size <= 44:
                return None
            recording = read_wav(path)
        except (OSError, ValueError, EOFError, wave.Error):
            return None
        if len(recording.samples) * 2 + 44 != stat.st_size:
            return None  # header not final yet
        return recording


async def _read_netstring(reader: asyncio.StreamReader) -> dict[str, Any]:
    size = int((await reader.readuntil(b":"))[:-1])
    data = await reader.readexactly(size + 1)
    message: dict[str, Any] = json.loads(data[:-1])
    return message


# ------------------------------------------------------------------------ the PBX


def _render(template: str, target: Path, values: dict[str, Any]) -> None:
    text = string.Template((TEMPLATES / template).read_text()).substitute(values)
    target.write_text(text)


def _write_silence(path: Path, seconds: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 8000 * seconds)


_LIVE: set[RealPbx] = set()


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - only when a run is torn down badly
    for pbx in list(_LIVE):
        pbx.stop()


class RealPbx:
    """Asterisk plus baresip phones, started and stopped as a unit."""

    def __init__(
        self, phones: Sequence[str] = ("1000", "1001"), *, runner: Runner | None = None
    ) -> None:
        """Plan a PBX with phones registered on ``phones`` (a subset of NUMBERS)."""
        if runner is None:
            found = find_runner()
            if isinstance(found, str):
                raise PbxError(found)
            runner = found
        self.runner = runner
        self.app = APP
        self.ari_user = ARI_USER
        self.ari_reader = ARI_READER
        self.ari_password = ARI_PASSWORD
        self.http_port = 0
        self.sip_port = 0
        self.dir = Path()
        self.asterisk: _Process | None = None
        self.phones: dict[str, Phone] = {}
        self._wanted = tuple(phones)
        self.started_in: float | None = None

    def __enter__(self) -> Self:
        """Start (stopping whatever did start when something fails)."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop and clean up."""
        self.stop()

    @property
    def ari_url(self) -> str:
        """ARI's base URL (a client adds /ari)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def sounds(self) -> Path:
        """Asterisk's English sounds, as a path here."""
        return self.runner.outside(SOUNDS)

    def phone(self, number: str) -> Phone:
        """A running phone."""
        return self.phones[number]

    @staticmethod
    def sip_password(number: str) -> str:
        """The SIP password of an endpoint (throwaway, per run)."""
        return f"sip-{number}-secret"

    def launch(self, name: str, argv: Sequence[str], log: Path) -> _Process:
        """Start a program of the root in the background, its PID being the program's."""
        with log.open("wb") as out:
            popen = subprocess.Popen(
                self.runner.command(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return _Process(name, popen, log)

    def cli(self, command: str, *, timeout: float = 10.0) -> str:
        """Run an Asterisk CLI command (``asterisk -rx``) and return its output."""
        conf = self.runner.inside(self.dir / "etc" / "asterisk.conf")
        done = subprocess.run(
            self.runner.command(["asterisk", "-C", conf, "-rx", command]),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return done.stdout.decode(errors="replace")

    def start(self) -> None:
        """Write the configuration, start Asterisk and the phones, wait until all are ready."""
        started = time.monotonic()
        base = self.runner.outside("/tmp")
        # Short on purpose: see astcachedir in templates/asterisk.conf.
        self.dir = Path(tempfile.mkdtemp(prefix="vp-", dir=base))
        _LIVE.add(self)
        try:
            self._start_asterisk()
            for number in self._wanted:
                phone = Phone(self, number)
                self.phones[number] = phone
                phone.start()
            for number in self._wanted:
                self.wait_registered(number)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started

    def _start_asterisk(self) -> None:
        etc = self.dir / "etc"
        for sub in ("etc", "lib", "spool", "run", "log", "cache"):
            (self.dir / sub).mkdir()
        self.http_port = free_tcp_port()
        self.sip_port = free_port_block(2)
        rtp = free_port_block(20)
        endpoints = "".join(
            string.Template((TEMPLATES / "pjsip_endpoint.conf").read_text()).substitute(
                number=number, password=self.sip_password(number)
            )
            for number in NUMBERS
        )
        values = {
            "dir": self.runner.inside(self.dir),
            "moddir": MODULE_DIR,
            "system_name": "voice-prompt-test",
            "http_port": self.http_port,
            "sip_port": self.sip_port,
            "rtp_start": rtp,
            "rtp_end": rtp + 19,
            "ari_user": self.ari_user,
            "ari_reader": self.ari_reader,
            "ari_password": self.ari_password,
            "endpoints": endpoints,
        }
        for name in (
            "asterisk.conf",
            "modules.conf",
            "logger.conf",
            "http.conf",
            "ari.conf",
            "rtp.conf",
            "extensions.conf",
            "pjsip.conf",
        ):
            _render(name, etc / name, values)
        conf = self.runner.inside(etc / "asterisk.conf")
        self.asterisk = self.launch(
            "asterisk", ["asterisk", "-f", "-C", conf], self.dir / "asterisk.log"
        )
        # Ready: its control socket exists, then "core waitfullybooted" returns.
        control = self.dir / "run" / "asterisk.ctl"
        self._wait(control.exists, "Asterisk's control socket", self.asterisk)
        output = self.cli("core waitfullybooted", timeout=START_TIMEOUT)
        if "fully booted" not in output:
            raise self._failed(f"Asterisk did not boot: {output.strip()}", self.asterisk)
        self._wait(lambda: self.ari_get("asterisk/info") is not None, "ARI", self.asterisk)

    def _wait(self, ready: Any, what: str, process: _Process) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if not process.alive():
                raise self._failed(f"{process.name} exited while waiting for {what}", process)
            if time.monotonic() > deadline:
                raise self._failed(f"timed out waiting for {what}", process)
            time.sleep(0.02)

    def _failed(self, message: str, process: _Process) -> PbxError:
        return PbxError(f"{message}\n--- {process.log.name} ---\n{process.tail()}")

    def ari_get(self, path: str, user: str | None = None) -> Any:
        """GET an ARI resource synchronously (None when it fails): for readiness checks."""
        request = urllib.request.Request(
            f"{self.ari_url}/ari/{path}", headers=self.auth_header(user)
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return json.loads(response.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def auth_header(self, user: str | None = None) -> dict[str, str]:
        """HTTP Basic auth of an ARI user (default: the read-write one)."""
        login = f"{user or self.ari_user}:{self.ari_password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(login).decode()}

    def endpoint_state(self, number: str) -> str | None:
        """``online``/``offline`` of PJSIP/<number> as ARI reports it."""
        data = self.ari_get(f"endpoints/PJSIP/{number}")
        return data.get("state") if isinstance(data, dict) else None

    def wait_registered(self, number: str, *, online: bool = True) -> None:
        """Wait until the phone on ``number`` is registered (or gone, with online=False)."""
        phone = self.phones.get(number)
        process = phone.process if phone is not None else None
        want = "online" if online else "offline"
        deadline = time.monotonic() + START_TIMEOUT
        while self.endpoint_state(number) != want:
            if online and process is not None and not process.alive():
                raise self._failed(f"phone {number} exited before registering", process)
            if time.monotonic() > deadline:
                assert self.asterisk is not None
                raise self._failed(
                    f"PJSIP/{number} did not become {want}", process or self.asterisk
                )
            time.sleep(0.02)

    def hang_up_all(self) -> None:
        """Hang up every channel still up (a test that failed half-way may leave one)."""
        self.cli("channel request hangup all")

    def stop(self) -> None:
        """Stop the phones and Asterisk by PID and delete the run directory."""
        processes = [p.process for p in self.phones.values() if p.process is not None]
        if self.asterisk is not None:
            processes.append(self.asterisk)
        _stop(processes)
        for phone in self.phones.values():
            phone.process = None
        self.asterisk = None
        if self.dir != Path() and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        _LIVE.discard(self)

    def pids(self) -> list[int]:
        """PIDs of the running programs (for checks that nothing is left)."""
        found = [p.process.pid for p in self.phones.values() if p.process is not None]
        if self.asterisk is not None:
            found.append(self.asterisk.pid)
        return found


def processes_running(pids: Sequence[int]) -> list[int]:
    """Which of ``pids`` still exist (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def sound_path(pbx: RealPbx, name: str) -> Path:
    """A sound of asterisk-core-sounds-en-wav, as a path here."""
    return pbx.sounds / f"{name}.wav"
