"""A client that keeps writing to one hash slot through failovers, for the integration and end-to-end tests."""

import threading
import time
from collections import Counter

import redis


def redirect_target(error):
    """(host, port) of a MOVED or ASK reply, whichever way redis-py 4.3.4 words it ("MOVED 42 h:p" or "42 h:p")."""
    if isinstance(error, (redis.exceptions.MovedError, redis.exceptions.AskError)):
        return error.host, int(error.port)
    words = str(error).split()
    if len(words) >= 2 and words[-2].isdigit() and ":" in words[-1]:
        host, port = words[-1].rsplit(":", 1)
        if port.isdigit():
            return host, int(port)
    return None


def error_kind(error):
    """A short name for an error a write met: the reply's first word (CLUSTERDOWN, TRYAGAIN, READONLY, LOADING ...)
    for a server error, the exception's class for the others (ConnectionError, TimeoutError ...)."""
    if isinstance(error, redis.exceptions.AskError):
        return "ASK"
    if isinstance(error, redis.exceptions.MovedError):
        return "MOVED"
    if isinstance(error, redis.exceptions.ResponseError):
        word = str(error).split(" ", 1)[0]
        return word if word.isupper() else type(error).__name__
    return type(error).__name__


class Writer(threading.Thread):
    """SETs {tag}:i every 10 ms to the master of the tag's slot, following MOVED and asking the seeds for the owner
    again after a connection error; records every acknowledged write as (time, i), and every write that failed and
    was retried as (time, kind, message) in `errors` (a MOVED or ASK redirect too): none is retried silently, and
    `summary()` says what was met."""

    def __init__(self, seeds, connect, tag="t"):
        super().__init__(daemon=True)
        self.seeds = seeds      # [(host, port)]
        self.connect = connect  # (host, port) -> redis.Redis
        self.tag = tag
        self.acked = []
        self.errors = []
        self.stop = threading.Event()

    def owner(self):
        slot = redis.crc.key_slot(f"{{{self.tag}}}".encode())
        for host, port in self.seeds:
            try:
                for start, end, master, *_ in self.connect(host, port).execute_command("CLUSTER SLOTS"):
                    if start <= slot <= end:
                        owner = master[0].decode() if isinstance(master[0], bytes) else master[0]
                        return owner, int(master[1])
            except (redis.exceptions.RedisError, OSError):
                continue
        return self.seeds[0]

    def run(self):
        c = self.connect(*self.owner())
        i = 0
        while not self.stop.is_set():
            try:
                c.set(f"{{{self.tag}}}:{i}", i)
                self.acked.append((time.monotonic(), i))
                i += 1
            except redis.exceptions.ResponseError as e:
                target = redirect_target(e)
                self.errors.append((time.monotonic(), error_kind(e), str(e)))
                if target:
                    c = self.connect(*target)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                self.errors.append((time.monotonic(), error_kind(e), str(e)))
                time.sleep(0.05)
                c = self.connect(*self.owner())
            time.sleep(0.01)

    def error_counts(self):
        """{kind: how many writes failed with it and were retried}."""
        return Counter(kind for _, kind, _ in self.errors)

    def summary(self):
        """One line: the acknowledged writes and every error retried, e.g. "812 writes acknowledged; retried after:
        MOVED x1, ConnectionError x2 (first: Connection refused)"."""
        counts = self.error_counts()
        if not counts:
            return f"{len(self.acked)} writes acknowledged; no write failed"
        met = ", ".join(f"{kind} x{n}" for kind, n in counts.most_common())
        firsts = "; ".join(f"{kind}: {next(m for _, k, m in self.errors if k == kind)[:120]}" for kind in counts
                           if kind not in ("MOVED", "ASK"))
        return f"{len(self.acked)} writes acknowledged; retried after: {met}" + (f" (first {firsts})" if firsts else "")

    def gap(self):
        """The longest time between two acknowledged writes, in seconds."""
        times = [t for t, _ in self.acked]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    def lost(self, connect_owner):
        """Acknowledged writes that the current owner does not have."""
        c = connect_owner()
        return [i for _, i in self.acked if c.get(f"{{{self.tag}}}:{i}") is None]
