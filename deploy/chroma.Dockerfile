# A stand-in for chromadb/chroma:VERSION where no image registry can be reached (deploy/local-images.sh): the
# Chroma server of the chromadb release requirements.lock pins, installed from the lock, on the same port,
# path and heartbeat; `command: run --path /data --host 0.0.0.0 --port 8000` as compose gives the official one.
FROM local/python:3.11-slim
WORKDIR /src
COPY pyproject.toml requirements.lock ./
COPY deploy/lock_subset.py ./deploy/
COPY deploy/build-extras/ca-certificates.crt /tmp/ca-certificates.crt
RUN python -m venv /opt/chroma \
 && python deploy/lock_subset.py requirements.lock pyproject.toml --package chromadb > /tmp/chroma.txt \
 && PIP_CERT=/tmp/ca-certificates.crt /opt/chroma/bin/pip install --no-cache-dir --no-deps --require-hashes \
      -r /tmp/chroma.txt \
 && rm -rf /src /tmp/chroma.txt /tmp/ca-certificates.crt
ENV ANONYMIZED_TELEMETRY=False
WORKDIR /
EXPOSE 8000
ENTRYPOINT ["/opt/chroma/bin/chroma"]
CMD ["run", "--path", "/data", "--host", "0.0.0.0", "--port", "8000"]
