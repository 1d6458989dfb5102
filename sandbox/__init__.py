"""A local, stateful fake of Meta's Instagram Graph API content-publishing flow, with fault injection."""

from sandbox.app import create_app
from sandbox.config import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID, DEMO_USERNAME, SandboxConfig

__all__ = ["DEMO_ACCESS_TOKEN", "DEMO_IG_USER_ID", "DEMO_USERNAME", "SandboxConfig", "create_app"]
