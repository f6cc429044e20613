"""The API fixtures (settings for a migrated database, an `Api` client) for the OIDC tests."""

from tests.api.conftest import api, held_webhook_loop, settings

__all__ = ["api", "held_webhook_loop", "settings"]
