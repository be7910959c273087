"""Provision N simulated devices for the load simulator (tests/load/sim.py).

Creates a group with a policy assigned, N devices in it (bulk inserts), a
key pair and CA-signed certificate per device, and marks every device as
already running the current revision; writes a bundle (JSON lines: a header
with the CA certificate and revision, then one device per line).

    python -m tests.load.provision --agents 1000 --bundle var/load/bundle.jsonl
    python -m tests.load.provision --bump      # save a new policy revision (rollout)

Runs with the console's settings (DATABASE_URL, CAIRN_VAR_DIR for the CA).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

GROUP = "load-test"
POLICY = "load-test-policy"


def _make(args):
    ca_key_pem, ca_cert_pem, ids = args
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from console.core import pki

    ca = pki.CA(
        key=serialization.load_pem_private_key(ca_key_pem, None),
        cert=x509.load_pem_x509_certificate(ca_cert_pem),
    )
    out = []
    for device_id in ids:
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sim")]))
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )
        cert = pki.sign_device_csr(ca, csr, device_id)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        out.append((device_id, key_pem.decode(), cert.pem.decode(), cert.fingerprint))
    return out


def provision(n: int, bundle: str) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.db import transaction

    from console.audit.services import SYSTEM
    from console.core import pki
    from console.fleet.models import Device, DeviceGroup
    from console.policies.models import Policy
    from console.policies.services import assign_policy, create_policy, rollout_devices

    t0 = time.monotonic()
    ca = pki.ensure_ca()
    ca_key_pem = (settings.PKI_DIR / pki.CA_KEY).read_bytes()
    ids = [str(uuid.uuid4()) for _ in range(n)]
    chunks = [ids[i : i + 500] for i in range(0, n, 500)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        made = [
            row
            for part in pool.map(_make, [(ca_key_pem, ca.cert_pem, c) for c in chunks])
            for row in part
        ]
    t_certs = time.monotonic() - t0
    group, _ = DeviceGroup.objects.get_or_create(name=GROUP)
    policy = Policy.objects.filter(name=POLICY).first()
    if policy is None:
        spec = {
            "sources": {
                "linux": ["/nonexistent-load-test"],
                "windows": ["{Documents}"],
                "macos": [],
            },
            "schedule": {"every_hours": 24},
        }
        policy = create_policy(SYSTEM, POLICY, spec)
        assign_policy(SYSTEM, policy, group)
    with transaction.atomic():
        Device.objects.bulk_create(
            [
                Device(id=d, hostname=f"sim-{i:05d}", os="linux", cert_fingerprint=fp)
                for i, (d, _, _, fp) in enumerate(made)
            ],
            batch_size=1000,
        )
        Device.groups.through.objects.bulk_create(
            [Device.groups.through(device_id=d, devicegroup_id=group.pk) for d in ids],
            batch_size=1000,
        )
    for i in range(0, n, 2000):
        rollout_devices(ids[i : i + 2000], send_commands=False)
    from django.db.models import F

    Device.objects.filter(pk__in=ids).update(applied_hash=F("effective_hash"))
    revision = Device.objects.filter(pk=ids[0]).values_list("effective_hash", flat=True).first()
    os.makedirs(os.path.dirname(os.path.abspath(bundle)), exist_ok=True)
    with open(bundle, "w") as f:
        f.write(json.dumps({"ca": ca.cert_pem.decode(), "revision": revision, "count": n}) + "\n")
        for d, key_pem, cert_pem, _ in made:
            f.write(json.dumps({"id": d, "key": key_pem, "cert": cert_pem}) + "\n")
    os.chmod(bundle, 0o600)
    return {"devices": n, "certs_s": round(t_certs, 1), "total_s": round(time.monotonic() - t0, 1)}


def bump() -> dict:
    """A new revision of the load policy: the rollout to measure."""
    import django

    django.setup()
    from console.audit.services import SYSTEM
    from console.policies.models import Policy
    from console.policies.services import update_policy

    policy = Policy.objects.get(name=POLICY)
    spec = dict(policy.current_revision.spec)
    spec["schedule"] = {
        **spec["schedule"],
        "every_hours": 1 + (spec["schedule"]["every_hours"] % 23),
    }
    t0 = time.time()
    update_policy(SYSTEM, policy, policy.name, spec, comment="load test bump")
    policy.refresh_from_db()
    return {
        "hash": policy.current_revision.hash,
        "saved_at": t0,
        "save_s": round(time.time() - t0, 2),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--bundle", default="var/load/bundle.jsonl")
    p.add_argument("--bump", action="store_true")
    args = p.parse_args(argv)
    result = bump() if args.bump else provision(args.agents, args.bundle)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
