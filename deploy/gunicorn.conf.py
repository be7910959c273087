"""gunicorn settings shared by the compose file and cairn-console.service
(both run ``gunicorn -c deploy/gunicorn.conf.py console.wsgi``), read from
the environment so the command itself never differs between them."""

import os

bind = [os.environ.get("CAIRN_WEB_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# The TLS proxy in front (deploy/nginx/cairn.conf) connects from this address.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
timeout = 60
graceful_timeout = 30
# Heartbeat files in memory, not on a possibly read-only or slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
