"""The gateway's side of each call, between the thin gRPC handlers
(console/gateway/server.py) and the domain: stream connections and
heartbeats, the caller's identity, report ingestion, the effective policy it
sends, and command delivery (the transport behind console/jobs/dispatch.py).
Domain rules live in the domain apps. Everything here is synchronous Django
ORM code; the async server runs it in a thread pool."""
