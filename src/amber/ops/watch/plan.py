"""When a watcher takes its next snapshot, and whether it walks everything. Pure: times in, times out.

* A change starts the clock: its snapshot starts ``interval`` seconds later at
  the latest, with every change made meanwhile (one snapshot for a burst).
* A full walk is owed at start, after lost events (queue overflow), after a run
  that did not succeed (retried after ``interval``), and every ``rescan`` seconds.
* Without inotify (``periodic``), every snapshot is a full walk, one per ``interval``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WatchPlan:
    interval: float
    rescan: float
    periodic: bool = False
    full_due: float | None = 0.0  # a full walk is owed from this time on; None: not owed
    pending_since: float | None = None  # the first change not yet in a snapshot
    last_full: float = 0.0
    carried: float | None = None  # the first change of a run that failed: still not saved

    def changed(self, when: float) -> None:
        if self.pending_since is None or when < self.pending_since:
            self.pending_since = when

    def lost_events(self, now: float) -> None:
        """Events were dropped (or watching stopped): walk everything at once."""
        self.full_due = now if self.full_due is None else min(self.full_due, now)

    def next_run(self) -> float:
        """The time the next snapshot is due."""
        times = [self.last_full + self.rescan]
        if self.full_due is not None:
            times.append(self.full_due)
        if self.pending_since is not None:
            times.append(self.pending_since + self.interval)
        return min(times)

    def full_at(self, now: float) -> bool:
        """A run starting at ``now`` walks everything (else only the marked paths)."""
        owed = self.full_due is not None and self.full_due <= now
        return self.periodic or owed or self.last_full + self.rescan <= now

    def started(self, now: float, full: bool) -> float | None:
        """A run starts with the marks so far; returns the first change it covers (None: no change)."""
        known = [t for t in (self.pending_since, self.carried) if t is not None]
        first = min(known) if known else None
        self.pending_since = self.carried = None
        if full:
            self.last_full = now
            self.full_due = now + self.interval if self.periodic else None
        return first

    def finished(self, ok: bool, now: float, first: float | None) -> None:
        """A run that did not succeed is retried as a full walk after ``interval``."""
        if ok:
            return
        self.carried = first  # for the RPO of the run that does save them
        retry = now + self.interval
        self.full_due = retry if self.full_due is None else min(self.full_due, retry)
