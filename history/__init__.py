"""The system of record: every case, task and step of the audit log in a database, fed from Kafka.

Kafka carries the events; this package keeps them for as long as the law asks and answers the
questions people ask of them (lists, searches, case histories, the closure figures):

* :mod:`history.schema` — the tables; :mod:`history.database` — open SQLite or PostgreSQL, migrate
  (Alembic, ``history/migrations``);
* :mod:`history.facts` — what the statistics count about one case (the one definition);
* :mod:`history.writer` — records in, idempotently by ids and offsets; :mod:`history.recorder` — the
  Kafka consumer that feeds it;
* :mod:`history.queries` — cases, tasks and audit logs out; :mod:`history.statistics` — the figures;
* :mod:`history.custody` — legal holds and the audit steps the record writes itself; :mod:`history.retention`
  — which evidence files the retention rule deletes, and deleting them.
"""
