"""Failed sign-ins per client: at most FAILURES_PER_WINDOW in a rolling window, per process."""

import threading
import time
from collections import deque

FAILURES_PER_WINDOW = 5
WINDOW_SECONDS = 60


class FailedSignIns:
    """Count each client's recent failed sign-ins in this process."""

    def __init__(self, limit=FAILURES_PER_WINDOW, window=WINDOW_SECONDS, clock=time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._failures = {}
        self._lock = threading.Lock()

    def wait_seconds(self, client):
        """Return how long `client` must wait before its next attempt (0: it may try now)."""
        with self._lock:
            recent = self._recent(client, deque())
            if len(recent) < self.limit:
                return 0
            return max(1, int(recent[0] + self.window - self.clock()) + 1)

    def record_failure(self, client):
        """Count one failed sign-in of `client`."""
        with self._lock:
            now = self.clock()
            # Forget clients whose failures have all aged out, so the table cannot grow without end.
            horizon = now - self.window
            for stale in [c for c, times in self._failures.items() if not times or times[-1] <= horizon]:
                del self._failures[stale]
            self._failures[client] = self._recent(client, deque())
            self._failures[client].append(now)

    def _recent(self, client, default):
        now = self.clock()
        recent = self._failures.get(client, default)
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent
