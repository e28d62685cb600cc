"""Every metric family and value encoding: results rendered as Prometheus exposition, and the exporter's own metrics."""
