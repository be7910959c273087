"""The organisation-key recovery kit: a printable PDF (``manage.py
recovery_kit``).

It holds the organisation key **wrapped by a recovery passphrase**
(agent/engine/sealed.py: Argon2id, AES-256-GCM) as a text block, its
fingerprint, and the exact steps to restore any PC's files with the agent
CLI alone. Wrapped rather than split into shares: one sheet in a safe plus a
passphrase kept elsewhere (two things, two places) is what a small team can
keep and follow in an emergency; the block is useless without the
passphrase, and the steps need no other tool than ``cairn-agent``. Shares
would need several custodians to be found on the day.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from django.conf import settings
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from agent.engine.sealed import armour
from console.audit.services import Actor, record
from console.storage import recovery, targets

MONO = "Courier"


def steps(repo_base: str, endpoint: str) -> list[str]:
    return [
        "1. On any computer with Python 3.11, install the agent from the Cairn release:",
        "     python3 -m venv cairn && cairn/bin/pip install cairn-<version>.tar.gz",
        "2. Copy the SEALED BLOCK below (BEGIN to END lines) into a text file kit.txt,",
        "   or extract it from this PDF: pdftotext kit.pdf kit.txt",
        "3. Unwrap the organisation key (asks for the recovery passphrase):",
        "     cairn/bin/cairn-agent unwrap-key kit.txt --output org.key",
        "   It prints the key's fingerprint: it must be the FINGERPRINT printed here.",
        "4. Find the device's repository: each PC has its own, named by its device id",
        "   (list the bucket, or run `cairn-agent status` on the PC), under:",
        f"     {repo_base}/",
        "5. Restore with the storage credentials (S3 access key and secret):",
        f"     export CAIRN_S3_ENDPOINT={endpoint or '<S3 endpoint URL>'}",
        "     export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...",
        "     export CAIRN_KEY_FILE=org.key",
        f"     export CAIRN_REPOSITORY={repo_base}/<device id>",
        "     cairn/bin/cairn-agent snapshots",
        "     cairn/bin/cairn-agent restore latest --target /restore/here",
        "6. Destroy org.key afterwards (shred -u org.key): it opens every PC's backups.",
    ]


def _repo_base() -> tuple[str, str]:
    t = targets.target()
    if t.kind == "s3":
        base = f"s3://{t.bucket}/{t.prefix}" if t.prefix else f"s3://{t.bucket}"
        return base, t.agent_endpoint
    return str(Path(t.local_dir) / t.prefix), ""


def render(sealed: bytes, fingerprint: str) -> bytes:
    repo_base, endpoint = _repo_base()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=1)
    c.setTitle("Cairn organisation-key recovery kit")
    width, height = A4
    x, y = 18 * mm, height - 20 * mm
    c.setFont("Helvetica-Bold", 16)
    c.drawString(x, y, "Cairn organisation-key recovery kit")
    y -= 8 * mm
    c.setFont("Helvetica", 9.5)
    today = dt.date.today().isoformat()
    for line in (
        f"Organisation: {settings.CAIRN_ORG}    Printed: {today}    Console: {settings.GATEWAY_PUBLIC_ADDRESS}",
        "This sheet holds the key that opens EVERY PC's backups, sealed by the recovery passphrase",
        "(Argon2id + AES-256-GCM). Keep it in a safe; keep the passphrase somewhere else.",
    ):
        c.drawString(x, y, line)
        y -= 5 * mm
    y -= 2 * mm
    c.setFont("Helvetica-Bold", 11)
    c.drawString(x, y, "FINGERPRINT: ")
    c.setFont(MONO + "-Bold", 11)
    c.drawString(x + 30 * mm, y, fingerprint)
    y -= 9 * mm
    c.setFont("Helvetica-Bold", 11)
    c.drawString(x, y, "Emergency restore without the console")
    y -= 6 * mm
    c.setFont(MONO, 8.6)
    for line in steps(repo_base, endpoint):
        c.drawString(x, y, line)
        y -= 4.3 * mm
    y -= 4 * mm
    c.setFont("Helvetica-Bold", 11)
    c.drawString(x, y, "SEALED BLOCK")
    y -= 6 * mm
    c.setFont(MONO, 9.5)
    for line in armour(sealed).splitlines():
        c.drawString(x, y, line)
        y -= 4.6 * mm
    c.showPage()
    c.save()
    return buf.getvalue()


def recovery_kit(actor: Actor, passphrase: str) -> tuple[bytes, str]:
    """The kit's PDF and the key's fingerprint; audited (never the key)."""
    sealed, fingerprint = recovery.sealed_org_key(passphrase)
    pdf = render(sealed, fingerprint)
    record(
        actor,
        "keys.recovery_kit",
        target_type="keys",
        target_repr="organisation key recovery kit",
        after={"fingerprint": fingerprint},
    )
    return pdf, fingerprint
