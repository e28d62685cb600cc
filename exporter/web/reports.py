"""The TLS-RPT receiver (RFC 8460 §3): POSTs of application/tlsrpt+gzip or +json.

Senders post from the Internet, so the receiver is an application of its own on its own
listen address (`reports.http.listen_address`), never the one that serves /metrics, with
its own TLS and basic auth (`reports.http.web_config_file`, in the --web.config.file
format). It serves one path and nothing else. A body is refused by its Content-Length
before it is read, and read no further than the limit when there is none.

The listen address and the web config are read when the exporter starts (a change needs
a restart); the path and the limits are read from the current config at each request.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ..config.web import WebConfig, load_web_config
from ..logfmt import with_fields
from ..reports.common import RejectReason
from ..service.exporter import Exporter
from .auth import auth_middleware, ssl_context

log = logging.getLogger(__name__)

RECEIVER_EXPORTER_KEY = web.AppKey("receiver_exporter", Exporter)
_CONTENT_TYPES = {"application/tlsrpt+gzip": True, "application/tlsrpt+json": False}   # -> gzipped
_CHUNK = 64 * 1024


async def receive_tlsrpt(request: web.Request) -> web.Response:
    exporter = request.app[RECEIVER_EXPORTER_KEY]
    service = exporter.reports
    settings = service.settings        # None on every shard but the first
    if settings is None or settings.http is None or service.ledger is None:
        return web.Response(status=404, text="no TLS-RPT receiver configured\n")
    if request.path != settings.http.path:
        return web.Response(status=404, text="not found\n")
    gzipped = _CONTENT_TYPES.get(request.content_type)
    if gzipped is None:
        service.reject_request(RejectReason.CONTENT_TYPE, f"content type {request.content_type[:80]!r}")
        return web.Response(status=415, text="send application/tlsrpt+gzip or application/tlsrpt+json\n")
    limit = settings.limits.max_compressed_bytes
    if request.content_length is not None and request.content_length > limit:
        service.reject_request(RejectReason.TOO_LARGE, f"Content-Length {request.content_length}")
        return web.Response(status=413, text=f"a report may have at most {limit} bytes\n")
    body = bytearray()
    while chunk := await request.content.read(_CHUNK):
        body += chunk
        if len(body) > limit:
            service.reject_request(RejectReason.TOO_LARGE, f"more than {limit} bytes without Content-Length")
            return web.Response(status=413, text=f"a report may have at most {limit} bytes\n")
    outcome = await service.ingest_tlsrpt_body(bytes(body), gzipped)
    if outcome.accepted or outcome.reason is RejectReason.DUPLICATE:
        return web.Response(status=200, text="counted\n" if outcome.accepted else "counted before\n")
    status = 413 if outcome.reason is RejectReason.TOO_LARGE else 400
    return web.Response(status=status, text=f"report rejected: {outcome.reason.value}\n")


def build_receiver_app(exporter: Exporter, web_config: WebConfig = WebConfig()) -> web.Application:
    middlewares = []
    if web_config.basic_auth_users:
        middlewares.append(auth_middleware(web_config.basic_auth_users, frozenset()))
    app = web.Application(middlewares=middlewares)
    app[RECEIVER_EXPORTER_KEY] = exporter
    app.router.add_post("/{tail:.*}", receive_tlsrpt)
    return app


async def start_receiver(exporter: Exporter) -> web.AppRunner | None:
    """Start the receiver on its listen address, if the config has one (and this is shard 0)."""
    settings = exporter.reports.settings
    if settings is None or settings.http is None:
        return None
    receiver = settings.http
    web_config = load_web_config(receiver.web_config_file) if receiver.web_config_file else WebConfig()
    runner = web.AppRunner(build_receiver_app(exporter, web_config), access_log=None, handle_signals=False)
    await runner.setup()
    tls = ssl_context(web_config.tls) if web_config.tls else None
    host, port = receiver.listen_address
    await web.TCPSite(runner, host, port, ssl_context=tls).start()
    for address in runner.addresses:   # not "listening on": that line names the exporter's own address
        log.info("TLS-RPT receiver started", extra=with_fields(
            address="%s:%s" % address[:2], scheme="https" if tls else "http", path=receiver.path,
            basic_auth=bool(web_config.basic_auth_users)))
    return runner


def register_receiver(app: web.Application, exporter: Exporter) -> None:
    """Start the receiver with `app` and stop it with `app`."""
    runners: list[web.AppRunner] = []      # the started app is frozen: the runner is kept here

    async def on_startup(app: web.Application) -> None:
        runner = await start_receiver(exporter)
        if runner is not None:
            runners.append(runner)

    async def on_cleanup(app: web.Application) -> None:
        while runners:
            await runners.pop().cleanup()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
