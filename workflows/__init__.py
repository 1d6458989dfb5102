"""Workflow definitions; worker.py registers ``WORKFLOWS``."""

from workflows.scheduled_post import ScheduledPostWorkflow

WORKFLOWS = [ScheduledPostWorkflow]

__all__ = ["WORKFLOWS", "ScheduledPostWorkflow"]
