"""Keys, authenticated encryption and key wrapping.

Key hierarchy (docs/format.md, "Keys"):

* Each repository has random **master keys**: ``encryption`` (AES-256-GCM, for
  every object and blob) and ``chunk_id`` (keyed BLAKE3, names chunks so the
  storage operator cannot test whether a known file is stored).
* The master keys are stored in ``keys/<id>`` objects, each wrapping them
  under a key-encryption key (KEK) derived from either a 32-byte
  organisation key (BLAKE3 derive_key) or a passphrase (Argon2id).

Nonces: every encryption draws a fresh random 96-bit nonce from the OS CSPRNG.
With random nonces, AES-GCM stays within NIST SP 800-38D's bound (collision
probability below 2^-32) for up to 2^32 encryptions under one key. One object
or blob is one encryption; at Cairn's ~640 KiB mean chunk that is ~2.7 PiB
of unique data per device repository, far beyond a PC's lifetime. A counter
scheme would need coordination between concurrent writers (several
processes, crashed sessions), which random nonces avoid.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from dataclasses import dataclass

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.engine.errors import CorruptObject, UnsupportedVersion, WrongKey

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
#: bytes an encrypted object is longer than its plaintext
OVERHEAD = NONCE_SIZE + TAG_SIZE

KEYFILE_VERSION = 1
ORG_KEY_CONTEXT = "cairn 2026 organisation key wrap v1"
ORG_KEY_ID_CONTEXT = "cairn 2026 organisation key id v1"

#: Argon2id defaults: RFC 9106's second recommended option (t=3, 64 MiB),
#: ~0.1 s on the 2-core reference machine; stored in each key file, so they
#: can be raised later without breaking old repositories.
DEFAULT_KDF = {"algorithm": "argon2id", "time_cost": 3, "memory_kib": 65536, "parallelism": 2}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class MasterKeys:
    encryption: bytes
    chunk_id: bytes

    @classmethod
    def generate(cls) -> MasterKeys:
        return cls(os.urandom(KEY_SIZE), os.urandom(KEY_SIZE))

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"v": 1, "encryption": b64(self.encryption), "chunk_id": b64(self.chunk_id)},
            sort_keys=True,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> MasterKeys:
        doc = json.loads(data)
        if doc.get("v") != 1:
            raise UnsupportedVersion(f"unknown master key version {doc.get('v')!r}")
        keys = cls(unb64(doc["encryption"]), unb64(doc["chunk_id"]))
        if len(keys.encryption) != KEY_SIZE or len(keys.chunk_id) != KEY_SIZE:
            raise CorruptObject("master keys have the wrong length")
        return keys


class Cipher:
    """AES-256-GCM with a random nonce per message. Thread-safe (the
    underlying AESGCM object is immutable; OpenSSL contexts are per call)."""

    def __init__(self, key: bytes):
        if len(key) != KEY_SIZE:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """nonce || ciphertext || tag."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def seal_into(self, plaintext, aad: bytes, out: memoryview) -> None:
        """Encrypt into ``out``, which must be exactly len(plaintext)+OVERHEAD
        bytes: lets pack writers encrypt straight into a reused pack buffer."""
        nonce = os.urandom(NONCE_SIZE)
        out[:NONCE_SIZE] = nonce
        self._aead.encrypt_into(nonce, plaintext, aad, out[NONCE_SIZE:])

    def open(self, sealed, aad: bytes, *, what: str = "object") -> bytes:
        """Decrypt and authenticate; raises CorruptObject naming ``what``."""
        if len(sealed) < OVERHEAD:
            raise CorruptObject(f"{what} is truncated ({len(sealed)} bytes)")
        try:
            return self._aead.decrypt(bytes(sealed[:NONCE_SIZE]), sealed[NONCE_SIZE:], aad)
        except InvalidTag:
            raise CorruptObject(
                f"{what} failed authentication (damaged or tampered with)"
            ) from None


def org_key_id(org_key: bytes) -> str:
    """A public fingerprint of an organisation key: tells which key wraps a
    repository without revealing it."""
    return blake3.blake3(org_key, derive_key_context=ORG_KEY_ID_CONTEXT).hexdigest()[:16]


def _org_kek(org_key: bytes) -> bytes:
    if len(org_key) != KEY_SIZE:
        raise ValueError(f"the organisation key must be {KEY_SIZE} bytes, got {len(org_key)}")
    return blake3.blake3(org_key, derive_key_context=ORG_KEY_CONTEXT).digest()


def _passphrase_kek(passphrase: str | bytes, salt: bytes, kdf: dict) -> bytes:
    from argon2.low_level import Type, hash_secret_raw

    if kdf.get("algorithm") != "argon2id":
        raise UnsupportedVersion(f"unknown key derivation {kdf.get('algorithm')!r}")
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    return hash_secret_raw(
        passphrase,
        salt,
        time_cost=int(kdf["time_cost"]),
        memory_cost=int(kdf["memory_kib"]),
        parallelism=int(kdf["parallelism"]),
        hash_len=KEY_SIZE,
        type=Type.ID,
    )


def _keyfile_aad(repository_id: str, kind: str) -> bytes:
    # Binds a key file to its repository and kind: a key file copied from
    # another repository does not open here.
    return f"cairn-keyfile-v1\x00{repository_id}\x00{kind}".encode()


def wrap_keys(
    master: MasterKeys,
    repository_id: str,
    *,
    org_key: bytes | None = None,
    passphrase: str | bytes | None = None,
    kdf: dict | None = None,
) -> dict:
    """A key-file document wrapping ``master`` with exactly one of the two."""
    if (org_key is None) == (passphrase is None):
        raise ValueError("wrap with exactly one of org_key or passphrase")
    doc: dict = {"version": KEYFILE_VERSION, "repository_id": repository_id}
    if org_key is not None:
        doc["kind"] = "org-key"
        doc["org_key_id"] = org_key_id(org_key)
        kek = _org_kek(org_key)
    else:
        kdf = dict(kdf or DEFAULT_KDF)
        salt = os.urandom(16)
        doc["kind"] = "passphrase"
        doc["kdf"] = {**kdf, "salt": b64(salt)}
        kek = _passphrase_kek(passphrase, salt, kdf)
    doc["wrapped"] = b64(
        Cipher(kek).seal(master.to_bytes(), _keyfile_aad(repository_id, doc["kind"]))
    )
    return doc


def unwrap_keys(
    doc: dict,
    repository_id: str,
    *,
    org_key: bytes | None = None,
    passphrase: str | bytes | None = None,
) -> MasterKeys | None:
    """The master keys if this key file opens with what was given, None if it
    is of another kind (or another org key); WrongKey if a passphrase file
    does not open with the passphrase."""
    if doc.get("version") != KEYFILE_VERSION:
        raise UnsupportedVersion(f"key file version {doc.get('version')!r} is not supported")
    if doc.get("repository_id") != repository_id:
        return None
    kind = doc.get("kind")
    if kind == "org-key" and org_key is not None:
        if not hmac.compare_digest(doc.get("org_key_id", ""), org_key_id(org_key)):
            return None
        kek = _org_kek(org_key)
    elif kind == "passphrase" and passphrase is not None:
        kdf = doc["kdf"]
        kek = _passphrase_kek(passphrase, unb64(kdf["salt"]), kdf)
    else:
        return None
    try:
        plain = Cipher(kek).open(unb64(doc["wrapped"]), _keyfile_aad(repository_id, kind))
    except CorruptObject:
        if kind == "passphrase":
            return None
        raise
    return MasterKeys.from_bytes(plain)


def ensure_wrong_key_message(kinds: set[str], have_org: bool, have_pass: bool) -> WrongKey:
    """The clearest message for 'nothing opened'."""
    offered = " or ".join(
        x for x, ok in (("organisation key", have_org), ("passphrase", have_pass)) if ok
    )
    if not kinds:
        return WrongKey("the repository has no key files")
    return WrongKey(
        f"wrong {offered or 'key'}: no key file of this repository opens with it"
        f" (it has: {', '.join(sorted(kinds))})"
    )
