"""ioredis (npm), the Node.js cluster client the tests drive: installed once into build/npm with npm (the registry the
machine's npm is set up for), shared by the integration and end-to-end suites."""

import shutil
import subprocess
from pathlib import Path

NPM_DIR = Path(__file__).resolve().parents[2] / "build" / "npm"


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
