"""The console's CA: created once, signs device CSRs with the device id as
identity, refuses bad requests."""

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from console.core import pki


def _csr(cn="laptop-1", key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM)


def test_ca_is_created_once_with_private_key_0600(tmp_path):
    ca = pki.ensure_ca(tmp_path)
    again = pki.ensure_ca(tmp_path)
    assert ca.fingerprint == again.fingerprint
    assert stat.S_IMODE((tmp_path / pki.CA_KEY).stat().st_mode) == 0o600
    bc = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca


def test_device_certificate_names_the_device_not_the_csr_subject(tmp_path):
    ca = pki.ensure_ca(tmp_path)
    key, csr = _csr(cn="evil-admin")
    cert = pki.sign_device_csr(ca, csr, "1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    parsed = x509.load_pem_x509_certificate(cert.pem)
    assert pki.device_id_from_pem(cert.pem) == "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    assert parsed.public_key().public_numbers() == key.public_key().public_numbers()
    eku = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert cert.fingerprint == pki.fingerprint(cert.pem)
    parsed.verify_directly_issued_by(ca.cert)


def test_garbage_and_forged_csrs_are_refused(tmp_path):
    ca = pki.ensure_ca(tmp_path)
    with pytest.raises(pki.PKIError):
        pki.sign_device_csr(ca, b"not a csr", "x")
    _, good = _csr()
    # Flip a byte inside the signature: the CSR no longer proves key possession.
    der = x509.load_pem_x509_csr(good).public_bytes(serialization.Encoding.DER)
    forged = bytearray(der)
    forged[-5] ^= 0xFF
    try:
        pem = x509.load_der_x509_csr(bytes(forged)).public_bytes(serialization.Encoding.PEM)
    except ValueError:
        return  # unparsable is refused too
    with pytest.raises(pki.PKIError):
        pki.sign_device_csr(ca, pem, "x")


def test_server_certificate_covers_hosts_and_ships_the_ca(tmp_path):
    ca = pki.ensure_ca(tmp_path)
    key_pem, chain = pki.ensure_server_certificate(["gw.example.org"], tmp_path, ca)
    certs = x509.load_pem_x509_certificates(chain)
    assert certs[-1].fingerprint(hashes.SHA256()).hex() == ca.fingerprint
    san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "gw.example.org" in san.get_values_for_type(x509.DNSName)
    # Unchanged hosts: the same certificate is reused.
    assert pki.ensure_server_certificate(["gw.example.org"], tmp_path, ca)[1] == chain
