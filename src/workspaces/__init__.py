"""Workspaces: workspace membership and email invitations."""

__version__ = "0.1.0"
