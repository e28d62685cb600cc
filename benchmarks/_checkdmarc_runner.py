"""Runs checkdmarc on domains and prints, as JSON, what it found and how long it took.

Run with the Python of checkdmarc's own virtual environment (dns_checks.py does), never
imported by the exporter's code: `python _checkdmarc_runner.py NAMESERVER DOMAIN_FILE MODE`.
MODE `each` checks the domains one by one (a time per domain, the findings); `batch`
checks them all in one `check_domains` call (the total time only).

A guard makes every socket refuse a destination outside 127.0.0.0/8 and every name
lookup through the system resolver: checkdmarc fetches MTA-STS policies and BIMI logos
over HTTPS, by host name, and must never leave the machine.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import time


def _require_loopback(host: object) -> None:
    try:
        address = ipaddress.ip_address(str(host))
    except ValueError:
        raise OSError(f"loopback guard: {host!r} is not an IP address") from None
    if not address.is_loopback:
        raise OSError(f"loopback guard: {host} is outside 127.0.0.0/8")


class _LoopbackSocket(socket.socket):
    def connect(self, address):
        _require_loopback(address[0])
        return super().connect(address)

    def connect_ex(self, address):
        _require_loopback(address[0])
        return super().connect_ex(address)

    def sendto(self, data, *args):
        _require_loopback(args[-1][0])
        return super().sendto(data, *args)


_system_getaddrinfo = socket.getaddrinfo


def _loopback_getaddrinfo(host, *args, **kwargs):
    if host is not None:
        _require_loopback(host)
    return _system_getaddrinfo(host, *args, **kwargs)


socket.socket = _LoopbackSocket
socket.getaddrinfo = _loopback_getaddrinfo

import checkdmarc  # noqa: E402 - after the guard, so that nothing it sets up escapes it


def findings(result: dict) -> list[list[str]]:
    """[severity, section, message] of every error and warning in a check_domains result."""
    found = []
    for section, value in result.items():
        if not isinstance(value, dict):
            continue
        if value.get("error"):
            found.append(["error", section, str(value["error"])])
        found.extend(["warning", section, str(w)] for w in value.get("warnings", []))
    return found


def main() -> None:
    nameserver, domain_file, mode = sys.argv[1:4]
    domains = [line.strip() for line in open(domain_file) if line.strip()]
    options = {"nameservers": [nameserver], "timeout": 5.0}
    if mode == "batch":
        started = time.perf_counter()
        checkdmarc.check_domains(domains, **options)
        print(json.dumps({"seconds": time.perf_counter() - started}))
        return
    report = {}
    for domain in domains:
        started = time.perf_counter()
        result = checkdmarc.check_domains([domain], **options)
        report[domain] = {"seconds": time.perf_counter() - started, "findings": findings(result)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
