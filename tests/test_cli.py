"""The command line on the embedded defaults (SQLite): a key made by `tingxie create-key` works at once."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.conftest import clear_caches


@pytest.fixture
def embedded_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process on embedded settings of its own, with keys required."""
    for name in [name for name in os.environ if name.startswith("TINGXIE_")]:
        monkeypatch.delenv(name)
    settings = {"TINGXIE_DATA_DIR": str(tmp_path / "data"), "TINGXIE_AUTH_REQUIRED": "true"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    clear_caches()
    yield dict(os.environ)
    monkeypatch.undo()
    clear_caches()


def _tingxie(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "tingxie.cli", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_create_key_on_the_embedded_database(embedded_env: dict[str, str]) -> None:
    secret = _tingxie(embedded_env, "create-key", "alice").splitlines()[-1]
    assert secret.startswith("tx_")
    with TestClient(create_app()) as http:
        assert http.get("/v1/jobs").status_code == 401
        assert http.get("/v1/jobs", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_keys_create_list_and_revoke(embedded_env: dict[str, str]) -> None:
    """`keys create` prints the secret as its last line; `keys list` shows it, used or not; a revoked key
    is refused on the very next request."""
    secret = _tingxie(embedded_env, "keys", "create", "ci-runner").splitlines()[-1]
    bearer = {"Authorization": f"Bearer {secret}"}
    (row,) = [line for line in _tingxie(embedded_env, "keys", "list").splitlines() if "ci-runner" in line]
    key_id, never_used = row.split()[0], row.split()[-2:]
    assert never_used == ["-", "-"]  # not used yet, not revoked
    with TestClient(create_app()) as http:
        assert http.get("/v1/jobs", headers=bearer).status_code == 200
        (row,) = [line for line in _tingxie(embedded_env, "keys", "list").splitlines() if "ci-runner" in line]
        assert row.split()[-2] != "-"  # last used: just now
        assert _tingxie(embedded_env, "keys", "revoke", key_id).strip() == f"revoked {key_id}"
        refused = http.get("/v1/jobs", headers=bearer)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    (row,) = [line for line in _tingxie(embedded_env, "keys", "list").splitlines() if "ci-runner" in line]
    assert row.split()[-1] != "-"
