"""Signals the control plane can subscribe to (sent after the transaction commits)."""

from django.dispatch import Signal

# sent with device_id=<uuid> once a device's revocation is committed; the
# gateway closes that device's stream.
device_revoked = Signal()
