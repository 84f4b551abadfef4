"""Stopping a run on SIGTERM or SIGINT without losing anything.

SageMaker stops a training job (and a spot interruption ends one) with SIGTERM and kills it 120 s later; a
person presses Ctrl-C (SIGINT). Either way a run finishes the step it is in, writes a final checkpoint,
flushes its CSV, prints one line and exits with 128 + the signal's number (143 or 130). A second signal
ends it at once: ``.coach_checkpoint`` is written last, so the last complete checkpoint stays usable.

rlframe's handlers must be the ones in force while it runs. SDL, which gymnasium's classic-control
renderers start on the first ``rgb_array`` frame, installs a C-level SIGTERM handler of its own that
swallows the signal (``measured-facts.md`` 5). ``SDL_NO_SIGNAL_HANDLERS`` keeps SDL from doing so (set
where environments are made); rlframe's handlers are installed again once environments are made
(:meth:`StopSignals.reassert`) and every 0.1 s while the loop polls, so no library that installs one keeps it.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: how often (seconds) :meth:`StopSignals.poll` re-installs the handlers (one re-install costs ~20 us)
REINSTALL_EVERY_SECONDS = 0.1


class RunStopped(Exception):
    """A run stopped by a signal after it finished its step and wrote what it had to.

    :param signum: the signal.
    :param message: the one line that says what was kept.
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal ended (143, 130)."""
        return 128 + self.signum


class StoppedAtOnce(KeyboardInterrupt):
    """A second SIGINT: the run ends where it is (its line is already printed)."""


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    """Turns SIGTERM and SIGINT into a stop request the loop reads between steps.

    Used as a context manager around a run: on entry it installs its handlers (from the main thread only;
    elsewhere it stays a flag nobody sets), on exit it puts the previous ones back. The first signal sets
    :attr:`signum`; a second one ends the run at once (:class:`StoppedAtOnce` for SIGINT, ``SystemExit(143)``
    for SIGTERM, after one line on stderr), whatever it was doing.

    :param kept: what that line says is kept when a run ends at once (a training run's default; a command that
        writes something else says what of it survives).
    """

    #: the instances entered and not yet exited, innermost last
    _entered: list["StopSignals"] = []

    def __init__(self, kept: str = "the last complete checkpoint is kept") -> None:
        self.kept = kept
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._installed_at = 0.0

    @classmethod
    def current(cls) -> "StopSignals":
        """The innermost stop request in force, or a new one no signal sets when none is.

        A graph manager built outside :meth:`run` (a user's launcher calling ``create_graph``, ``improve`` and
        ``close`` itself, as Coach's launchers allow) polls the one its launcher entered around that code.
        """
        return cls._entered[-1] if cls._entered else cls()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "StopSignals":
        self.signum = None
        self._entered.append(self)
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
            self._install()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._entered.remove(self)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def reassert(self) -> None:
        """Install the handlers again now (after making environments, whose libraries may install their own)."""
        if self._previous:
            self._install()

    def _install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        self._installed_at = time.monotonic()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            return
        # os.write: the main thread may be inside a print when the handler runs, and print is not reentrant.
        os.write(2, f"Second {signal_name(signum)}: stopping at once; {self.kept}.\n".encode())
        if signum == signal.SIGINT:
            raise StoppedAtOnce
        raise SystemExit(128 + signum)

    def poll(self) -> bool:
        """Whether a stop was requested; also re-installs the handlers if a library may have replaced them."""
        if self._previous and time.monotonic() - self._installed_at >= REINSTALL_EVERY_SECONDS:
            self._install()
        return self.signum is not None
