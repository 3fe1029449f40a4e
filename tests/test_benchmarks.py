"""The benchmark scripts still run and check what they measure (their figures are not tested)."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parent.parent


def test_waiting_calls_benchmark_runs_and_every_waiter_gets_its_outcome() -> None:
    """A small run on a plain loop: exit 0, the table, no waiter left without its outcome."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "waiting_calls.py"),
            "--waiters",
            "40",
            "--idle-seconds",
            "0.2",
            "--plain-only",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in done.stdout.splitlines()
        if line.startswith("| ")
    }
    (missed,) = (value for name, value in rows.items() if name.startswith("waiters without"))
    assert missed == "0"
    assert (
        rows["loop wake-ups (selector calls) while idle, 40 waiting"]
        == rows["loop wake-ups (selector calls) while idle, 0 waiting"]
    )
    assert "no polling" in done.stdout
