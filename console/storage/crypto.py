"""Encryption of secrets the console stores (S3 credentials).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a key derived
by HKDF-SHA256 from ``CAIRN_SECRETS_KEY`` if set, else from ``SECRET_KEY``.
Rotating that setting makes stored secrets unreadable: re-enter them (the
console shows which targets fail to decrypt).
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"cairn-console-secrets-v1"


@functools.cache
def _fernet(master: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _current() -> Fernet:
    return _fernet(getattr(settings, "CAIRN_SECRETS_KEY", "") or settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("stored secret cannot be decrypted with the current key") from exc
