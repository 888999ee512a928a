"""The progress line of ``idnode import``: lines done, rate and time left.

The total number of lines is not counted up front (1亿 lines are tens of gigabytes);
it is estimated from the bytes read so far, and so is the time left, from the bytes
still to send at the rate bytes have been acknowledged in this run.

>>> Progress(total_bytes=1000, start_bytes=0).line(lines=250, done_bytes=250, seconds=5)
'  250/~1,000 lines  25%  50/s  ETA 15s'
>>> eta(3725)
'1h02m'
"""

from __future__ import annotations

from dataclasses import dataclass


def eta(seconds: float) -> str:
    """A duration, short: ``42s``, ``3m05s``, ``1h02m``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(frozen=True, slots=True)
class Progress:
    """Progress over a file of ``total_bytes``, this run having started at ``start_bytes``
    (a resumed import's rate counts only what this run sent)."""

    total_bytes: int
    start_bytes: int
    start_lines: int = 0

    def line(self, *, lines: int, done_bytes: int, seconds: float) -> str:
        """``lines`` done in all (this run and before), up to byte ``done_bytes``."""
        share = done_bytes / self.total_bytes if self.total_bytes else 1.0
        total = round(lines / share) if share > 0 else 0
        rate = (lines - self.start_lines) / seconds if seconds > 0 else 0.0
        sent = done_bytes - self.start_bytes
        left = (self.total_bytes - done_bytes) * seconds / sent if sent > 0 else None
        return (
            f"  {lines:,}/~{total:,} lines {share:>4.0%}  {rate:,.0f}/s"
            f"  ETA {eta(left) if left is not None else '?'}"
        )


def summary(*, imported: int, rejected: int, seconds: float, sent: int) -> str:
    """The last line: counts over the whole import, rate over this run's ``sent`` lines.

    >>> summary(imported=9, rejected=1, seconds=2.0, sent=10)
    'imported 9, rejected 1 in 2.0 s (5/s this run)'
    """
    rate = sent / seconds if seconds > 0 else 0.0
    return (
        f"imported {imported:,}, rejected {rejected:,} in {seconds:.1f} s ({rate:,.0f}/s this run)"
    )
