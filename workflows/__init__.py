"""Workflow definitions; worker.py registers ``WORKFLOWS``."""

from workflows.account_tokens import AccountTokensWorkflow
from workflows.scheduled_post import ScheduledPostWorkflow

WORKFLOWS = [ScheduledPostWorkflow, AccountTokensWorkflow]

__all__ = ["WORKFLOWS", "AccountTokensWorkflow", "ScheduledPostWorkflow"]
