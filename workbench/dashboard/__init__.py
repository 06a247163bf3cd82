"""The Dash dashboard over the run store and the interpretability artifacts (read only)."""
from workbench.dashboard.app import create_app

__all__ = ["create_app"]
