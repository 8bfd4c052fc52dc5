"""The process using the data directory, if any: found through the lock every server,
`migrate` and `restore` hold (and name themselves in), and its open-file limit read from
/proc, since the service's limit (LimitNOFILE) is not the limit of a shell."""

from __future__ import annotations

import fcntl
import os
import re
import resource
from pathlib import Path

from telentir_box.datadir import LOCK_FILE
from telentir_box.doctor.report import NOTE, Finding

_PID = re.compile(r"\(pid (\d+)\)")


def find_holder(data_dir: Path) -> str | None:
    """Who holds the data directory, as they wrote themselves into the lock file (e.g.
    "telentir-box serve (pid 42)"); None when nobody does. Tested with a shared lock
    taken and dropped at once, on a descriptor opened read-only: nothing is written."""
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_holder(data_dir: Path) -> tuple[Finding, int | None]:
    """A note naming who uses the data directory, and their pid if known."""
    try:
        holder = find_holder(data_dir)
    except OSError as exc:
        unknown = f"cannot tell whether a server is running: {data_dir / LOCK_FILE}: {exc.strerror}"
        return Finding("server", NOTE, unknown), None
    if holder is None:
        return Finding(
            "server", NOTE, "nothing is using the data directory (the server is not running)"
        ), None
    match = _PID.search(holder)
    return Finding("server", NOTE, f"{holder} is using the data directory"), int(match[1]) if match else None


def process_file_limits(pid: int) -> tuple[int, int] | None:
    """(soft, hard) RLIMIT_NOFILE of another process; None where /proc does not tell."""
    try:
        text = Path(f"/proc/{pid}/limits").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return _limit(soft), _limit(hard)
    return None


def _limit(value: str) -> int:
    return resource.RLIM_INFINITY if value == "unlimited" else int(value)
