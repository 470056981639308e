"""What training does when something goes wrong: stop signals, non-finite steps, out of memory.

Policies only; the trainer decides where to call them. Nothing here loses a checkpoint: a stop
request is served at the next step boundary with a save, and a bad step is skipped, not kept.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from nmt.errors import TrainingError


class GracefulStop:
    """SIGTERM or a first Ctrl-C asks for a stop at the next step boundary; a second Ctrl-C exits now.

    Use as a context manager around the training loop; the previous handlers come back on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: str = ""
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        for sig in self.SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner's worker)
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: leave at once
        self.requested = name
        print(f"\n{name} received: saving a checkpoint after the current step (Ctrl-C again to quit at once)", file=sys.stderr)


class BadStepGuard:
    """Counts consecutive skipped steps (non-finite loss, out of memory) and stops a hopeless run."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0
        self.total = 0

    def ok(self) -> None:
        self.in_a_row = 0

    def bad(self, what: str, advice: str) -> None:
        """Record a skipped step; raise TrainingError after `limit` of them in a row."""
        self.in_a_row += 1
        self.total += 1
        if self.limit and self.in_a_row >= self.limit:
            raise TrainingError(
                f"{self.in_a_row} steps in a row skipped ({what}); stopping with the last checkpoint intact. {advice}"
            )
