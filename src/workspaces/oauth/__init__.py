"""Sign in with Workspaces: an OpenID Connect provider, and service credentials for products."""
