"""Persistence for the HTTP API: keyword-only functions over a SQLModel session, so routes stay thin.

Blocking (SQLAlchemy): routes call them through ``run_in_threadpool``. Every read that serves a user filters by
owner here, so no caller can forget it.
"""
