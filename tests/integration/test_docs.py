"""The README lists every option of the tables (init/options.def, then node/options.def), with its flag and its
default."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPTION = re.compile(r'OPT_(?:STR|BOOL|INT|DURATION|ENUM)\(\s*(\w+),\s*"(\w+)",\s*"(\w+)",\s*"([\w-]+)",\s*"([^"]*)"')


TABLES = ["init/options.def", "node/options.def"]  # in the order --help lists them


def options():
    found = [opt for table in TABLES for opt in OPTION.findall((REPO / table).read_text())]
    assert len(found) >= 30, found
    return found


def readme_rows():
    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`"):
            rows[cells[1].split("`")[1]] = cells
    return rows


def test_every_option_is_in_the_readme_with_flag_and_default():
    rows = readme_rows()
    for field, env, section, key, default in options():
        assert env in rows, f"README has no row for {env}"
        flag, _, shown_default, _ = rows[env]
        assert flag == f"`--{key}`", (env, flag)
        if env in ("KVINIT_USER", "KVINIT_RESTART"):
            continue  # the roles' own defaults are spelled out
        if default in ("", "0") or env == "REDIS_SERVER_BIN":
            continue
        assert f"`{default}`" in shown_default, (env, default, shown_default)


def test_no_readme_row_without_an_option():
    # the password's variables are read by secrets/ itself, outside the options table
    secrets_vars = {m for f in (REPO / "secrets").glob("*.c") for m in re.findall(r'"(REDIS_PASSWORD\w*)', f.read_text())}
    assert "REDIS_PASSWORD_NEXT_FILE" in secrets_vars
    known = {env for _, env, *_ in options()} | {"KVINIT_CONFIG"} | secrets_vars
    stray = [env for env in readme_rows() if env.isupper() and env not in known]
    assert not stray, stray
