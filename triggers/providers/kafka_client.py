"""What the Kafka provider needs around aiokafka: client options from the config (security
protocol, SASL, TLS), message headers and keys as text, and driver errors as provider
errors whose messages carry no secret."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Sequence
from typing import Any

from aiokafka import errors as kafka_errors

from triggers.core.events import MAX_HEADER_VALUE_CHARS, MAX_HEADERS
from triggers.providers.base import ProviderConfigError, ProviderError, ProviderTransientError
from triggers.providers.kafka_config import KafkaConfig

# Retrying cannot fix these: refused credentials or permissions, a session timeout the
# broker does not accept.
_CONFIG_ERRORS = (
    kafka_errors.AuthenticationFailedError,
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.InvalidSessionTimeoutError,
)
_TRANSIENT_ERRORS = (kafka_errors.KafkaConnectionError, kafka_errors.KafkaTimeoutError)


def as_text(raw: bytes) -> str:
    """UTF-8 text, or ``base64:<the bytes>`` when the bytes are not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


def headers_text(raw: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """A record's headers as text, at most ``MAX_HEADERS``, each value cut to its bound (a
    repeated header name keeps its last value)."""
    out: dict[str, str] = {}
    for name, value in (raw or ())[:MAX_HEADERS]:
        out[name] = as_text(value or b"")[:MAX_HEADER_VALUE_CHARS]
    return out


def _tls_context(cfg: KafkaConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=cfg.tls_ca) if cfg.tls_ca else None
    context = context or ssl.create_default_context()
    if not cfg.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def client_options(cfg: KafkaConfig, password: str | None) -> dict[str, Any]:
    """What aiokafka's clients take for connecting: servers, security protocol, SASL, TLS."""
    protocol = ("SASL_SSL" if cfg.tls else "SASL_PLAINTEXT") if cfg.sasl_mechanism else None
    options: dict[str, Any] = {
        "bootstrap_servers": list(cfg.bootstrap_servers),
        "security_protocol": protocol or ("SSL" if cfg.tls else "PLAINTEXT"),
        "request_timeout_ms": 30_000,
    }
    if cfg.tls:
        options["ssl_context"] = _tls_context(cfg)
    if cfg.sasl_mechanism:
        options["sasl_mechanism"] = cfg.sasl_mechanism
        options["sasl_plain_username"] = cfg.sasl_username
        options["sasl_plain_password"] = password
    return options


def provider_error(
    exc: BaseException, *, where: str, what: str, cfg: KafkaConfig, password: str | None
) -> ProviderError:
    """A driver error as a provider error: permanent for refused credentials, permissions
    or another non-retriable broker answer; transient for connections and timeouts. The
    message names the brokers and the error, never the password (raise it ``from None``)."""
    name = type(exc).__name__
    # aiokafka's SCRAM client fails with a KeyError when the server refuses the login.
    scram_refused = isinstance(exc, KeyError) and (cfg.sasl_mechanism or "").startswith("SCRAM")
    if isinstance(exc, _CONFIG_ERRORS) or scram_refused:
        return ProviderConfigError(
            f"kafka {where}: {what}: credentials or permissions refused ({name})"
        )
    detail = (str(exc) or name).splitlines()[0][:300]
    if password:
        detail = detail.replace(password, "***")
    message = f"kafka {where}: {what}: {name}: {detail}"
    permanent = isinstance(exc, kafka_errors.KafkaError) and not getattr(exc, "retriable", True)
    if permanent and not isinstance(exc, _TRANSIENT_ERRORS):
        return ProviderConfigError(message)
    return ProviderTransientError(message)
