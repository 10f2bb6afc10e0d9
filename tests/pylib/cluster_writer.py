"""A client that keeps writing to one hash slot through failovers, for the integration and end-to-end tests."""

import threading
import time

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


class Writer(threading.Thread):
    """SETs {tag}:i every 10 ms to the master of the tag's slot, following MOVED and asking the seeds for the owner
    again after a connection error; records every acknowledged write as (time, i)."""

    def __init__(self, seeds, connect, tag="t"):
        super().__init__(daemon=True)
        self.seeds = seeds      # [(host, port)]
        self.connect = connect  # (host, port) -> redis.Redis
        self.tag = tag
        self.acked = []
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
                if target:
                    c = self.connect(*target)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                time.sleep(0.05)
                c = self.connect(*self.owner())
            time.sleep(0.01)

    def gap(self):
        """The longest time between two acknowledged writes, in seconds."""
        times = [t for t, _ in self.acked]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    def lost(self, connect_owner):
        """Acknowledged writes that the current owner does not have."""
        c = connect_owner()
        return [i for _, i in self.acked if c.get(f"{{{self.tag}}}:{i}") is None]
