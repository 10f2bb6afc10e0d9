"""`kvinit cli` with an encrypted key (issue 14): redis-cli has no passphrase option, so kvinit decrypts the key
(REDIS_TLS_KEY_FILE_PASS_FILE) into an anonymous memory file and hands it over as /proc/self/fd/N. The node requires
client certificates (tls-auth-clients yes), so without the key the client is refused."""

import subprocess
from pathlib import Path

import pytest

from conftest import LONG, KVINIT_BIN, wait_until
from nodes import free_port, node_env, secret_file
from test_tls import Pki, openssl, secret_volume, tls_env
from test_tls_links import tls_answers


@pytest.fixture
def pki(workdir):
    return Pki(Path(workdir) / "pki")


def encrypt(key, passfile):
    """key encrypted with the passphrase in passfile (AES-256, PKCS#8), beside it."""
    out = key.with_name(key.stem + "-encrypted.key")
    openssl("pkey", "-in", str(key), "-aes256", "-passout", f"file:{passfile}", "-out", str(out), cwd=key.parent)
    assert "ENCRYPTED" in out.read_text()
    return out


def cli(env, *args):
    return subprocess.run([str(KVINIT_BIN), "cli", *args], env=env, capture_output=True, text=True, timeout=LONG)


def test_cli_with_an_encrypted_key(launch, workdir, pki):
    """The node runs with an encrypted key and its passphrase in a file; `kvinit cli PING` answers PONG."""
    passfile = secret_file(workdir, "a passphrase, not on any command line", name="tls_key_pass")
    crt, key = pki.issue("node-enc")
    files = secret_volume(Path(workdir) / "secret", {"tls.crt": crt, "tls.key": encrypt(key, passfile),
                                                     "ca.crt": pki.ca})
    port = free_port()
    env = node_env(workdir, port, **tls_env(files, port, REDIS_TLS_KEY_FILE_PASS_FILE=passfile))
    node = launch([KVINIT_BIN, "node"], env=env)
    plain = {**files, "tls.key": key}  # the test's own client uses the unencrypted key
    wait_until(lambda: tls_answers(port, plain), LONG, f"TLS PING on {port}", launched=node)

    r = cli(env, "PING")
    assert r.returncode == 0 and r.stdout.strip() == "PONG", r.stdout + r.stderr
    assert "without a client certificate" not in r.stderr, r.stderr

    # a wrong passphrase: said in one line; without a certificate the node refuses the client
    wrong = secret_file(workdir, "not the passphrase", name="wrong_pass")
    r = cli({**env, "REDIS_TLS_KEY_FILE_PASS_FILE": str(wrong)}, "PING")
    assert r.stdout.strip() != "PONG", r.stdout + r.stderr
    assert f"REDIS_TLS_KEY_FILE='{files['tls.key']}': REDIS_TLS_KEY_FILE_PASS does not decrypt the key" in r.stderr, \
        r.stderr
