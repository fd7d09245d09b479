"""Terminal secrets, hashed in Mosquitto's password-file format ($7$ = PBKDF2-SHA512).

Storing the broker's own format lets `fleet broker sync` write the password file from the
terminals table without ever holding a plaintext secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

ITERATIONS = 1000  # Mosquitto's default is 101; higher is slower for brute force, same format


def hash_secret(secret: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_secret(stored: str, secret: str) -> bool:
    try:
        _, seven, iters, salt_b64, hash_b64 = stored.split("$")
        if seven != "7":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(hash_b64)
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, int(iters), dklen=len(expected))
    return hmac.compare_digest(got, expected)


def new_secret() -> str:
    return secrets.token_urlsafe(18)


def derived_secret(key: str, terminal_id: str) -> str:
    """The demo fleet's terminal password: HMAC of the terminal id under a local key."""
    mac = hmac.new(key.encode(), terminal_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def hash_code(code: str) -> str:
    """A JT/T 808 authentication code issued by the platform (128 random bits): SHA-256 is
    enough for a secret nobody chose (no dictionary to try), and cheap for 10,000 logins."""
    return "sha256$" + hashlib.sha256(code.encode()).hexdigest()


def verify_code(stored: str | None, code: str) -> bool:
    if not stored or not stored.startswith("sha256$"):
        return False
    return hmac.compare_digest(stored[7:], hashlib.sha256(code.encode()).hexdigest())


def new_code() -> str:
    return secrets.token_hex(16)
