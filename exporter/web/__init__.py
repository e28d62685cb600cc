"""The HTTP side: routes, /probe, the status page, authentication."""
