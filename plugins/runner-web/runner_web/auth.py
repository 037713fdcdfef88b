"""Who may use the dashboard: one admin account, its password stored hashed (PBKDF2-SHA256,
a salt of its own) in `<state>/web-users.json`, mode 0600. There is no default password:
on first start one is made at random and printed once, unless `RUNNER_WEB_PASSWORD` gives it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

__all__ = ["USERS_FILE", "check_password", "ensure_admin", "hash_password"]

USERS_FILE = "web-users.json"
ROUNDS = 240_000


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ROUNDS)
    return f"pbkdf2_sha256${ROUNDS}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, rounds, salt, digest = stored.split("$")
        again = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(again.hex(), digest)


def ensure_admin(state_dir: Path) -> str | None:
    """Make sure an admin account exists; returns a password made just now (to print once),
    or None when the account existed or `RUNNER_WEB_PASSWORD` set it."""
    path = state_dir / USERS_FILE
    if path.exists():
        return None
    given = os.environ.get("RUNNER_WEB_PASSWORD")
    password = given or secrets.token_urlsafe(12)
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"admin": hash_password(password)}, f)
    return None if given else password


def users(state_dir: Path) -> dict[str, str]:
    try:
        loaded = json.loads((state_dir / USERS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
