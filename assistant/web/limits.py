"""Counters behind the web app's limits: events per time window (questions per minute, failed sign-ins) and bytes
per day (uploads), per key (a user name, or an address without sign-in). Thread-safe; the number of keys kept is
bounded, the least recently used forgotten first."""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Callable

__all__ = ["DailyBytes", "WindowCounter", "folder_bytes"]

MAX_KEYS = 10_000


class WindowCounter:
    """At most ``limit`` events per key within ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = int(limit)
        self.window_s = float(window_s)
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque()
            while len(self._events) > MAX_KEYS:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        while events and events[0] <= now - self.window_s:
            events.popleft()
        return events

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` may have another event (0: now)."""
        if self.limit <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            events = self._recent(key, now)
            if len(events) < self.limit:
                return 0.0
            return max(0.0, events[0] + self.window_s - now)

    def add(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            self._recent(key, now).append(now)

    def try_add(self, key: str) -> float:
        """Record an event when the limit allows it (0.0), else the seconds to wait (nothing recorded)."""
        if self.limit <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            events = self._recent(key, now)
            if len(events) >= self.limit:
                return max(0.0, events[0] + self.window_s - now)
            events.append(now)
            return 0.0

    def clear(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)


class DailyBytes:
    """Bytes per key per day (UTC); ``limit`` 0: no limit."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.time) -> None:
        self.limit = int(limit)
        self._clock = clock
        self._used: OrderedDict[str, tuple[int, int]] = OrderedDict()  # key -> (day, bytes)
        self._lock = threading.Lock()

    def try_add(self, key: str, n: int) -> int | None:
        """Count ``n`` bytes for ``key`` when they fit in today's budget; else the bytes left today (nothing
        counted). None: counted."""
        with self._lock:
            day = int(self._clock() // 86400)
            used_day, used = self._used.get(key, (day, 0))
            if used_day != day:
                used = 0
            if self.limit > 0 and used + n > self.limit:
                return max(0, self.limit - used)
            self._used[key] = (day, used + n)
            self._used.move_to_end(key)
            while len(self._used) > MAX_KEYS:
                self._used.popitem(last=False)
            return None


def folder_bytes(folder: str | Path) -> int:
    """The size of the files under ``folder`` (0 when it does not exist)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
