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
# The base URL senders reach the API at, shown in webhook URLs: set it to yours
# (docker run -e TRIGGERS_PUBLIC_URL=https://hooks.example.com ...).
ENV TRIGGERS_PUBLIC_URL=http://localhost:8000
# One JSON object a log line, for log collectors (README "Logs").
ENV TRIGGERS_LOG_FORMAT=json
ENTRYPOINT ["triggers"]
