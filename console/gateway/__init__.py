"""The control plane's server side: the gRPC gateway agents connect to, its
PKI, the Redis registry of which gateway holds which device's stream, and the
Celery tasks that deliver commands and roll policies out (docs/protocol.md,
docs/security.md)."""
