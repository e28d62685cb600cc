"""The running exporter: the scheduler, its limits and result stores, the guard of on-demand requests, sharding."""
