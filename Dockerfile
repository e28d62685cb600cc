FROM python:3.11-slim

RUN useradd --system --uid 10054 --home-dir /nonexistent --shell /usr/sbin/nologin mailsec

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install --no-cache-dir . && rm -rf /src

COPY config.example.yml /etc/mailsec-exporter/config.yml

USER mailsec
EXPOSE 10054
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:10054/-/healthy', timeout=4).status != 200)"
ENTRYPOINT ["mailsec-exporter"]
CMD ["--config.file", "/etc/mailsec-exporter/config.yml", "--web.listen-address", ":10054"]
