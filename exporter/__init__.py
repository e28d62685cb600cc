"""mailsec-exporter: a Prometheus exporter for mail server and mail domain security."""

__version__ = "0.1.0"
