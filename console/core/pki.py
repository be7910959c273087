"""The console's certificate authority: the root of every agent's identity.

* ``ensure_ca()`` creates a development CA (EC P-256, 10 years) under
  ``settings.PKI_DIR`` on first start, and loads it afterwards. In production
  the CA key and certificate are provisioned into PKI_DIR (or a KMS later); the
  files are the seam.
* ``ensure_server_certificate()`` issues the gateway's TLS certificate
  (SAN: the hostnames and IPs it is reached by), renewed when it nears expiry.
* ``sign_device_csr()`` turns a device's PKCS#10 request into a client
  certificate whose subject CN is the device id. The private key never leaves
  the PC: we only ever see the CSR, whose self-signature is verified.

Revocation is not done with CRLs (gRPC's Python TLS stack cannot consult
them): the gateway checks the device row (revoked flag, pinned certificate
fingerprint) on every call and closes open streams of a revoked device.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings

CA_KEY = "ca.key"
CA_CERT = "ca.crt"
SERVER_KEY = "gateway.key"
SERVER_CERT = "gateway.crt"

DEVICE_CERT_DAYS = 397
SERVER_CERT_DAYS = 397
CA_DAYS = 3650


class PKIError(Exception):
    """A request the CA refuses (bad CSR, wrong key type...)."""


class CAMissing(PKIError):
    """No CA where one must already exist (production never creates one as a
    side effect: ``manage.py init_keys`` does, once)."""


@dataclass(frozen=True)
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fingerprint(cert: x509.Certificate | bytes) -> str:
    """SHA-256 of the DER certificate, lowercase hex: how devices are pinned."""
    if isinstance(cert, bytes | str):
        cert = x509.load_pem_x509_certificate(cert if isinstance(cert, bytes) else cert.encode())
    return cert.fingerprint(hashes.SHA256()).hex()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pki_dir(pki_dir: Path | None) -> Path:
    if pki_dir is None:
        pki_dir = Path(settings.PKI_DIR)
    pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return pki_dir


def _may_create_on_use() -> bool:
    """Development creates its CA on first use; production never does."""
    return not settings.PRODUCTION


def create_ca(pki_dir: Path | None = None, org: str = "Cairn") -> CA:
    """Create the CA, explicitly (``manage.py init_keys``). Never replaces an
    existing key or certificate: every device certificate chains to it."""
    d = _pki_dir(pki_dir)
    key_path, cert_path = d / CA_KEY, d / CA_CERT
    for path in (key_path, cert_path):
        if path.exists():
            raise PKIError(f"{path} already exists: the CA is never replaced")
    lock = d / ".ca.lock"
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PKIError(f"{lock} exists: another process is creating the CA") from None
    os.close(fd)
    try:
        _create_ca(key_path, cert_path, org)
    finally:
        lock.unlink(missing_ok=True)
    return ensure_ca(d, org, create=False)


def ensure_ca(pki_dir: Path | None = None, org: str = "Cairn", *, create: bool | None = None) -> CA:
    """Load the CA, creating a development one on first start (``create``
    defaults to "not in production": there a missing CA is ``CAMissing``).

    Creation is race-safe across processes (console, gateway and workers can
    start together): the key file is created with O_EXCL, losers wait for it.
    """
    d = _pki_dir(pki_dir)
    key_path, cert_path = d / CA_KEY, d / CA_CERT
    if create is None:
        create = _may_create_on_use()
    if not cert_path.exists() and not create:
        raise CAMissing(
            f"{cert_path} does not exist. In production the console CA is created once, "
            "explicitly: python manage.py init_keys (docs/operations.md)"
        )
    if not cert_path.exists():
        lock = d / ".ca.lock"
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            fd = None
        if fd is not None:
            os.close(fd)
            try:
                if not cert_path.exists():
                    _create_ca(key_path, cert_path, org)
            finally:
                lock.unlink(missing_ok=True)
        else:
            deadline = time.monotonic() + 30
            while not cert_path.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return CA(key=key, cert=cert)


def _create_ca(key_path: Path, cert_path: Path, org: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org} device CA"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _san_for(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return names


def ensure_server_certificate(
    hosts: list[str], pki_dir: Path | None = None, ca: CA | None = None
) -> tuple[bytes, bytes]:
    """(key PEM, certificate chain PEM) for the gateway; reissued when the
    host list changed or less than 30 days remain. The chain includes the CA
    certificate so an agent enrolling without a pinned CA file can see it."""
    d = _pki_dir(pki_dir)
    ca = ca or ensure_ca(d)
    key_path, cert_path = d / SERVER_KEY, d / SERVER_CERT
    hosts = sorted(set(hosts) | {"localhost", "127.0.0.1"})
    if key_path.exists() and cert_path.exists():
        cert = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            current = sorted(
                [str(v) for v in san.get_values_for_type(x509.DNSName)]
                + [str(v) for v in san.get_values_for_type(x509.IPAddress)]
            )
        except x509.ExtensionNotFound:
            current = []
        fresh = cert.not_valid_after_utc - _now() > dt.timedelta(days=30)
        if fresh and current == hosts and cert.issuer == ca.cert.subject:
            return key_path.read_bytes(), cert_path.read_bytes()
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cairn-gateway")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(_san_for(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = _key_pem(key)
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.cert_pem
    _write_private(key_path, key_pem)
    _write_public(cert_path, chain)
    return key_pem, chain


@dataclass(frozen=True)
class DeviceCertificate:
    pem: bytes
    fingerprint: str
    serial: int
    not_after: dt.datetime


def sign_device_csr(ca: CA, csr_pem: bytes, device_id: str | uuid.UUID) -> DeviceCertificate:
    """A client certificate for ``device_id`` over the CSR's public key.

    The CSR's subject is ignored (the device does not choose its identity);
    only its key is used, after checking the CSR's self-signature proves
    possession of the private key."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise PKIError(f"not a PEM certificate request: {exc}") from exc
    if not csr.is_signature_valid:
        raise PKIError("certificate request signature is invalid")
    public_key = csr.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.key_size < 256:
            raise PKIError("EC keys must be at least 256 bits")
    elif getattr(public_key, "key_size", 0) < 2048:
        raise PKIError("RSA keys must be at least 2048 bits; EC P-256 is preferred")
    now = _now()
    not_after = now + dt.timedelta(days=DEVICE_CERT_DAYS)
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(device_id))]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"urn:cairn:device:{device_id}")]
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return DeviceCertificate(
        pem=cert.public_bytes(serialization.Encoding.PEM),
        fingerprint=fingerprint(cert),
        serial=serial,
        not_after=cert.not_valid_after_utc,  # as written: whole seconds
    )


def not_after_from_pem(pem: bytes | str) -> dt.datetime:
    """When a certificate expires (UTC)."""
    if isinstance(pem, str):
        pem = pem.encode()
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def device_id_from_pem(pem: bytes | str) -> str:
    """The device id a (verified) client certificate names."""
    if isinstance(pem, str):
        pem = pem.encode()
    cert = x509.load_pem_x509_certificate(pem)
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        raise PKIError("client certificate has no common name")
    return str(attrs[0].value)
