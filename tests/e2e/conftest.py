"""End-to-end tests: the real images, real docker compose, the real redis-py cluster client.

Each layout is brought up with `compose/stack.sh up` (what `make up` runs) and torn down with its volumes at the end,
also on failure. A layout runs on its default image (main and cache-cluster: kvinit:redis-8.0, announce:
kvinit:valkey-9); a stack parameter "LAYOUT@NAME" runs it on kvinit:NAME instead (KVINIT_IMAGE). An image that
`make images` skipped (its package missing from Debian sid that day) skips its tests with that reason. Clients on the host reach the nodes the way the README says a user does: the main layout through
the published ports and the hosts line of `make hosts` (emulated inside this process, so /etc/hosts is left alone),
the announce layout through the published ports it announces, the cache cluster at its containers' addresses.

Debian's python3-redis 4.3.4 RedisCluster never recovers after a failover (its bug, fixed in 4.4.0): the tests build
a new client after a connection error.
"""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import sys

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pylib"))  # helpers shared with the other suite
COMPOSE_DIR = REPO / "compose"
STACK = COMPOSE_DIR / "stack.sh"
SECRET = COMPOSE_DIR / "secrets" / "redis_password"
LONG = 180

LAYOUTS = {
    "main": {"project": "kvinit", "file": "docker-compose.yml", "image": "kvinit:redis-8.0"},
    "cache-cluster": {"project": "kvinit-cache", "file": "docker-compose.cache-cluster.yml", "image": "kvinit:redis-8.0"},
    "announce": {"project": "kvinit-announce", "file": "docker-compose.announce.yml", "image": "kvinit:valkey-9"},
    "sentinel": {"project": "kvinit-sentinel", "file": "docker-compose.sentinel.yml", "image": "kvinit:redis-8.0"},
}
IMAGES_DIR = REPO / "build" / "images"  # where `make images` notes an image it skipped
MAIN_PORTS = {f"redis-node-{i}": 6379 + i for i in range(6)}


def sh(*args, check=True, timeout=LONG, env=None, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})), **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def compose(layout, *args, check=True, timeout=LONG, overrides=()):
    spec = LAYOUTS[layout]
    tool = ["docker", "compose"] if sh("docker", "compose", "version", check=False).returncode == 0 \
        else ["docker-compose"]
    files = [arg for f in (COMPOSE_DIR / spec["file"], *overrides) for arg in ("-f", f)]
    return sh(*tool, "--project-directory", COMPOSE_DIR, "-p", spec["project"], *files, *args, check=check,
              timeout=timeout)


def password():
    return SECRET.read_text().strip("\n")


def wait_until(predicate, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (redis.exceptions.RedisError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def inspect(container):
    return json.loads(sh("docker", "inspect", container).stdout)[0]


def container_ids(layout):
    return compose(layout, "ps", "-q").stdout.split()


# --------------------------------------------------------------------------- name resolution like the hosts line

_real_getaddrinfo = socket.getaddrinfo
_host_map = {}


def _getaddrinfo(host, *args, **kw):
    return _real_getaddrinfo(_host_map.get(host, host), *args, **kw)


socket.getaddrinfo = _getaddrinfo


@pytest.fixture
def hosts_line():
    """What the line of `make hosts` does for this process: redis-node-N is 127.0.0.1."""
    line = sh(STACK, "hosts").stdout.split()
    assert line[0] == "127.0.0.1"
    _host_map.update({name: "127.0.0.1" for name in line[1:]})
    yield
    _host_map.clear()


# --------------------------------------------------------------------------- engine, images, layouts


@pytest.fixture(scope="session")
def engine():
    sh(REPO / "images" / "docker-engine.sh", timeout=600)
    image = "kvinit-exporter:latest"
    assert sh("docker", "image", "inspect", image, check=False).returncode == 0, \
        f"{image} is missing: `make images` builds it (make check does)"


def require_image(image):
    """The node image is there; or the test skips, when `make images` skipped it for a reason outside the project."""
    if sh("docker", "image", "inspect", image, check=False).returncode == 0:
        return
    skipped = IMAGES_DIR / image.split(":", 1)[1] / "skipped"
    if skipped.is_file():
        pytest.skip(skipped.read_text().strip())
    raise AssertionError(f"{image} is missing: `make image SERVER={image.split(':', 1)[1]}` builds it "
                         f"(`make images`, and so make check, builds them all)")


def _down(layout):
    compose(layout, "down", "--volumes", "--remove-orphans", check=False)


@pytest.fixture(scope="module")
def stack(request, engine):
    """Brings a layout up from nothing with `compose/stack.sh up`; yields (layout, seconds to cluster ok). The param
    is a layout, or LAYOUT@NAME for the layout on kvinit:NAME: every compose call of the tests then runs that image
    (KVINIT_IMAGE in this process's environment, which sh() passes on). A "+tls" at the end (main+tls) brings it up
    as `make up TLS=1` does (TLS=1)."""
    param, tls = request.param.removesuffix("+tls"), request.param.endswith("+tls")
    layout, _, server = param.partition("@")
    image = f"kvinit:{server}" if server else LAYOUTS[layout]["image"]
    require_image(image)
    os.environ["KVINIT_IMAGE"] = image
    request.addfinalizer(lambda: os.environ.pop("KVINIT_IMAGE", None))
    for other in LAYOUTS:  # the main and announce layouts share host ports: only one layout at a time
        _down(other)
    t0 = time.monotonic()
    try:
        r = sh(STACK, "up", env={"LAYOUT": layout, **({"TLS": "1"} if tls else {})}, timeout=600)
    except AssertionError:
        print(compose(layout, "logs", "--no-color", check=False).stdout[-5000:])
        _down(layout)
        raise
    elapsed = time.monotonic() - t0
    print(f"\nmake up LAYOUT={layout}{' TLS=1' if tls else ''} on {image}: {elapsed:.1f} s to cluster ok (images "
          f"built)\n{r.stdout[-1500:]}")
    yield layout, elapsed, r.stdout
    _down(layout)
