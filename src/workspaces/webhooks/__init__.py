"""Webhooks: endpoints (of a workspace or of the instance), and the delivery of events to them
per Standard Webhooks 1.0."""
