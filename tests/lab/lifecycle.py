"""Tearing labs down when the process that owns them ends: atexit, SIGTERM/SIGHUP, blocked signals.

SIGINT already raises KeyboardInterrupt; SIGTERM and SIGHUP are turned into a KeyboardInterrupt
subclass too, so ``with Lab() ...`` blocks, pytest finalizers and ``finally`` clauses run.
Only a SIGKILL skips them: ``lab.sweep()`` handles that case from the state files.
"""

import atexit
import contextlib
import signal
import threading
import weakref

_LIVE = weakref.WeakSet()
_INSTALLED = []
TEARDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGHUP arrives."""

    def __init__(self, signum):
        KeyboardInterrupt.__init__(self, 'received %s' % signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum, frame):  # pylint: disable=unused-argument
    raise Interrupted(signum)


def handle_signals(force=False):
    """Turn SIGTERM/SIGHUP into an exception; keeps handlers somebody else installed unless force.

    Returns the signals it handles now. A no-op outside the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return []
    handled = []
    for signum in (signal.SIGTERM, signal.SIGHUP):
        current = signal.getsignal(signum)
        if current is _raise_interrupted or force or current in (signal.SIG_DFL, None):
            signal.signal(signum, _raise_interrupted)
            handled.append(signum)
    return handled


def register(lab):
    """Remember a live lab so that it is torn down when the interpreter exits."""
    if not _INSTALLED:
        atexit.register(teardown_live)
        _INSTALLED.append(True)
    _LIVE.add(lab)


def unregister(lab):
    _LIVE.discard(lab)


def teardown_live():
    """Tear down every lab of this process that is neither torn down nor detached."""
    for lab in list(_LIVE):
        try:
            lab.teardown()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            print('nqrust lab: teardown of %s at exit failed: %s' % (lab.lab_id, exc))


@contextlib.contextmanager
def signals_blocked():
    """Defer SIGINT/SIGTERM/SIGHUP until the block ends, so a teardown is never cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, TEARDOWN_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
