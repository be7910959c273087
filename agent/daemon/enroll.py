"""`agent enroll`: generate a key pair locally, send a CSR with a one-time
token, store the signed certificate, the CA and the repository key."""

from __future__ import annotations

import getpass
import hashlib
import platform
import socket
import sys

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.daemon import channel
from agent.daemon.home import AgentHome, Identity
from agent.rpc import agent_pb2 as pb
from agent.rpc import agent_pb2_grpc as pb_grpc


class EnrollError(Exception):
    pass


def agent_version() -> str:
    from agent import __version__

    return __version__


def os_description(os_name: str) -> str:
    """The OS as an admin names it ("Windows 10 (10.0.19045)", "macOS 14.5",
    "Debian GNU/Linux 12 (bookworm)"), not a bare kernel release."""
    if os_name == "windows":
        release, version, _, _ = platform.win32_ver()
        return f"Windows {release} ({version})" if version else f"Windows {release}"
    if os_name == "macos":
        version = platform.mac_ver()[0]
        return f"macOS {version}" if version else "macOS"
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME") or f"Linux {platform.release()}"
    except OSError:  # no /etc/os-release (a minimal container)
        return f"Linux {platform.release()}"


def host_facts() -> pb.HostFacts:
    system = platform.system().lower()
    os_name = {"darwin": "macos", "windows": "windows"}.get(system, "linux")
    try:
        user = getpass.getuser()
    except Exception:
        user = ""
    return pb.HostFacts(
        hostname=socket.gethostname(),
        os=os_name,
        os_version=os_description(os_name),
        agent_version=agent_version(),
        username=user,
        arch=platform.machine(),
    )


def ca_fingerprint(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return cert.fingerprint(hashes.SHA256()).hex()


def _normalise_fp(fp: str) -> str:
    return fp.replace(":", "").replace(" ", "").lower()


def enroll(
    home: AgentHome,
    server: str,
    token: str,
    ca_cert_file: str | None = None,
    ca_fingerprint_expected: str | None = None,
    server_name: str = "",
    host: pb.HostFacts | None = None,
    out=sys.stderr,
    timeout: float = 30.0,
) -> Identity:
    home.ensure()
    if ca_cert_file:
        with open(ca_cert_file, "rb") as f:
            ca_pem = f.read()
    else:
        ca_pem = channel.fetch_ca_chain(server)
        fp = ca_fingerprint(ca_pem)
        if ca_fingerprint_expected:
            if _normalise_fp(ca_fingerprint_expected) != fp:
                raise EnrollError(
                    f"the server's CA fingerprint {fp} does not match the expected one"
                )
        else:
            print(f"trusting the console CA on first use: SHA-256 {fp}", file=out)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, socket.gethostname())]))
        .sign(key, hashes.SHA256())
    )
    request = pb.EnrollRequest(
        token=token,
        host=host or host_facts(),
        csr_pem=csr.public_bytes(serialization.Encoding.PEM),
    )
    with channel.enroll_channel(server, ca_pem, server_name) as ch:
        stub = pb_grpc.AgentGatewayStub(ch)
        try:
            resp = stub.Enroll(request, timeout=timeout)
        except grpc.RpcError as exc:
            detail = exc.details() or exc.code().name
            if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                raise EnrollError(f"enrollment refused: {detail}") from None
            raise EnrollError(
                f"enrollment failed ({exc.code().name}): {detail}; nothing was used up, try again"
            ) from None
    if ca_fingerprint(resp.ca_certificate_pem) != ca_fingerprint(ca_pem):
        raise EnrollError("the console returned a CA certificate other than the one it presented")
    _keep_key_for(home, key, resp.certificate_pem, "returned")
    home.keys.put("repo.key", resp.repository_keys)
    (home.path / "device.crt").write_bytes(resp.certificate_pem)
    (home.path / "ca.crt").write_bytes(resp.ca_certificate_pem)
    gateway = resp.gateway_address or server
    identity = Identity(
        device_id=resp.device_id,
        gateway_address=gateway,
        org=resp.org,
        repository_url=resp.repository.url,
        storage_endpoint=resp.repository.endpoint,
        storage_region=resp.repository.region,
        storage_access=resp.storage_access or "grant",
        server_name=server_name,
        extra={
            "enrolled_via": server,
            "ca_sha256": hashlib.sha256(resp.ca_certificate_pem).hexdigest(),
        },
    )
    home.save_identity(identity)
    return identity


RENEW_BEFORE_DAYS = 30


def certificate_days_left(home: AgentHome) -> float:
    import datetime as dt

    cert = x509.load_pem_x509_certificate((home.path / "device.crt").read_bytes())
    return (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).total_seconds() / 86400


def renew_certificate(home: AgentHome, stub, timeout: float = 30.0) -> None:
    """A new key pair and certificate over the current mutual-TLS identity.
    The gateway keeps accepting the current certificate until the new one is
    first used, so a lost answer never locks the device out."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, socket.gethostname())]))
        .sign(key, hashes.SHA256())
    )
    resp = stub.RenewCertificate(
        pb.RenewRequest(csr_pem=csr.public_bytes(serialization.Encoding.PEM)), timeout=timeout
    )
    _keep_key_for(home, key, resp.certificate_pem, "renewed")
    tmp = home.path / ".device.crt.tmp"
    tmp.write_bytes(resp.certificate_pem)
    tmp.replace(home.path / "device.crt")


def _keep_key_for(home, key, certificate_pem: bytes, what: str) -> None:
    """Store the device's private key once the certificate is proven to be for it."""
    cert = x509.load_pem_x509_certificate(certificate_pem)
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise EnrollError(f"the {what} certificate is not for our key")
    home.keys.put(
        "device.key",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
