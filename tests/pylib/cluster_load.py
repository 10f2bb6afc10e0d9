"""The redis-py cluster client load of the reshape tests (tests/integration/test_reshape.py and the `make scale` test
of tests/e2e/test_tls.py): one RedisCluster writes new keys and reads back preloaded ones while the cluster is
reshaped under it.

Debian's python3-redis 4.3.4 follows an ASK to a node it has not loaded yet with get_node() -> None and dies in its
own log line (AttributeError 'server_type', its bug; trixie's 6.x dies the same way on the None node's
'redis_connection'): the request never reached a server. Each such request is counted apart (`client_bug`), the
client's topology loaded again, and the request sent again. After a connection error 4.3.4 never recovers (its bug,
fixed in 4.4.0): with rebuild=True the client is built again (`rebuilt`), the error still counted as a failure.
"""

import random
import threading
import time

import redis

CLIENT_BUG = ("server_type", "redis_connection")  # redis-py's own AttributeError on a node it has not loaded


def stamp():
    """When a failure happened, as docker logs --timestamps and the kvinit log lines show it (UTC)."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}"


class ClusterLoad(threading.Thread):
    """SET load:<i> = w<i>, then GET of a preloaded k:<n> (which must be v<n>, n < keys), one after the other, as
    fast as it goes, until finish(). Every request that raises (after the client's own MOVED/ASK handling) or reads
    a wrong value is a failure: (when, what, key, detail) in `failures`. `written` holds every key written, `requests`
    counts the requests that succeeded. connect() makes the RedisCluster (at the start, and again after a connection
    error with rebuild=True)."""

    def __init__(self, connect, keys, rebuild=False):
        super().__init__(daemon=True)
        self.connect, self.keys, self.rebuild = connect, keys, rebuild
        self.rc = connect()
        self.written = {}
        self.failures = []
        self.client_bug = 0
        self.rebuilt = 0
        self.requests = 0
        self.longest = (0.0, None)  # the longest request that succeeded: (seconds, when)
        self.stop = threading.Event()

    def request(self, fn, *args):
        t0 = time.monotonic()
        value = self._request(fn, *args)
        took = time.monotonic() - t0
        if took > self.longest[0]:
            self.longest = (took, stamp())
        return value

    def _request(self, fn, *args):
        for _ in range(10):
            try:
                return fn(*args)
            except AttributeError as e:
                if not any(word in str(e) for word in CLIENT_BUG):
                    raise
                self.client_bug += 1
                time.sleep(0.05)  # the topology it loads again may be the one it has until the nodes agree
                self.rc.nodes_manager.initialize()
        return fn(*args)

    def run(self):
        rnd = random.Random(13)
        i = 0
        while not self.stop.is_set():
            key = f"load:{i}"
            try:
                self.request(lambda k, v: self.rc.set(k, v), key, f"w{i}")
                self.written[key] = f"w{i}"
                i += 1
                probe = f"k:{rnd.randrange(self.keys)}"
                value = self.request(lambda k: self.rc.get(k), probe)
                if value is None or value.decode() != "v" + probe[2:]:
                    self.failures.append((stamp(), "wrong value", probe, value))
                self.requests += 2
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                self.failures.append((stamp(), type(e).__name__, key, str(e)))
                if not self.rebuild:
                    time.sleep(0.01)
                    continue
                time.sleep(0.05)
                try:
                    self.rc.close()
                    self.rc = self.connect()
                    self.rebuilt += 1
                except (redis.exceptions.RedisError, OSError):
                    pass
            except Exception as e:  # noqa: BLE001: every failure is counted, none ends the load
                self.failures.append((stamp(), type(e).__name__, key, str(e)))
                time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.join(30)
        self.rc.close()


def fill(rc, count):
    """k:<i> = v<i> for i < count, through the cluster client rc, in pipelines of 10k (closed after)."""
    for start in range(0, count, 10_000):
        pipe = rc.pipeline()
        for i in range(start, min(start + 10_000, count)):
            pipe.set(f"k:{i}", f"v{i}")
        assert all(pipe.execute())
    rc.close()


def check_all(rc, expected):
    """Every key of `expected` ({key: value}) is there with its value, read through the cluster client rc (closed
    after)."""
    keys = list(expected)
    for start in range(0, len(keys), 10_000):
        chunk = keys[start:start + 10_000]
        pipe = rc.pipeline()
        for k in chunk:
            pipe.get(k)
        got = pipe.execute()
        wrong = [(k, v) for k, v in zip(chunk, got) if v is None or v.decode() != expected[k]]
        assert not wrong, f"{len(wrong)} of {len(keys)} keys missing or wrong, first: {wrong[:5]}"
    rc.close()


def expected_after(load, io_result, keys):
    """After the loads stopped: no request of the redis-py load (a ClusterLoad) nor of the ioredis one (its result, or
    None without ioredis) failed; returns every key that must be there with its value: the k:<n> loaded first and
    what both loads wrote."""
    assert not load.failures, load.failures[:10]
    expected = {f"k:{i}": f"v{i}" for i in range(keys)}
    expected.update(load.written)
    if io_result:
        assert io_result["failures"] == 0, io_result["first"]
        expected.update({f"io:{i}": f"x{i}" for i in range(io_result["written"])})
    return expected
