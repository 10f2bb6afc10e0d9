"""The kvinit image itself, as the README describes it: what it holds (kvinit, the server, redis-cli, their
libraries, passwd and group with redis 999:999, no shell) and its settings (ENTRYPOINT, CMD, HEALTHCHECK,
STOPSIGNAL, EXPOSE, the /data volume owned by redis, OCI labels).

KVINIT_IMAGE names the image to check (default kvinit:latest, as in the compose files).
"""

import json
import os
import re
import tarfile
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, sh

IMAGE = os.environ.get("KVINIT_IMAGE") or "kvinit:latest"
SHELLS = {"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox", "toybox"}


@pytest.fixture(scope="module")
def config(engine):
    return json.loads(sh("docker", "image", "inspect", IMAGE).stdout)[0]["Config"]


@pytest.fixture(scope="module")
def files(engine):
    """{path: tarfile.TarInfo} of the image's filesystem (an exported container that never ran)."""
    cid = sh("docker", "create", IMAGE).stdout.strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tar = Path(tmp) / "rootfs.tar"
            sh("docker", "export", "-o", tar, cid)
            with tarfile.open(tar) as t:
                return {m.name.rstrip("/"): m for m in t.getmembers()}
    finally:
        sh("docker", "rm", cid, check=False)


def makefile_version():
    return re.search(r"^VERSION\s*:=\s*(\S+)", (REPO / "Makefile").read_text(), re.M).group(1)


def test_no_shell(files):
    """README: the image holds no shell."""
    shells = sorted(p for p in files if Path(p).name in SHELLS)
    assert not shells, f"a shell in the image: {shells}"


def test_holds_kvinit_the_server_and_the_cli(files):
    for path in ("usr/bin/kvinit", "usr/bin/redis-server", "usr/bin/redis-cli", "etc/passwd", "etc/group"):
        assert path in files, f"/{path} is missing"
    assert files["usr/bin/kvinit"].mode & 0o111, "kvinit is not executable"


def test_redis_user_and_data_volume(files, config):
    """README: /etc/passwd and /etc/group with redis 999:999, and a /data volume owned by redis."""
    assert config["Volumes"] == {"/data": {}}, config.get("Volumes")
    data = files["data"]
    assert data.isdir() and (data.uid, data.gid) == (999, 999), (data.uid, data.gid)
    cid = sh("docker", "create", IMAGE).stdout.strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("passwd", "group"):
                sh("docker", "cp", f"{cid}:/etc/{name}", Path(tmp) / name)
            passwd = (Path(tmp) / "passwd").read_text().splitlines()
            group = (Path(tmp) / "group").read_text().splitlines()
    finally:
        sh("docker", "rm", cid, check=False)
    assert any(re.match(r"^redis:[^:]*:999:999:", line) for line in passwd), passwd
    assert any(re.match(r"^redis:[^:]*:999:", line) for line in group), group


def test_entrypoint_and_command(config):
    assert config["Entrypoint"] == ["/usr/bin/kvinit"] and config["Cmd"] == ["node"], config


def test_healthcheck_is_kvinit_health_ready(config):
    assert config["Healthcheck"]["Test"] == ["CMD", "/usr/bin/kvinit", "health", "--ready"], config.get("Healthcheck")


def test_stop_signal_is_sigterm(config):
    """SIGTERM is what starts kvinit's failover on stop."""
    assert config.get("StopSignal") == "SIGTERM", config.get("StopSignal")


def test_exposes_the_client_and_bus_ports(config):
    assert set(config.get("ExposedPorts") or {}) == {"6379/tcp", "16379/tcp"}, config.get("ExposedPorts")


def test_oci_labels(config):
    labels = config.get("Labels") or {}
    prefix = "org.opencontainers.image."
    assert labels.get(prefix + "title") == "kvinit", labels
    assert labels.get(prefix + "version") == makefile_version(), labels
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", labels.get(prefix + "revision", "")), labels
    assert labels.get(prefix + "licenses") == "MIT", labels
    assert labels.get(prefix + "description"), labels
    assert prefix + "source" in labels, labels
