"""The JSON API, one router per audience (all under ``/api``):

* :mod:`web.api.session` — everyone: login, logout, me, demo logins, health, meta
* :mod:`web.api.wall` — operators and supervisors: incidents, cameras, alerts, live events, reassign
* :mod:`web.api.officer` — officers: tasks, actions, feedback answers, uploads
* :mod:`web.api.files` — evidence files
* :mod:`web.api.reports` — supervisors and operators: closure reports
* :mod:`web.api.zones` — operators: a camera's zones and privacy zones (the zone editor, ``/zones``)

:mod:`web.api.deps` holds what they share, :mod:`web.api.schemas` the request and response models.
"""
