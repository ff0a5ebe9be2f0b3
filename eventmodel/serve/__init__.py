"""``eventmodel serve``: the running model's face — a read-only JSON API, Prometheus
metrics, Kubernetes probes and a page for people, over one followed projection.

An outer layer like the CLI: it may import ``projections``; nothing in the core
imports it. Modules: ``service`` (restore, follow, sample the lag), ``api`` (JSON
routes), ``metrics`` (a collector that reads the model at scrape time), ``access``
(bearer token, session cookie, redaction), ``sessions`` (sessions and the guess
throttle), ``limits`` (what a request, client and connection may cost; the replay
gate), ``workers`` (past-point models and their answers built in worker processes),
``views`` (rows of the answers), ``app`` (the Starlette application), ``page/``
(static files).
"""
