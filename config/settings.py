"""Every knob Fairlane has, read from environment variables (prefix ``FAIRLANE_``).

One class, constructed at each entry point (CLI command, worker, API and router
factories) and passed down explicitly, so nothing reads the environment behind
the caller's back. The embedded default needs no variable at all: everything lives
under ``data_dir`` and listens on loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.channels import (
    ChannelResolver,
    DeclaredChannel,
    validate_channel_ids,
)
from config.databases import DecisionDatabase, validate_database_ids
from config.secret_files import inline_or_file
from config.targets import (
    GATEWAY,
    DeclaredTarget,
    FlagdFileTarget,
    RoutingTarget,
    TargetResolver,
    validate_target_ids,
)
from store.artifacts import ArtifactStore


class Settings(BaseSettings):
    """Fairlane's settings; see README "Settings" for the variable names."""

    model_config = SettingsConfigDict(env_prefix="FAIRLANE_", extra="ignore")

    data_dir: Path = Path("data")
    log_format: Literal["json", "console"] = "json"
    log_level: str = "info"

    # Temporal. `temporal_embedded` makes `fairlane up` start the dev server itself;
    # pointing at any other cluster or Temporal Cloud is only a matter of these fields.
    temporal_embedded: bool = True
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    temporal_tls_ca: Path | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_api_key: SecretStr | None = None
    temporal_ui_port: int = 8233
    # The embedded dev server's Web UI. Off by default: the dev server cannot make its UI
    # read-only (no flag, and it ignores TEMPORAL_DISABLE_WRITE_ACTIONS) and the UI asks
    # for no credential, so anyone who reaches it can terminate, reset or signal an
    # incident. Turn it on only where everyone who can reach the port may do that.
    temporal_ui: bool = False
    temporal_ui_url: str = "http://127.0.0.1:8233"
    task_queue: str = "fairlane-incidents"
    # Model watches (alerts, the drift monitor) and the activities that contain a model
    # run on a queue of their own, with their own worker slots, so that in an alert storm
    # containment never waits behind incidents' bookkeeping. Unset: `<task_queue>-containment`.
    containment_task_queue: str | None = None

    # Fairlane's own tables (audit trail, model registry). SQLite under data_dir
    # unless DATABASE_URL (or FAIRLANE_DATABASE_URL) names e.g. a Postgres server.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("FAIRLANE_DATABASE_URL", "DATABASE_URL")
    )

    # The API.
    api_host: str = "127.0.0.1"
    api_port: int = 8200
    api_url: str = "http://127.0.0.1:8200"
    tokens_file: Path | None = None
    api_token: SecretStr | None = None  # the CLI's credential
    # Request bodies larger than this are refused with 413 before they are read (and
    # before authentication); alert deliveries, whole Alertmanager groups, get their own.
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_alert_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # Processes `fairlane api` serves with, on one port (uvicorn workers): one answers
    # at the speed of one core. Above 1, the API's metrics are kept in
    # `<data_dir>/api-metrics` and summed over the processes at each scrape (api/processes.py).
    api_workers: int = Field(default=1, ge=1, le=64)

    # Model artifacts are opened only by name from this directory (default
    # `<data_dir>/artifacts`), only when their sha256 matches the registry's record, and
    # only as skops unless pickles are explicitly allowed (store/artifacts.py): a pickle
    # runs code when it loads, so allowing them lets whoever can write here run code in
    # the worker and the router.
    artifacts_dir: Path | None = None
    allow_pickle_artifacts: bool = False

    # The web console's single sign-on (console/): OpenID Connect, authorization code flow
    # with PKCE, against any standard provider. Without `oidc_issuer` the console only
    # shows its sign-in page saying sign-in is not configured. `oidc_roles_claim` names the
    # ID-token claim holding the person's roles (a list, or a space-separated string);
    # `oidc_role_map` (JSON) maps the provider's values to Fairlane's roles; when it is
    # set only its keys grant roles, when empty the claim's values must be Fairlane role
    # names themselves. The redirect URI to register at the provider is
    # `<console_url>/console/auth/callback` (`console_url` below).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_roles_claim: str = "roles"
    oidc_role_map: dict[str, str] = Field(default_factory=dict)
    oidc_scopes: str = "openid profile"
    # Session cookies are signed with `console_session_secret` (or else a key file made
    # once in the data dir, mode 0600). A session ends after `console_idle_timeout_s`
    # without a request, and `console_absolute_timeout_s` after sign-in in any case.
    console_session_secret: SecretStr | None = None
    console_session_secret_file: Path | None = None
    console_idle_timeout_s: int = Field(default=30 * 60, ge=10)
    console_absolute_timeout_s: int = Field(default=12 * 3600, ge=60)

    # The reference model router.
    router_host: str = "127.0.0.1"
    router_port: int = 8300
    router_url: str = "http://127.0.0.1:8300"
    router_database_url: str | None = None
    router_token: SecretStr | None = None

    # Routing targets: the only places a worker sends a router credential. A manifest
    # names one by id (`router: {target: …}`), never a URL. JSON, e.g.
    # {"prod-gw": {"url": "https://gw.internal", "token_file": "/run/secrets/gw"}}.
    # `gateway` (the reference router above, with `router_token`) is always declared
    # unless this map declares it itself. A flagd flag file is a target too:
    # {"flags": {"kind": "flagd-file", "path": "/etc/flagd/routes.flagd.json"}}.
    routing_targets: dict[str, DeclaredTarget] = Field(default_factory=dict)

    # A folder of the team's own playbooks (<name>.yaml), besides the shipped ones.
    playbooks_dir: Path | None = None

    # Notifications: a webhook for `notify` steps; without one, a log sink.
    notify_webhook_url: str | None = None
    # How long one webhook call may take before the attempt fails and Temporal retries it.
    notify_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Notification channels: the only places a worker sends a message credential. A
    # playbook names one by kind and id (`{kind: email, id: legal-team}`), never an
    # address. JSON, e.g. {"legal-team": {"kind": "email", "host": "smtp.internal",
    # "username": "fairlane", "password": "…", "sender": "fairlane@corp", "to": [...]},
    # "incident-room": {"kind": "slack", "webhook_url": "https://hooks.slack.com/…"},
    # "oncall": {"kind": "pagerduty", "routing_key": "…"}} (config/channels.py). Each
    # secret (`password`, `webhook_url`, `routing_key`) may instead be a file the operator
    # mounted, `<field>_file` (absolute path), read once when a worker starts: a missing,
    # unreadable or empty file stops it, naming the channel and the field; a secret given
    # both ways or a relative path is refused here, in every process.
    notification_channels: dict[str, DeclaredChannel] = Field(default_factory=dict)
    # The web console's public base URL, where browsers reach the API that serves it:
    # every message links into it (the incident's page, or its sign-off page), sign-in
    # redirects back to it, and `https://` makes the session cookies `Secure`. Unset:
    # the API's URL.
    console_url: str | None = Field(default=None, pattern=r"^https?://")
    # Slack's signing secret: every request Slack posts back (button clicks) must carry
    # its v0 HMAC-SHA256 signature, with a timestamp within the tolerance of now.
    slack_signing_secret: SecretStr | None = None
    slack_signing_secret_file: Path | None = None  # or from this file, read at start-up
    slack_signature_tolerance_s: int = Field(default=300, ge=1, le=3600)

    # External alerts: the labels that name an alert's model (first present wins), and
    # an optional HMAC secret every alert POST must then sign, with a timestamp, over
    # its body (alerts/signature.py). A signature is good for `alert_signature_tolerance_s`
    # either side of now and only once. Legacy body-only signatures (no timestamp, so
    # replayable) are refused unless `alert_hmac_allow_legacy` is set.
    alert_model_labels: list[str] = Field(default=["fairlane_model", "model"], min_length=1)
    alert_hmac_secret: SecretStr | None = None
    alert_signature_tolerance_s: int = Field(default=300, ge=1)
    alert_hmac_allow_legacy: bool = False

    # The audit trail's signed checkpoints (audit/checkpoints.py). The Ed25519 key comes
    # from `trail_signing_key` (PEM or base64 seed) or else the key file, generated once
    # (mode 0600); its public half is exported to `trail_public_key_file`. Checkpoints
    # are appended to `trail_checkpoint_dir`/checkpoints.jsonl, at every phase change
    # and sign-off, every `..._every_records` records, and on the first append after
    # `..._every_seconds` without one.
    trail_signing_key: SecretStr | None = None
    # Payload encryption (stack/codec.py): AES-GCM over everything Fairlane puts in
    # Temporal. Keys: a JSON map of key id to base64 of 32 bytes and the current id, or
    # else a key file in the data dir, created once.
    payload_encryption: bool = True
    payload_keys: dict[str, SecretStr] | None = None
    payload_key_current: str | None = None
    payload_key_file: Path | None = None
    trail_signing_key_file: Path | None = None
    trail_public_key_file: Path | None = None
    trail_checkpoint_dir: Path | None = None
    trail_checkpoint_every_records: int = Field(default=1000, ge=1)
    trail_checkpoint_every_seconds: float = Field(default=60.0, gt=0)

    # Human decisions (sign-offs, canary controls, stand-downs) are signed by the API with
    # an Ed25519 key only the API holds (`decision_signing_key`, PEM or base64 seed, or
    # else the key file, generated once, mode 0600); its public half is exported to
    # `decision_public_key_file`, which is all a worker reads (or `decision_public_key`,
    # PEM or base64 of the raw 32 bytes). An incident refuses a decision issued more than
    # `decision_max_age_s` before it arrives.
    decision_signing_key: SecretStr | None = None
    decision_signing_key_file: Path | None = None
    decision_public_key: str | None = None
    decision_public_key_file: Path | None = None
    decision_max_age_s: int = Field(default=300, ge=1)

    # The API looks this often (seconds; 0: never) for incidents terminated, cancelled or
    # timed out from outside Fairlane, and records each on the trail (incidents/outside.py).
    outside_end_check_s: float = Field(default=30.0, ge=0)

    # Prometheus. With `prometheus_url` set, workers also offer the "prometheus" metrics
    # provider (per-group counters scraped from the router) beside the decision log.
    # With `worker_metrics_address` (host:port) set, a worker serves Temporal's SDK
    # metrics and its own fairlane_* counters there, at /metrics.
    prometheus_url: str | None = None
    worker_metrics_address: str | None = None
    # Prometheus servers a manifest's decision source may name (`decisions: {kind:
    # prometheus, server: <id>}`), id -> base URL; `prometheus_url` is declared as `prometheus`.
    prometheus_servers: dict[str, str] = Field(default_factory=dict)

    # Decision sources. Databases a manifest may read decisions from (`decisions: {kind:
    # sql, database: <id>}`), id -> {url, password | password_file}; a manifest names the
    # id, never a URL, and the password never leaves the worker nor reaches a log. JSON, e.g.
    # {"sales": {"url": "postgresql://reader@db/sales", "password_file": "/run/secrets/pg"}}.
    decision_databases: dict[str, DecisionDatabase] = Field(default_factory=dict)
    # Decisions reported to `POST /v1/models/{id}/decisions`: at most this many per batch.
    decision_batch_max: int = Field(default=2000, ge=1, le=100_000)
    # ... and each decision's `at` at most this far ahead of the API's clock (clocks drift;
    # the future does not report). Tests on Temporal's time-skipping server, whose clock
    # runs hours or days ahead of the wall clock, widen it; production keeps minutes.
    reported_decision_max_ahead_s: int = Field(default=300, ge=0)

    @field_validator("decision_databases")
    @classmethod
    def _database_ids(cls, databases: dict[str, DecisionDatabase]) -> dict[str, DecisionDatabase]:
        return validate_database_ids(databases)

    @property
    def declared_prometheus_servers(self) -> dict[str, str]:
        """Every Prometheus server a decision source may name, `prometheus_url` included."""
        default = {"prometheus": self.prometheus_url} if self.prometheus_url else {}
        return {**default, **self.prometheus_servers}

    @field_validator("routing_targets")
    @classmethod
    def _target_ids(
        cls, targets: dict[str, RoutingTarget | FlagdFileTarget]
    ) -> dict[str, RoutingTarget | FlagdFileTarget]:
        return validate_target_ids(targets)

    @field_validator("notification_channels")
    @classmethod
    def _channel_ids(cls, channels: dict[str, DeclaredChannel]) -> dict[str, DeclaredChannel]:
        return validate_channel_ids(channels)

    @model_validator(mode="after")
    def _slack_signing_secret_from_file(self) -> Self:
        path = self.slack_signing_secret_file
        self.slack_signing_secret = inline_or_file(
            "settings", "slack_signing_secret", self.slack_signing_secret, path
        )
        self.slack_signing_secret_file = None
        return self

    def channel_resolver(self, read_secrets: bool = True) -> ChannelResolver:
        """The declared channels; with their secret files read unless ``read_secrets`` is
        false (the API, which only checks a playbook's references, never reads them)."""
        return ChannelResolver(self.notification_channels, read_secrets)

    @property
    def resolved_console_url(self) -> str:
        return (self.console_url or self.api_url).rstrip("/")

    @property
    def declared_routing_targets(self) -> dict[str, RoutingTarget | FlagdFileTarget]:
        """Every declared target, the default `gateway` (the reference router) included."""
        gateway = RoutingTarget(url=self.router_url, token=self.router_token)
        return {GATEWAY: gateway, **self.routing_targets}

    def target_resolver(self) -> TargetResolver:
        return TargetResolver(self.declared_routing_targets)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'fairlane.db'}"

    @property
    def resolved_containment_task_queue(self) -> str:
        return self.containment_task_queue or f"{self.task_queue}-containment"

    @property
    def resolved_router_database_url(self) -> str:
        return self.router_database_url or f"sqlite:///{self.data_dir / 'router.db'}"

    @property
    def resolved_artifacts_dir(self) -> Path:
        return self.artifacts_dir or self.data_dir / "artifacts"

    def artifact_store(self) -> ArtifactStore:
        """Where model artifacts are opened from and written to, and in which formats."""
        return ArtifactStore(self.resolved_artifacts_dir, self.allow_pickle_artifacts)

    @property
    def resolved_tokens_file(self) -> Path:
        return self.tokens_file or self.data_dir / "tokens.json"

    @property
    def resolved_console_session_secret_file(self) -> Path:
        return self.console_session_secret_file or self.data_dir / "console-session.key"

    @property
    def resolved_payload_key_file(self) -> Path:
        return self.payload_key_file or self.data_dir / "payload-keys.json"

    @property
    def resolved_trail_signing_key_file(self) -> Path:
        return self.trail_signing_key_file or self.data_dir / "trail-signing.key"

    @property
    def resolved_trail_public_key_file(self) -> Path:
        return self.trail_public_key_file or self.data_dir / "trail-signing.pub"

    @property
    def resolved_trail_checkpoint_dir(self) -> Path:
        return self.trail_checkpoint_dir or self.data_dir / "trail-checkpoints"

    @property
    def resolved_decision_signing_key_file(self) -> Path:
        return self.decision_signing_key_file or self.data_dir / "decision-signing.key"

    @property
    def resolved_decision_public_key_file(self) -> Path:
        return self.decision_public_key_file or self.data_dir / "decision-signing.pub"

    @property
    def temporal_db_file(self) -> Path:
        return self.data_dir / "temporal.db"
