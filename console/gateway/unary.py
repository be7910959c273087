"""The gateway's unary calls: Enroll (on the enrollment listener, without a
client certificate) and, over mutual TLS, SubmitReports, GetStorageGrant,
LeaseSpool and RenewCertificate. Each maps the request onto one domain call
and its refusals onto gRPC status codes.

``UnaryCalls`` is one facet of ``console.gateway.server.Gateway``; it uses
the gateway's ``db``, ``ca``, ``stats`` and caller authentication.
"""

from __future__ import annotations

import logging

import grpc

from agent.rpc import agent_pb2 as pb
from console.core import pki
from console.fleet import enrollment
from console.gateway import conf, wire
from console.gateway.services import identity, reports
from console.storage import grants

log = logging.getLogger("cairn.gateway")

ENROLL_HOST_FACTS = ("hostname", "os", "os_version", "agent_version", "username", "arch")


class UnaryCalls:
    async def Enroll(self, request, context):
        host = {f: getattr(request.host, f) for f in ENROLL_HOST_FACTS}
        try:
            result = await self.db(
                enrollment.enroll, request.token, host, request.csr_pem, ca=self.ca
            )
        except enrollment.EnrollmentRefused as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except enrollment.EnrollmentUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        log.info("enrolled device %s (%s)", result.device.pk, result.device.hostname)
        return pb.EnrollResponse(
            device_id=str(result.device.pk),
            certificate_pem=result.certificate_pem,
            ca_certificate_pem=result.ca_certificate_pem,
            repository=pb.RepositoryLocation(
                url=result.repository_url,
                endpoint=result.storage_endpoint,
                region=result.storage_region,
            ),
            repository_keys=result.repository_key,
            gateway_address=conf.public_address(),
            org=result.org,
            storage_access=result.storage_access,
        )

    async def SubmitReports(self, request, context):
        device_id = await self._caller(context)
        accepted = []
        for report in request.reports:
            if await self.db(reports.ingest, device_id, report):
                accepted.append(report.idempotency_key)
        self.stats["reports"] += len(accepted)
        return pb.ReportAck(accepted_keys=accepted)

    async def GetStorageGrant(self, request, context):
        device_id = await self._caller(context)
        # restore onto another device: reads of the source's repository, only
        # while this device holds an open access to it
        caller = (
            (grants.grant_restore_read, device_id, request.restore_access)
            if request.restore_access
            else (grants.grant, device_id)
        )
        try:
            urls, expires_at = await self.db(
                *caller,
                request.method,
                list(request.object_keys),
                request.list_prefix,
                request.continuation_token,
            )
        except grants.GrantRefused as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        return pb.StorageGrant(
            urls=[wire.presigned(*u) for u in urls],
            expires_at=wire.timestamp(expires_at),
        )

    async def LeaseSpool(self, request, context):
        device_id = await self._caller(context)
        try:
            slots, issued_at, expires_at = await self.db(
                grants.lease_spool, device_id, request.slots
            )
        except grants.GrantRefused as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        log.info("spool lease of %d slots for %s until %s", len(slots), device_id, expires_at)
        return pb.SpoolLease(
            slots=[
                pb.SpoolSlot(id=i, object=wire.presigned(*obj), target=wire.presigned(*tgt))
                for i, obj, tgt in slots
            ],
            issued_at=wire.timestamp(issued_at),
            expires_at=wire.timestamp(expires_at),
        )

    async def RenewCertificate(self, request, context):
        device_id = await self._caller(context)
        try:
            pem = await self.db(identity.renew, device_id, request.csr_pem, self.ca)
        except pki.PKIError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        log.info("renewed the certificate of %s", device_id)
        return pb.RenewResponse(certificate_pem=pem, ca_certificate_pem=self.ca.cert_pem)
