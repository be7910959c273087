"""Passphrase-sealed data: the console's disaster-recovery bundle and the
organisation key in the recovery kit (docs/operations.md, "Back up the
console, recover it").

A passphrase is stretched by **Argon2id** (64 MiB, 3 passes, 4 lanes: costly
to guess offline, a second to open) into a 256-bit key; the data is sealed
with **AES-256-GCM** in 1 MiB chunks (the STREAM construction: each nonce is a
random 7-byte prefix, the chunk counter and a last-chunk flag, so chunks can
be neither reordered, dropped nor truncated at the end). The header (a JSON
line: parameters, salt, nonce prefix, what is inside) is authenticated as
associated data of every chunk.

Layout: ``MAGIC`` ``<header JSON>\\n`` then, per chunk, a 4-byte big-endian
length and the ciphertext with its 16-byte tag.

The armoured form (:func:`armour`) is base64 between BEGIN/END lines, short
lines: what the printed recovery kit holds and an admin can type back in.
Only the standard library and ``cryptography``: the agent CLI opens it
without the console (``cairn-agent unwrap-key``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

MAGIC = b"CAIRN-SEALED-1\n"
CHUNK = 1 << 20
#: Argon2id cost (RFC 9106's second recommended option, with 64 MiB)
KDF = {"kdf": "argon2id", "iterations": 3, "lanes": 4, "memory_kib": 64 * 1024}
#: bounds on what a header may ask for (a hostile file must not make us
#: allocate gigabytes or loop for hours)
MAX_MEMORY_KIB = 1 << 20
MAX_ITERATIONS = 16
MIN_PASSPHRASE = 12
BEGIN = "-----BEGIN CAIRN SEALED DATA-----"
END = "-----END CAIRN SEALED DATA-----"


class SealError(ValueError):
    """Wrong passphrase, damaged or foreign data."""


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise SealError(f"the recovery passphrase must have at least {MIN_PASSPHRASE} characters")


def _derive(passphrase: str, salt: bytes, params: dict) -> bytes:
    try:
        iterations = int(params["iterations"])
        lanes = int(params["lanes"])
        memory = int(params["memory_kib"])
    except (KeyError, TypeError, ValueError):
        raise SealError("sealed data: bad key-derivation parameters") from None
    if params.get("kdf") != "argon2id" or not (
        1 <= iterations <= MAX_ITERATIONS
        and 1 <= lanes <= 64
        and 8 * lanes <= memory <= MAX_MEMORY_KIB
    ):
        raise SealError("sealed data: key-derivation parameters out of bounds")
    kdf = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory)
    return kdf.derive(passphrase.encode("utf-8"))


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


def _chunks(src: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    current = src.read(CHUNK)
    while True:
        following = src.read(CHUNK)
        yield current, not following
        if not following:
            return
        current = following


def seal_stream(src: BinaryIO, dst: BinaryIO, passphrase: str, info: dict | None = None) -> dict:
    """Seal everything ``src`` yields into ``dst``; returns the header."""
    check_passphrase(passphrase)
    salt, prefix = os.urandom(16), os.urandom(7)
    header = {
        **KDF,
        "cipher": "aes-256-gcm-stream",
        "chunk": CHUNK,
        "salt": base64.b64encode(salt).decode(),
        "nonce_prefix": base64.b64encode(prefix).decode(),
        "info": info or {},
    }
    head = json.dumps(header, sort_keys=True).encode() + b"\n"
    aead = AESGCM(_derive(passphrase, salt, header))
    dst.write(MAGIC + head)
    for counter, (chunk, last) in enumerate(_chunks(src)):
        sealed = aead.encrypt(_nonce(prefix, counter, last), chunk, MAGIC + head)
        dst.write(struct.pack(">I", len(sealed)) + sealed)
    return header


def read_header(src: BinaryIO) -> tuple[dict, bytes]:
    """The header (untrusted until a chunk authenticates it) and its raw line."""
    if src.read(len(MAGIC)) != MAGIC:
        raise SealError("not Cairn sealed data (wrong magic)")
    head = src.readline(64 * 1024)
    if not head.endswith(b"\n"):
        raise SealError("sealed data: header too long or truncated")
    try:
        header = json.loads(head)
        if not isinstance(header, dict):
            raise ValueError
    except ValueError:
        raise SealError("sealed data: the header is not JSON") from None
    return header, head


def open_stream(src: BinaryIO, dst: BinaryIO, passphrase: str) -> dict:
    """Verify and decrypt ``src`` into ``dst``; returns the header. Raises
    :class:`SealError` on a wrong passphrase or any damage (nothing written
    past the first chunk that fails)."""
    header, head = read_header(src)
    try:
        salt = base64.b64decode(header["salt"], validate=True)
        prefix = base64.b64decode(header["nonce_prefix"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise SealError("sealed data: bad salt or nonce") from None
    if len(prefix) != 7 or len(salt) < 16 or header.get("cipher") != "aes-256-gcm-stream":
        raise SealError("sealed data: unsupported cipher parameters")
    aead = AESGCM(_derive(passphrase, salt, header))
    counter = 0
    while True:
        size_raw = src.read(4)
        if len(size_raw) != 4:
            raise SealError("sealed data is truncated (no final chunk)")
        (size,) = struct.unpack(">I", size_raw)
        if size > CHUNK + 16:
            raise SealError("sealed data: chunk too large")
        sealed = src.read(size)
        if len(sealed) != size:
            raise SealError("sealed data is truncated")
        last = False
        try:
            plain = aead.decrypt(_nonce(prefix, counter, False), sealed, MAGIC + head)
        except InvalidTag:
            try:
                plain = aead.decrypt(_nonce(prefix, counter, True), sealed, MAGIC + head)
                last = True
            except InvalidTag:
                what = (
                    "wrong passphrase, or the data is damaged" if counter == 0 else "damaged data"
                )
                raise SealError(f"cannot open the sealed data: {what}") from None
        dst.write(plain)
        counter += 1
        if last:
            if src.read(1):
                raise SealError("sealed data: bytes after the final chunk")
            return header


def seal_bytes(data: bytes, passphrase: str, info: dict | None = None) -> bytes:
    import io

    out = io.BytesIO()
    seal_stream(io.BytesIO(data), out, passphrase, info)
    return out.getvalue()


def open_bytes(blob: bytes, passphrase: str) -> tuple[bytes, dict]:
    import io

    out = io.BytesIO()
    header = open_stream(io.BytesIO(blob), out, passphrase)
    return out.getvalue(), header


def armour(blob: bytes, width: int = 64) -> str:
    text = base64.b64encode(blob).decode()
    lines = [text[i : i + width] for i in range(0, len(text), width)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def dearmour(text: str) -> bytes:
    """The sealed bytes from text holding one armoured block (as pdftotext or
    a person typing it back gives it: blank lines, spaces and page furniture
    between the lines are ignored; only base64 characters between BEGIN and
    END count)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SealError(f"no '{BEGIN}' ... '{END}' block found")
    body = re.sub(r"[^A-Za-z0-9+/=]", "", text[start + len(BEGIN) : end])
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        raise SealError("the sealed block is not valid base64 (a character mistyped?)") from None
