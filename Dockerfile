FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY forewarn forewarn
COPY connectors connectors
COPY detectors detectors
COPY outreach outreach
COPY flows flows
COPY config config
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["forewarn"]
CMD ["demo"]
