"""The one progress bar of the command line and the convert pipeline: tqdm (rate and ETA)."""

from __future__ import annotations

import sys


def _bar_class():
    from tqdm import tqdm

    class _Bar(tqdm):
        # No monitor thread: the convert pipeline forks worker processes only while the
        # process runs a single thread.
        monitor_interval = 0

    return _Bar


class Progress:
    """A tqdm bar on ``stream`` (stderr), or nothing when ``enabled`` is false."""

    def __init__(self, total: int, enabled: bool, desc: str, *, stream=None, initial: int = 0,
                 unit: str = "mask") -> None:
        self.enabled = bool(enabled)
        self.stream = sys.stderr if stream is None else stream
        self.bar = None
        if self.enabled:
            self.bar = _bar_class()(total=total, initial=initial, file=self.stream, desc=desc, unit=unit,
                            dynamic_ncols=True, mininterval=0.2)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def step(self) -> None:
        self.update(1)

    def write(self, message: str) -> None:
        """A message line that does not tear the bar."""
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
