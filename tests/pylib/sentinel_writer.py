"""Clients that keep writing to the primary the Sentinels name, through failovers, for the integration and
end-to-end tests of replication with Sentinel."""

import threading
import time

import redis
from redis.sentinel import Sentinel

SET = "mymaster"


class Writer(threading.Thread):
    """SET <prefix>:<n> every 10 ms through the Sentinels with redis-py's Sentinel client (which asks SENTINEL
    MASTERS); records every acknowledged write as (n, time) and every failed one as (n, time, error)."""

    prefix = "w"

    def __init__(self, sentinels, password, sentinel_password=None, master_set=SET, timeout=0.5):
        super().__init__(daemon=True)
        self.sentinels = sentinels  # [(host, port)]
        self.password = password
        self.sentinel_password = sentinel_password  # None: the nodes' password
        self.master_set = master_set
        self.timeout = timeout
        self.acked = []
        self.errors = []
        self.halt = threading.Event()

    def use_password(self, password):
        """From the next write on, the nodes' (and, without one of their own, the Sentinels') new password."""
        self.password = password

    def master(self, password, timeout=None):
        timeout = timeout or self.timeout
        s = Sentinel(self.sentinels,
                     sentinel_kwargs={"password": self.sentinel_password or password, "socket_timeout": timeout,
                                      "socket_connect_timeout": timeout},
                     socket_timeout=timeout, socket_connect_timeout=timeout)
        return s.master_for(self.master_set, password=password, socket_timeout=timeout,
                            socket_connect_timeout=timeout)

    def run(self):
        current, m, n = None, None, 0
        while not self.halt.is_set():
            if current != self.password:
                current, m = self.password, self.master(self.password)
            n += 1
            start = time.monotonic()
            try:
                m.set(f"{self.prefix}:{n}", n)
                self.acked.append((n, time.monotonic()))
            except (redis.exceptions.RedisError, OSError) as e:
                self.errors.append((n, time.monotonic(), repr(e)))
            time.sleep(max(0.0, start + 0.01 - time.monotonic()))

    def stop(self):
        self.halt.set()
        self.join(10)

    def max_gap(self):
        """The longest time between two acknowledged writes, in seconds."""
        times = [t for _, t in self.acked]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    def timeline(self):
        """The longest gap and the errors in it, for a failure message."""
        times = [t for _, t in self.acked]
        if len(times) < 2:
            return "no writes"
        i = max(range(1, len(times)), key=lambda k: times[k] - times[k - 1])
        start, end = times[i - 1], times[i]
        errors = [f"  +{(t - start) * 1000:.0f} ms {e}" for _, t, e in self.errors if start <= t <= end]
        return f"the gap: {(end - start) * 1000:.0f} ms, errors in it:\n" + "\n".join(errors[:30])

    def acks_after(self, t):
        return sum(1 for _, at in self.acked if at > t)

    def assert_none_lost(self):
        """Every acknowledged write is on the primary the Sentinels name now."""
        m = self.master(self.password, timeout=3)
        keys = [f"{self.prefix}:{n}" for n, _ in self.acked]
        missing = []
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            missing += [k for k, v in zip(chunk, m.mget(chunk)) if v is None]
        assert not missing, f"{len(missing)} of {len(keys)} acknowledged writes lost: {missing[:10]}"


class AddrWriter(Writer):
    """A Writer that finds the primary as ioredis and Jedis do: SENTINEL GET-MASTER-ADDR-BY-NAME, first Sentinel
    that answers (redis-py asks SENTINEL MASTERS, whose answer changes later on the Sentinel running a failover)."""

    prefix = "a"

    def resolve(self):
        for host, port in self.sentinels:
            try:
                s = redis.Redis(host=host, port=port, password=self.sentinel_password or self.password,
                                socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
                addr = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_set)
            except (redis.exceptions.RedisError, OSError):
                continue
            if addr:
                return redis.Redis(host=addr[0].decode(), port=int(addr[1]), password=self.password,
                                   socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
        raise redis.exceptions.ConnectionError("no Sentinel answered")

    def run(self):
        m, n = None, 0
        while not self.halt.is_set():
            n += 1
            start = time.monotonic()
            try:
                m = m or self.resolve()
                m.set(f"{self.prefix}:{n}", n)
                self.acked.append((n, time.monotonic()))
            except (redis.exceptions.RedisError, OSError) as e:
                self.errors.append((n, time.monotonic(), repr(e)))
                m = None
            time.sleep(max(0.0, start + 0.01 - time.monotonic()))


def write_across(make_writers, event, settle=1.0, timeout=60):
    """Starts the writers, does event() once they write, waits until each has 20 writes acknowledged `settle`
    seconds after it began, stops them and returns them."""
    writers = make_writers()
    for w in writers:
        w.start()

    def wait(predicate, what):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                for w in writers:
                    w.stop()
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n"
                                     + "\n".join(w.timeline() for w in writers))
            time.sleep(0.05)

    wait(lambda: all(len(w.acked) > 20 for w in writers), "the writers to write")
    t = time.monotonic()
    event()
    wait(lambda: all(w.acks_after(t + settle) > 20 for w in writers), "writes to be acknowledged again")
    for w in writers:
        w.stop()
    return writers
