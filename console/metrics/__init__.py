"""Prometheus metrics (docs/operations.md, "Metrics").

* ``fleet`` - the fleet gauges computed from the database on scrape (bulk
  queries, cached a few seconds), served by the console at ``/metrics``;
* ``exporter`` - who may scrape (a bearer token, ``CAIRN_METRICS_TOKEN``) and
  the small HTTP exporter the gateway and the Celery workers run on a port of
  their own;
* ``worker`` - the Celery workers' task counters (prometheus_client's
  multiprocess mode under a prefork pool);
* ``views`` / ``urls`` - the console's ``/metrics``.

An adapter like the API: it reads the domain apps, none of them imports it.
"""
