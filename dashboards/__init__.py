"""Deployment entry points for the dashboard (the app itself lives in `workbench.dashboard`)."""
