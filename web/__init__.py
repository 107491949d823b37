"""Operator surfaces: the live alert wall, the officer task app and the supervisor reports.

A small ASGI application (FastAPI + uvicorn) run by ``nonsite web``.  It keeps a read model by
consuming the incidents, tasks, alerts, camera-status and case-events topics from the beginning,
and writes every officer/operator action as a :class:`contract.Feedback` event.
"""
