"""Many writers, one results folder, no server: short locks and run claims.

Two mechanisms, after git's lock files and Snakemake's in-progress markers:

- `folder_lock`: an exclusive lock (flock, released by the kernel when its holder dies, even on
  SIGKILL) held for the few milliseconds of an append or a claim decision. Its holder writes
  who it is next to it, so a process that has to wait says for whom (host, pid, since when), and
  gives up with a clear error after `lock_timeout_s()`, never waiting forever behind a process
  that was stopped with Ctrl-Z.
- `take`: a *claim* on one run, a file `RESULTS/claims/TASK-KEY.claim` created with O_EXCL and
  naming its owner (host, boot, pid, process start time). Only the owner trains the run. The
  owner's heartbeat thread touches the file every `heartbeat_s()`; a claim is stale, and may be
  taken over, when its owner is a dead process on this machine, or when its heartbeat is older
  than `claim_timeout_s()` (another node, or a stopped process). An owner whose claim was taken
  over learns it at its next `check()` (before every checkpoint and before its row) and stops.

Heartbeat ages are measured on the filesystem's clock (the mtime of a file touched just now in
the same folder), so nodes whose clocks disagree still agree on staleness.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from filelock import FileLock, Timeout

from rnnbench.store import layout

log = logging.getLogger(__name__)


def _env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"${name} must be a number of seconds; got {value!r}") from None


def heartbeat_s() -> float:
    return _env_seconds("RNNBENCH_HEARTBEAT_S", 10.0)


def claim_timeout_s() -> float:
    """A claim whose heartbeat is older than this belongs to a process that is gone or stopped."""
    return _env_seconds("RNNBENCH_CLAIM_TIMEOUT_S", 120.0)


def lock_timeout_s() -> float:
    return _env_seconds("RNNBENCH_LOCK_TIMEOUT_S", 300.0)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _started(pid: int) -> float | None:
    """When process `pid` started; None where it does not run: gone, or ended and not yet reaped
    by its parent (a zombie, which holds nothing however long its parent takes to wait for it)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return round(process.create_time(), 2)
    except (psutil.Error, OSError, ValueError):  # (ValueError: a pid below 0, a damaged claim)
        return None


def whoami() -> dict[str, Any]:
    """This process, as a claim or a lock names its owner."""
    return {
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "pid": os.getpid(),
        "started": _started(os.getpid()),
    }


# How far two readings of one process's start time may differ. psutil derives it from the boot time
# the kernel reports (/proc/stat btime), which is the wall clock minus the uptime, read once per
# process: when the clock is adjusted (NTP, a VM's clock sync) a process started later reads a boot
# time a second off, and so the same process's start a second off (seen here: btime moved from
# ...699 to ...700 within a session, and every child then took its live parent for gone). Another
# process given the same pid within this slack is not a real risk.
START_SLACK_S = 2.0


def alive(owner: dict[str, Any]) -> bool | None:
    """Whether the owning process still runs: True/False on this machine (same boot), None for
    another machine, where only the heartbeat can tell."""
    if owner.get("host") != socket.gethostname() or owner.get("boot") != _boot_id():
        return None
    pid = owner.get("pid", -1)
    if not isinstance(pid, int):  # (a damaged claim: only its heartbeat can tell)
        return None
    started, recorded = _started(pid), owner.get("started")
    if started is None or not isinstance(recorded, (int, float)):
        return started == recorded
    return abs(started - recorded) <= START_SLACK_S


def describe(owner: dict[str, Any]) -> str:
    since = owner.get("since")
    when = (
        f" since {datetime.datetime.fromtimestamp(since).isoformat(timespec='seconds')}"
        if since
        else ""
    )
    return f"process {owner.get('pid', '?')} on {owner.get('host', '?')}{when}"


def unique_suffix() -> str:
    """A name part no other writer uses: host, pid and a random token."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def write_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Write `path` through a temporary file of this writer only, then rename: readers see the
    old content or the new, never a mix, and two writers never share a temporary file."""
    temporary = path.with_name(f"{path.name}.{unique_suffix()}.tmp")
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


class LockTimeout(TimeoutError):
    """A lock was held by another process for longer than lock_timeout_s()."""


@contextlib.contextmanager
def folder_lock(
    path: Path, what: str, timeout_s: float | None = None, quiet: bool = False
) -> Iterator[None]:
    """Hold the exclusive lock `path` (for `what`, e.g. "appending to results/pmnist.csv").

    Waits at most `timeout_s` (default lock_timeout_s()), saying once who holds the lock (at
    DEBUG level if `quiet`); then raises LockTimeout naming the holder."""
    timeout_s = lock_timeout_s() if timeout_s is None else timeout_s
    lock = FileLock(str(path), thread_local=False)
    owner_file = path.with_name(path.name + ".owner")
    start, told = time.monotonic(), False
    while True:
        try:
            lock.acquire(timeout=min(1.0, max(timeout_s, 0.01)))
            break
        except Timeout:
            waited = time.monotonic() - start
            holder = _read_json(owner_file)
            who = describe(holder) if holder else "another process"
            if waited >= timeout_s:
                raise LockTimeout(
                    f"gave up after {waited:.0f} s waiting for the lock {path} ({what}), held by "
                    f"{who}; if that process is stopped (Ctrl-Z), resume or end it, then run again"
                ) from None
            if not told:
                log.log(
                    logging.DEBUG if quiet else logging.INFO,
                    f"waiting for the lock {path} ({what}): held by {who}; "
                    f"giving up after {timeout_s:.0f} s",
                )
                told = True
    try:
        with contextlib.suppress(OSError):
            write_atomically(
                owner_file, json.dumps({**whoami(), "since": time.time()}).encode(), durable=False
            )
        yield
    finally:
        lock.release()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


class ClaimLost(RuntimeError):
    """This process's claim on a run was taken over (it was stopped or cut off for too long)."""


@dataclass
class Held:
    """A claim that another, live process holds."""

    path: Path
    owner: dict[str, Any]

    def describe(self) -> str:
        return describe(self.owner)


class Owned:
    """A claim as a process that trains under it sees it (the claim's owner, or a child process
    it trains the run in): it can check that the claim is still the owner's, nothing more."""

    def __init__(self, path: Path, owner: dict[str, Any]):
        self.path, self.owner = path, owner
        self.lost = False  # (set by the heartbeat thread of a Claim)

    def _mine(self) -> bool:
        return _read_json(self.path).get("token") == self.owner["token"]

    def check(self) -> None:
        """Raise ClaimLost if another process took this run over."""
        if self.lost or not self._mine():
            self.lost = True
            holder = _read_json(self.path)
            raise ClaimLost(
                f"{self.path.name} was taken over by "
                f"{describe(holder) if holder else 'another process'} while this process was "
                "stopped or cut off; that process finishes the run"
            )


class Claim(Owned):
    """This process's claim on one run; see the module docstring. Release it when done."""

    def __init__(self, path: Path, owner: dict[str, Any]):
        super().__init__(path, owner)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat {path.name}", daemon=True
        )
        self._thread.start()

    def observer(self) -> Owned:
        """What a child process training the run needs to check the claim (picklable)."""
        return Owned(self.path, self.owner)

    def _beat(self) -> None:
        while not self._stop.wait(heartbeat_s()):
            if not self._mine():
                self.lost = True
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        try:
            with folder_lock(_lock_path(self.path.parent), "releasing a claim", quiet=True):
                if self._mine():
                    self.path.unlink(missing_ok=True)
        except (
            LockTimeout
        ):  # (the claim is ours: nobody takes over a claim whose heartbeat is fresh)
            if self._mine():
                self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def die_with(parent: dict[str, Any]) -> None:
    """Stop this process when `parent` (whoami() of the process that started it) is gone, even
    killed with SIGKILL: a KeyboardInterrupt in the main thread releases what this process holds
    and keeps the run's checkpoint, so that running the sweep again resumes the run instead of
    racing a left-over worker."""
    import _thread

    def watch() -> None:
        while alive(parent) is not False:
            time.sleep(0.5)
        print(
            f"process {parent['pid']}, which started this one, is gone: stopping (the run's "
            "checkpoint is kept)",
            flush=True,
        )
        _thread.interrupt_main()
        time.sleep(60)  # (stuck in a long native call: end the process)
        os._exit(1)

    threading.Thread(target=watch, name="parent watch", daemon=True).start()


def _lock_path(claims: Path) -> Path:
    return claims / ".claims.lock"


def _filesystem_now(folder: Path) -> float:
    """The filesystem's current time: the mtime of a file of ours touched just now."""
    probe = folder / f".clock.{socket.gethostname()}.{os.getpid()}"
    probe.touch()
    try:
        return probe.stat().st_mtime
    finally:
        probe.unlink(missing_ok=True)


def staleness(owner: dict[str, Any], mtime: float, now: float) -> str:
    """Why a claim is stale ('' if it is not)."""
    running = alive(owner)
    if running is False:
        return f"its {describe(owner)} has ended"
    age = now - mtime
    if age > claim_timeout_s():
        return (
            f"its heartbeat is {age:.0f} s old (limit {claim_timeout_s():.0f} s): "
            f"{describe(owner)} is gone or stopped"
        )
    return ""


def take(results: Path, name: str) -> Claim | Held:
    """Claim the run `name` (TASK-KEY) in `results`: a Claim, or Held if a live process holds it.
    A stale claim is taken over, with a message saying whose and why."""
    path = layout.claim(results, name)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(_lock_path(folder), f"claiming {name}"):
        if path.exists():
            owner = _read_json(path)
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                mtime = None
            if mtime is not None:
                why = (
                    staleness(owner, mtime, _filesystem_now(folder))
                    if owner
                    else "it is unreadable"
                )
                if not why:
                    return Held(path, owner)
                log.info(f"taking over {name}: {why}")
                path.unlink(missing_ok=True)
        owner = {**whoami(), "since": time.time(), "token": uuid.uuid4().hex}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, json.dumps(owner).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    return Claim(path, owner)
