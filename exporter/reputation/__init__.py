"""Reputation: the addresses and names of the watched domains and targets, checked
against DNS blocklists (DNSBL/RBL) on the exporter's own schedule."""
