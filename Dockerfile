# ocds-live: one image for every process (processor, feed server, simulator, loaders).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY core core
COPY producers producers
COPY streams streams
COPY feed_server feed_server
COPY consumers consumers
COPY ocds_live ocds_live
COPY config config
COPY services services
RUN pip install .
RUN useradd --create-home ocds
USER ocds
EXPOSE 8000
ENTRYPOINT ["ocds-live"]
CMD ["--help"]
