"""The hub: alliance file, settings and state, fork server, launcher, OIDC, hub in a browser."""
