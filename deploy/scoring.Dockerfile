# The scoring service's image for docker-compose.yml (docs/serving.md), built from the repository's root: the guide's
# locked packages, which hold MLflow and the model's own (scikit-learn), Debian's nginx, and the follower.
FROM python:3.11.14-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/
RUN pip install --no-cache-dir --no-deps -r /tmp/requirements.txt \
    && useradd --system --uid 10001 --no-create-home scoring
WORKDIR /app
COPY deploy/follower.py .
# nginx and the instances listen on ports above 1024 and write only to --folder (/tmp/scoring): no root needed.
USER scoring
EXPOSE 8080 8090
