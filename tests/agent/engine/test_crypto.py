"""AEAD and key wrapping (agent/engine/crypto.py)."""

from __future__ import annotations

import json
import os

import pytest

from agent.engine.crypto import (
    NONCE_SIZE,
    OVERHEAD,
    Cipher,
    MasterKeys,
    org_key_id,
    unwrap_keys,
    wrap_keys,
)
from agent.engine.errors import (
    CorruptObject,
    UnsupportedVersion,
)
from tests.agent.conftest import FAST_KDF


def test_cipher_roundtrip_tamper_and_nonces():
    c = Cipher(os.urandom(32))
    sealed = c.seal(b"secret", b"aad")
    assert len(sealed) == 6 + OVERHEAD
    assert c.open(sealed, b"aad") == b"secret"
    with pytest.raises(CorruptObject):
        c.open(sealed, b"other aad")
    for i in range(len(sealed)):
        bad = bytearray(sealed)
        bad[i] ^= 1
        with pytest.raises(CorruptObject):
            c.open(bytes(bad), b"aad")
    with pytest.raises(CorruptObject):
        Cipher(os.urandom(32)).open(sealed, b"aad")
    nonces = {c.seal(b"x", b"")[:NONCE_SIZE] for _ in range(5000)}
    assert len(nonces) == 5000
    out = bytearray(10 + OVERHEAD)
    c.seal_into(b"0123456789", b"a", memoryview(out))
    assert c.open(bytes(out), b"a") == b"0123456789"


def test_key_wrapping_org_key_and_passphrase():
    keys = MasterKeys.generate()
    org = os.urandom(32)
    doc = wrap_keys(keys, "repo1", org_key=org)
    assert doc["org_key_id"] == org_key_id(org)
    assert org.hex() not in json.dumps(doc)
    assert unwrap_keys(doc, "repo1", org_key=org) == keys
    assert unwrap_keys(doc, "repo1", org_key=os.urandom(32)) is None
    assert unwrap_keys(doc, "repo2", org_key=org) is None  # bound to its repository
    pdoc = wrap_keys(keys, "repo1", passphrase="pw", kdf=FAST_KDF)
    assert pdoc["kdf"]["algorithm"] == "argon2id"
    assert unwrap_keys(pdoc, "repo1", passphrase="pw") == keys
    assert unwrap_keys(pdoc, "repo1", passphrase="PW") is None
    with pytest.raises(UnsupportedVersion):
        unwrap_keys({**pdoc, "version": 99}, "repo1", passphrase="pw")
