"""The HTTP side: /metrics, /probe, the status page, health, readiness and reload."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from ..config import ConfigError
from ..config.web import WebConfig
from ..metrics.gzipjoin import deflate, gzip_stream
from ..service.exporter import Exporter
from .auth import auth_middleware
from .probe import answer_probe
from .server import MAX_BODY_BYTES
from .reports import register_receiver
from .status import render_status_html, status_document

EXPORTER_KEY = web.AppKey("exporter", Exporter)
LIFECYCLE_KEY = web.AppKey("lifecycle", bool)


async def metrics(request: web.Request) -> web.StreamResponse:
    """The exporter's own metrics, then every result's, in the text format 0.0.4 that every
    Prometheus reads; gzip-compressed when the scraper accepts it (Prometheus does). The
    results' text is joined, and compressed, per bucket of results and again only where a
    result changed (metrics/exposition.py): a scrape mostly sends bytes it sent before."""
    exporter = request.app[EXPORTER_KEY]
    own = generate_latest(exporter.registry)
    gzip = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    stores = exporter.results.exposition(gzip)
    headers = {"Content-Type": CONTENT_TYPE_PLAIN_0_0_4, "Vary": "Accept-Encoding"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
        parts = gzip_stream([deflate([own])] + [store.deflated() for store in stores])
    else:
        parts = [own, *(chunk for store in stores for chunk in store.chunks)]
    response = web.StreamResponse(headers=headers)
    response.content_length = sum(len(part) for part in parts)
    await response.prepare(request)
    for part in parts:
        await response.write(part)
    await response.write_eof()
    return response


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header value lets the answer be gzip (RFC 9110 §12.5.3):
    gzip (or x-gzip, or else `*`) listed with a weight above 0."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[coding.lower()] = weight
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


async def probe(request: web.Request) -> web.Response:
    return await answer_probe(request.app[EXPORTER_KEY], request)


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="Healthy\n")


async def ready(request: web.Request) -> web.Response:
    if request.app[EXPORTER_KEY].ready:
        return web.Response(text="Ready\n")
    return web.Response(status=503, text="Not ready: no configuration loaded\n")


LIFECYCLE_DISABLED = ("Lifecycle API is not enabled: start the exporter with --web.enable-lifecycle "
                      "to reload over HTTP. SIGHUP always reloads.\n")


async def reload(request: web.Request) -> web.Response:
    """POST /-/reload: as SIGHUP, when --web.enable-lifecycle allows it (as in Prometheus);
    an invalid file answers 500 with the reason. The file is parsed off the event loop."""
    if not request.app[LIFECYCLE_KEY]:
        return web.Response(status=403, text=LIFECYCLE_DISABLED)
    try:
        config = await request.app[EXPORTER_KEY].reload_off_loop()
    except ConfigError as exc:
        return web.Response(status=500, text=f"config not reloaded, the previous one keeps running: {exc}\n")
    return web.Response(text=f"config reloaded: {len(config.targets)} targets, {len(config.domains)} domains\n")


async def status_page(request: web.Request) -> web.Response:
    document = status_document(request.app[EXPORTER_KEY], time.time())
    return web.Response(text=render_status_html(document), content_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


async def status_json(request: web.Request) -> web.Response:
    return web.json_response(status_document(request.app[EXPORTER_KEY], time.time()))


def build_app(exporter: Exporter, web_config: WebConfig = WebConfig(), *, lifecycle: bool = False,
              outer_middlewares: tuple[Middleware, ...] = ()) -> web.Application:
    """The routes; `lifecycle` enables POST /-/reload; `outer_middlewares` run before
    authentication (the connection guard of web/server.py)."""
    middlewares = list(outer_middlewares)
    if web_config.basic_auth_users:
        middlewares.append(auth_middleware(web_config.basic_auth_users, web_config.public_paths))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[EXPORTER_KEY] = exporter
    app[LIFECYCLE_KEY] = lifecycle
    app.router.add_get("/", status_page)
    app.router.add_get("/api/v1/status", status_json)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/probe", probe)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    register_receiver(app, exporter)      # the TLS-RPT receiver, on its own listen address
    return app
