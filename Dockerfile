FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY triggers triggers
COPY workflows workflows
COPY activities activities
COPY workers workers
COPY api api
COPY migrations migrations
RUN pip install --no-cache-dir .
ENV TRIGGERS_API_HOST=0.0.0.0
ENTRYPOINT ["triggers"]
