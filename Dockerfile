# One image for every Fairlane service: `fairlane worker`, `fairlane api`, `fairlane router`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user with a fixed uid. The directories the compose file mounts
# volumes on are created here, owned by it, so fresh named volumes inherit that.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/fairlane fairlane \
    && install -d -o fairlane -g fairlane /var/lib/fairlane /var/lib/fairlane-tokens

WORKDIR /src
COPY . .
RUN pip install . && rm -rf /src

WORKDIR /home/fairlane
USER fairlane
EXPOSE 8200 8300
ENTRYPOINT ["fairlane"]
CMD ["--help"]
