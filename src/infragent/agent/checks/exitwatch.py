"""Learning of a watched process's exit the moment it happens, from a Linux pidfd, not at the next poll.

Why: a ``process`` check polled every ``interval_s`` learns of a crash up to one interval late, and
then waits ``failures_before_down`` more polls. Monit, checking every second, heals a SIGKILLed
service in 0.42-1.08 s; most of that is waiting for its next cycle. The kernel knows at once: a
pidfd (``pidfd_open(2)``, Linux >= 5.3) becomes readable when its process exits, whoever its
parent is, so one thread blocked in ``poll`` on every watched pidfd hears every exit within
microseconds, and costs nothing while it waits.

What it is not: a source of truth about health. It only says "pid P exited"; the runner then runs
the check's probe at once, and the probe decides (the pidfile may already name a fresh process).

Where ``os.pidfd_open`` is missing (not Linux, Linux < 5.3, Python < 3.9) or refused (seccomp),
``available()`` is false and the runner keeps polling as before.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import threading
from collections.abc import Callable
from typing import Literal

logger = logging.getLogger(__name__)

#: Called on the watch's thread with (check name, pid) when that pid has exited; must be quick.
OnExit = Callable[[str, int], None]
#: ``watching``: an exit will be reported; ``gone``: the pid had already exited; ``unavailable``:
#: no pidfd here, poll instead.
WatchOutcome = Literal["watching", "gone", "unavailable"]


def available() -> bool:
    """True when this host can give a pidfd (tried on our own pid once per call)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return False
    try:
        fd = pidfd_open(os.getpid())
    except OSError:
        return False
    os.close(fd)
    return True


class ExitWatch:
    """One thread in ``poll`` on the pidfds of every watched process, keyed by check name.

    ``watch(name, pid)`` replaces what ``name`` watched before. An exit is reported once, then
    the name is no longer watched until ``watch`` is called again (the runner does, after a probe
    finds the process up). The thread starts with the first watch and ends with ``close``.
    """

    def __init__(self, on_exit: OnExit) -> None:
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._watched: dict[str, tuple[int, int]] = {}  # name -> (pid, pidfd)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closed = False
        self._unavailable = False
        self._thread: threading.Thread | None = None

    def watching(self, name: str) -> int | None:
        """The pid watched for ``name``, or None."""
        with self._lock:
            entry = self._watched.get(name)
        return None if entry is None else entry[0]

    def watch(self, name: str, pid: int) -> WatchOutcome:
        """Watch ``pid`` for ``name``; ``gone`` when it has already exited (the caller re-probes)."""
        with self._lock:
            if self._unavailable:
                return "unavailable"
            current = self._watched.get(name)
            if current is not None and current[0] == pid:
                return "watching"
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return "gone"
        except OSError as exc:  # ENOSYS (old kernel), EPERM (seccomp), EMFILE: fall back to polling
            if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EACCES):
                self._unavailable = True
                logger.info("exit watch unavailable (%s); process checks poll", exc)
            else:
                logger.warning("cannot watch pid %d for check %s: %s", pid, name, exc)
            return "unavailable"
        os.set_inheritable(fd, False)
        with self._lock:
            if self._closed:
                os.close(fd)
                return "unavailable"
            previous = self._watched.pop(name, None)
            self._watched[name] = (pid, fd)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="infragent-exit-watch", daemon=True)
                self._thread.start()
        if previous is not None:
            os.close(previous[1])
        self._wake()
        return "watching"

    def unwatch(self, name: str) -> None:
        with self._lock:
            entry = self._watched.pop(name, None)
        if entry is not None:
            os.close(entry[1])
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a wake is already pending: one is enough
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                by_fd = {fd: (name, pid) for name, (pid, fd) in self._watched.items()}
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            for fd in by_fd:
                poller.register(fd, select.POLLIN)
            try:
                ready = poller.poll()
            except InterruptedError:  # pragma: no cover - Python retries EINTR itself
                continue
            exited: list[tuple[str, int]] = []
            for fd, _events in ready:
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                name, pid = by_fd[fd]
                with self._lock:
                    if self._watched.get(name) != (pid, fd):
                        continue  # replaced or unwatched meanwhile: its fd is closed already
                    del self._watched[name]
                os.close(fd)
                exited.append((name, pid))
            for name, pid in exited:
                try:
                    self._on_exit(name, pid)
                except Exception:  # callback boundary: one failing report must not end the watch
                    logger.exception("exit watch callback failed for check %s", name)

    def close(self) -> None:
        """Stop the thread and close every pidfd."""
        with self._lock:
            self._closed = True
            thread = self._thread
            entries = list(self._watched.values())
            self._watched.clear()
        self._wake()
        if thread is not None:
            thread.join()
        for _pid, fd in entries:
            os.close(fd)
        os.close(self._wake_r)
        os.close(self._wake_w)
