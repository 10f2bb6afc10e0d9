"""ioredis (npm), the Node.js cluster client the tests drive: installed once into build/npm with npm (the registry the
machine's npm is set up for), shared by the integration and end-to-end suites."""

import json
import os
import shutil
import subprocess
from pathlib import Path

NPM_DIR = Path(__file__).resolve().parents[2] / "build" / "npm"
LOAD_JS = Path(__file__).resolve().parents[1] / "integration" / "ioredis_load.js"


def ioredis_modules():
    """node_modules with ioredis 5, installed there once; None (the caller skips its ioredis part) without node or
    npm, or when the install fails."""
    modules = NPM_DIR / "node_modules"
    if (modules / "ioredis" / "package.json").is_file():
        return modules
    if not shutil.which("node") or not shutil.which("npm"):
        return None
    r = subprocess.run(["npm", "install", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund", "--no-save",
                        "ioredis@5"], capture_output=True, text=True, timeout=300)
    return modules if r.returncode == 0 and (modules / "ioredis").is_dir() else None


class IoredisLoad:
    """tests/integration/ioredis_load.js: an ioredis Cluster client's writes and reads from `seeds` ("host:port"
    list), until finish(), which returns its JSON result. `env` adds to its environment (NAT_MAP, TLS_CA, TLS_CERT,
    TLS_KEY: see the script)."""

    def __init__(self, modules, seeds, password, keys, **env):
        env = dict(os.environ, NODE_PATH=str(modules), PASSWORD=password, KEYS=str(keys), SEEDS=",".join(seeds),
                   **env)
        self.proc = subprocess.Popen(["node", str(LOAD_JS)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def finish(self):
        try:
            out, err = self.proc.communicate(input="", timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"ioredis load: no result 60 s after it was told to stop\n{out}\n{err}") from None
        assert self.proc.returncode == 0 and out.strip(), f"ioredis load: {self.proc.returncode}\n{out}\n{err}"
        return json.loads(out.strip().splitlines()[-1])
