"""The HTTP side: /metrics, health and readiness, and the landing page."""

from __future__ import annotations

import asyncio
import html

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from . import __version__
from .app import Exporter

EXPORTER_KEY = web.AppKey("exporter", Exporter)

_LANDING = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mailsec-exporter</title></head>
<body>
<h1>mailsec-exporter {version}</h1>
<p>Prometheus exporter for the security of mail servers and mail domains.</p>
<ul>
<li><a href="metrics">/metrics</a>: the results of every configured probe</li>
<li><a href="-/healthy">/-/healthy</a>: liveness</li>
<li><a href="-/ready">/-/ready</a>: readiness (the configuration is loaded)</li>
</ul>
<p>Configuration: <code>{config}</code></p>
</body></html>
"""


async def metrics(request: web.Request) -> web.Response:
    exporter = request.app[EXPORTER_KEY]
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    # Rendering many results is CPU work: keep the event loop (and the probes) running.
    body = await asyncio.to_thread(encoder, exporter.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="Healthy\n")


async def ready(request: web.Request) -> web.Response:
    if request.app[EXPORTER_KEY].ready:
        return web.Response(text="Ready\n")
    return web.Response(status=503, text="Not ready: no configuration loaded\n")


async def landing(request: web.Request) -> web.Response:
    exporter = request.app[EXPORTER_KEY]
    page = _LANDING.format(version=__version__, config=html.escape(exporter.config_path))
    return web.Response(text=page, content_type="text/html")


def build_app(exporter: Exporter) -> web.Application:
    app = web.Application()
    app[EXPORTER_KEY] = exporter
    app.router.add_get("/", landing)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    return app
