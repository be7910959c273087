"""gRPC channels to the gateway: server-authenticated TLS for Enroll,
mutual TLS for everything else."""

from __future__ import annotations

import socket
import ssl

import grpc

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # We do our own reconnect with backoff and jitter (daemon.py).
    ("grpc.enable_retries", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


def _options(server_name: str) -> list:
    opts = list(CHANNEL_OPTIONS)
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return opts


def fetch_ca_chain(address: str, timeout: float = 10.0) -> bytes:
    """Trust on first use: the CA certificate at the end of the chain the
    enrollment listener presents (the gateway includes its CA certificate in
    its chain). Only used when neither --ca-cert nor --ca-fingerprint was
    given; the fingerprint is printed so the admin can compare it."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=timeout) as sock,
        ctx.wrap_socket(sock, server_hostname=host) as tls,
    ):
        getter = getattr(tls, "get_unverified_chain", None)  # Python >= 3.13
        if getter is None:
            getter = tls._sslobj.get_unverified_chain  # 3.10 - 3.12
        chain = getter()
    if not chain:
        raise RuntimeError("the server presented no certificate")
    last = chain[-1]
    if isinstance(last, bytes):
        return ssl.DER_cert_to_PEM_cert(last).encode()
    return last.public_bytes().encode()


def enroll_channel(address: str, ca_pem: bytes, server_name: str = "") -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    return grpc.secure_channel(address, creds, options=_options(server_name))


def mtls_credentials(ca_pem: bytes, key_pem: bytes, cert_pem: bytes) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


def sync_channel(address: str, creds, server_name: str = "") -> grpc.Channel:
    return grpc.secure_channel(address, creds, options=_options(server_name))


def aio_channel(address: str, creds, server_name: str = "") -> grpc.aio.Channel:
    return grpc.aio.secure_channel(address, creds, options=_options(server_name))
