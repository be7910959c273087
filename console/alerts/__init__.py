"""Alerts: rules evaluated over the fleet in bulk, alerts with hold-down and
de-duplication on (rule, device), notifications by e-mail and signed webhooks."""
