"""Tests for triggers.core.signatures and triggers.core.vendor_signatures (webhook signature
verification)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from triggers.core.signatures import (
    ExpiredSignature,
    SignatureError,
    Verified,
    fingerprint,
    sign_hmac,
    verify_api_key,
    verify_hmac,
)
from triggers.core.vendor_signatures import (
    sign_github,
    sign_pagerduty,
    sign_standard,
    sign_stripe,
    verify_github,
    verify_pagerduty,
    verify_standard,
    verify_stripe,
)

NOW = 1_700_000_000
TOL = 300
BODY = b'{"action": "opened", "number": 42}'

# whsec_<base64> secrets work for every scheme (the others use the whole string as the key).
OLD = "whsec_" + base64.b64encode(b"old-secret-0123456789-abcdefghij").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-0123456789-abcdefghij").decode()
OTHER = "whsec_" + base64.b64encode(b"unrelated-secret-0123456789-abcd").decode()
ALL_SECRETS = (OLD, NEW, OTHER)


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def hmac_hex(key: bytes, msg: bytes) -> str:
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def hmac_b64(key: bytes, msg: bytes) -> str:
    return base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


# --------------------------------------------------------------------------- scheme table

SignFn = Callable[[str, bytes, int], dict[str, str]]
VerifyFn = Callable[[Sequence[str], Mapping[str, str], bytes], Verified]


@dataclass(frozen=True)
class Scheme:
    name: str
    sign: SignFn  # (secret, body, timestamp) -> lower-cased headers
    verify: VerifyFn  # (secrets, headers, body) -> Verified, with now=NOW
    sig_header: str  # lower-cased name of the signature header
    malformed: tuple[str, ...]  # bad values for sig_header
    expected: Verified | None = None  # result of verifying sign(..., NOW)
    body_signed: bool = True
    timestamped: bool = False
    extra_required: tuple[str, ...] = field(default=())


HEX64 = "a" * 64

SCHEMES = [
    Scheme(
        name="github",
        sign=lambda s, b, t: lower(sign_github(s, b, delivery_id="gh-delivery-1")),
        verify=lambda ss, h, b: verify_github(ss, h, b),
        sig_header="x-hub-signature-256",
        malformed=("sha256", "garbage", "sha1=" + HEX64, "sha256=" + "z" * 64, "sha256=abc"),
        expected=Verified(delivery_id="gh-delivery-1", timestamp=None),
    ),
    Scheme(
        name="stripe",
        sign=lambda s, b, t: lower(sign_stripe(s, b, timestamp=t)),
        verify=lambda ss, h, b: verify_stripe(ss, h, b, now=NOW, tolerance=TOL),
        sig_header="stripe-signature",
        malformed=(
            "garbage",
            f"t={NOW}",
            f"v1={HEX64}",
            f"t={NOW},t={NOW},v1={HEX64}",
            f"t=abc,v1={HEX64}",
            f"t={NOW}.5,v1={HEX64}",
            f"t={NOW},v1=zz",
            f"t={NOW},v0={HEX64}",
        ),
        expected=Verified(delivery_id=None, timestamp=NOW),
        timestamped=True,
    ),
    Scheme(
        name="standard",
        sign=lambda s, b, t: sign_standard(s, b, msg_id="msg_1", timestamp=t),
        verify=lambda ss, h, b: verify_standard(ss, h, b, now=NOW, tolerance=TOL),
        sig_header="webhook-signature",
        malformed=("garbage", "v1,!!!not-base64!!!", "v1a,AAAA", "v2,AAAA"),
        expected=Verified(delivery_id="msg_1", timestamp=NOW),
        timestamped=True,
        extra_required=("webhook-id", "webhook-timestamp"),
    ),
    Scheme(
        name="pagerduty",
        sign=lambda s, b, t: lower(sign_pagerduty([s], b)),
        verify=lambda ss, h, b: verify_pagerduty(ss, h, b),
        sig_header="x-pagerduty-signature",
        malformed=("garbage", "v1=zz", f"v0={HEX64}", f"v1={HEX64},junk"),
        expected=Verified(delivery_id=None, timestamp=None),
    ),
    Scheme(
        name="hmac_hex",
        sign=lambda s, b, t: {"x-signature": sign_hmac(s, b, prefix="sha256=")},
        verify=lambda ss, h, b: verify_hmac(ss, h, b, header="X-Signature", prefix="sha256="),
        sig_header="x-signature",
        malformed=(HEX64, "sha1=" + HEX64, "sha256=" + "g" * 64, "sha256=abc"),
        expected=Verified(delivery_id=None, timestamp=None),
    ),
    Scheme(
        name="hmac_base64",
        sign=lambda s, b, t: {"x-signature": sign_hmac(s, b, encoding="base64")},
        verify=lambda ss, h, b: verify_hmac(ss, h, b, header="x-signature", encoding="base64"),
        sig_header="x-signature",
        malformed=("!!!not-base64!!!", "abc"),
        expected=Verified(delivery_id=None, timestamp=None),
    ),
    Scheme(
        name="hmac_timestamp",
        sign=lambda s, b, t: {"x-signature": sign_hmac(s, b, timestamp=t), "x-timestamp": str(t)},
        verify=lambda ss, h, b: verify_hmac(
            ss, h, b, header="x-signature", timestamp_header="X-Timestamp", now=NOW, tolerance=TOL
        ),
        sig_header="x-signature",
        malformed=("zz", "not hex at all"),
        expected=Verified(delivery_id=None, timestamp=NOW),
        timestamped=True,
        extra_required=("x-timestamp",),
    ),
    Scheme(
        name="api_key",
        sign=lambda s, b, t: {"x-api-key": s},
        verify=lambda ss, h, b: verify_api_key(ss, h, header="X-Api-Key"),
        sig_header="x-api-key",
        malformed=(),
        expected=Verified(delivery_id=None, timestamp=None),
        body_signed=False,
    ),
]

BY_NAME = {s.name: s for s in SCHEMES}
ids = [s.name for s in SCHEMES]
TIMESTAMPED = [s for s in SCHEMES if s.timestamped]
MALFORMED_CASES = [(s, v) for s in SCHEMES for v in s.malformed]


# --------------------------------------------------------------------------- generic per-scheme


@pytest.mark.parametrize("scheme", SCHEMES, ids=ids)
def test_valid(scheme: Scheme) -> None:
    headers = scheme.sign(NEW, BODY, NOW)
    assert scheme.verify([NEW], headers, BODY) == scheme.expected


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s.body_signed], ids=lambda s: s.name)
def test_tampered_body(scheme: Scheme) -> None:
    headers = scheme.sign(NEW, BODY, NOW)
    with pytest.raises(SignatureError, match="signature mismatch") as exc_info:
        scheme.verify([NEW], headers, BODY.replace(b"42", b"43"))
    assert not isinstance(exc_info.value, ExpiredSignature)


@pytest.mark.parametrize("scheme", SCHEMES, ids=ids)
def test_wrong_secret(scheme: Scheme) -> None:
    headers = scheme.sign(OTHER, BODY, NOW)
    with pytest.raises(SignatureError) as exc_info:
        scheme.verify([NEW], headers, BODY)
    assert type(exc_info.value) is SignatureError


@pytest.mark.parametrize("scheme", SCHEMES, ids=ids)
def test_missing_signature_header(scheme: Scheme) -> None:
    headers = scheme.sign(NEW, BODY, NOW)
    del headers[scheme.sig_header]
    with pytest.raises(SignatureError, match="missing header"):
        scheme.verify([NEW], headers, BODY)
    with pytest.raises(SignatureError, match="missing header"):
        scheme.verify([NEW], {}, BODY)


@pytest.mark.parametrize("scheme", SCHEMES, ids=ids)
def test_blank_signature_header_is_missing(scheme: Scheme) -> None:
    headers = scheme.sign(NEW, BODY, NOW)
    headers[scheme.sig_header] = "   "
    with pytest.raises(SignatureError, match="missing header"):
        scheme.verify([NEW], headers, BODY)


@pytest.mark.parametrize(
    ("scheme", "name"),
    [(s, n) for s in SCHEMES for n in s.extra_required],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_missing_other_required_header(scheme: Scheme, name: str) -> None:
    headers = scheme.sign(NEW, BODY, NOW)
    del headers[name]
    with pytest.raises(SignatureError, match=f"(?i)missing header {re.escape(name)}"):
        scheme.verify([NEW], headers, BODY)


@pytest.mark.parametrize(
    ("scheme", "value"),
    MALFORMED_CASES,
    ids=[f"{s.name}-{i}" for i, (s, _) in enumerate(MALFORMED_CASES)],
)
def test_malformed_header(scheme: Scheme, value: str) -> None:
    headers = scheme.sign(NEW, BODY, NOW)
    headers[scheme.sig_header] = value
    with pytest.raises(SignatureError) as exc_info:
        scheme.verify([NEW], headers, BODY)
    assert type(exc_info.value) is SignatureError


@pytest.mark.parametrize("scheme", SCHEMES, ids=ids)
def test_rotated_secret(scheme: Scheme) -> None:
    configured = [NEW, OLD]
    old_headers = scheme.sign(OLD, BODY, NOW)
    assert scheme.verify(configured, old_headers, BODY) == scheme.expected
    new_headers = scheme.sign(NEW, BODY, NOW)
    assert scheme.verify(configured, new_headers, BODY) == scheme.expected
    # order of the configured secrets does not matter
    assert scheme.verify([OLD, NEW], old_headers, BODY) == scheme.expected
    with pytest.raises(SignatureError):
        scheme.verify(configured, scheme.sign(OTHER, BODY, NOW), BODY)
    # once the old secret is retired, its deliveries are rejected
    with pytest.raises(SignatureError):
        scheme.verify([NEW], old_headers, BODY)


@pytest.mark.parametrize("scheme", SCHEMES, ids=ids)
def test_no_secrets_configured(scheme: Scheme) -> None:
    headers = scheme.sign(NEW, BODY, NOW)
    with pytest.raises(SignatureError, match="no secrets"):
        scheme.verify([], headers, BODY)
    with pytest.raises(SignatureError, match="empty secret"):
        scheme.verify([""], headers, BODY)


@pytest.mark.parametrize("scheme", SCHEMES, ids=ids)
def test_single_string_as_secrets_is_rejected(scheme: Scheme) -> None:
    headers = scheme.sign(NEW, BODY, NOW)
    with pytest.raises(TypeError):
        scheme.verify(NEW, headers, BODY)


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("scheme", TIMESTAMPED, ids=lambda s: s.name)
def test_expired_timestamp(scheme: Scheme) -> None:
    headers = scheme.sign(NEW, BODY, NOW - TOL - 1)
    with pytest.raises(ExpiredSignature, match="timestamp outside tolerance"):
        scheme.verify([NEW], headers, BODY)


@pytest.mark.parametrize("scheme", TIMESTAMPED, ids=lambda s: s.name)
def test_replay_from_future_outside_tolerance(scheme: Scheme) -> None:
    headers = scheme.sign(NEW, BODY, NOW + TOL + 1)
    with pytest.raises(ExpiredSignature):
        scheme.verify([NEW], headers, BODY)


@pytest.mark.parametrize("scheme", TIMESTAMPED, ids=lambda s: s.name)
@pytest.mark.parametrize("offset", [-TOL, -1, 0, 1, TOL])
def test_within_tolerance_accepted(scheme: Scheme, offset: int) -> None:
    headers = scheme.sign(NEW, BODY, NOW + offset)
    result = scheme.verify([NEW], headers, BODY)
    assert result.timestamp == NOW + offset


@pytest.mark.parametrize("scheme", TIMESTAMPED, ids=lambda s: s.name)
def test_signature_checked_before_timestamp(scheme: Scheme) -> None:
    headers = scheme.sign(OTHER, BODY, NOW - 10 * TOL)
    with pytest.raises(SignatureError, match="signature mismatch") as exc_info:
        scheme.verify([NEW], headers, BODY)
    assert not isinstance(exc_info.value, ExpiredSignature)


def test_stripe_non_integer_timestamp() -> None:
    sig = hmac_hex(NEW.encode(), b"12.5." + BODY)
    with pytest.raises(SignatureError, match="invalid timestamp") as exc_info:
        verify_stripe([NEW], {"stripe-signature": f"t=12.5,v1={sig}"}, BODY, now=NOW)
    assert type(exc_info.value) is SignatureError


@pytest.mark.parametrize("bad", ["abc", "1614265330.0", "-5", "", "1e9", "١٢٣"])
def test_standard_non_integer_timestamp(bad: str) -> None:
    headers = sign_standard(NEW, BODY, msg_id="msg_1", timestamp=NOW)
    headers["webhook-timestamp"] = bad
    with pytest.raises(SignatureError) as exc_info:
        verify_standard([NEW], headers, BODY, now=NOW)
    assert type(exc_info.value) is SignatureError


def test_hmac_non_integer_timestamp() -> None:
    headers = {"x-signature": sign_hmac(NEW, BODY, timestamp=NOW), "x-timestamp": "soon"}
    with pytest.raises(SignatureError, match="invalid timestamp"):
        verify_hmac(
            [NEW], headers, BODY, header="x-signature", timestamp_header="x-timestamp", now=NOW
        )


def test_custom_tolerance() -> None:
    headers = lower(sign_stripe(NEW, BODY, timestamp=NOW - 60))
    assert verify_stripe([NEW], headers, BODY, now=NOW, tolerance=60).timestamp == NOW - 60
    with pytest.raises(ExpiredSignature):
        verify_stripe([NEW], headers, BODY, now=NOW, tolerance=59)


def test_verify_does_not_read_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> float:
        raise AssertionError("time.time() must not be called")

    monkeypatch.setattr(time, "time", boom)
    for scheme in SCHEMES:
        assert scheme.verify([NEW], scheme.sign(NEW, BODY, NOW), BODY) == scheme.expected


# --------------------------------------------------------------------------- no secret leakage


def _failing_deliveries(scheme: Scheme) -> list[tuple[dict[str, str], bytes]]:
    good = scheme.sign(NEW, BODY, NOW)
    cases = [(scheme.sign(OTHER, BODY, NOW), BODY), ({}, BODY)]
    if scheme.body_signed:
        cases.append((good, BODY + b" "))
    for value in scheme.malformed:
        cases.append(({**good, scheme.sig_header: value}, BODY))
    if scheme.timestamped:
        cases.append((scheme.sign(NEW, BODY, NOW - TOL - 1), BODY))
        cases.append((scheme.sign(NEW, BODY, NOW + TOL + 1), BODY))
    return cases


@pytest.mark.parametrize("scheme", SCHEMES, ids=ids)
def test_errors_never_leak_secrets_or_digests(scheme: Scheme) -> None:
    configured = [NEW, OLD]
    forbidden = set(ALL_SECRETS)
    for secret in ALL_SECRETS:
        forbidden.add(secret.removeprefix("whsec_"))
        for value in scheme.sign(secret, BODY, NOW).values():
            if value not in ("gh-delivery-1", "msg_1", str(NOW)):
                forbidden.add(value)
                forbidden.update(value.replace("=", ",").replace(" ", ",").split(","))
    forbidden = {f for f in forbidden if len(f) >= 16}
    for key in (b"old-secret-0123456789-abcdefghij", b"new-secret-0123456789-abcdefghij"):
        for payload in (BODY, f"{NOW}.".encode() + BODY, f"msg_1.{NOW}.".encode() + BODY):
            forbidden.add(hmac_hex(key, payload))
            forbidden.add(hmac_b64(key, payload))
    for secret in configured:
        for payload in (BODY, f"{NOW}.".encode() + BODY):
            forbidden.add(hmac_hex(secret.encode(), payload))
            forbidden.add(hmac_b64(secret.encode(), payload))

    cases = _failing_deliveries(scheme)
    assert len(cases) >= 2
    for headers, body in cases:
        with pytest.raises(SignatureError) as exc_info:
            scheme.verify(configured, headers, body)
        exc = exc_info.value
        texts = (str(exc), repr(exc), str(exc.args))
        for text in texts:
            assert len(text) < 120
            for secret in forbidden:
                assert secret not in text, f"{scheme.name}: leaked {secret!r} in {text!r}"


# --------------------------------------------------------------------------- known answers


def test_github_known_answer() -> None:
    # Vector from GitHub's "Validating webhook deliveries" documentation.
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert hmac_hex(secret.encode(), body) == expected
    headers = {"x-hub-signature-256": f"sha256={expected}", "x-github-delivery": "abc-123"}
    assert verify_github([secret], headers, body) == Verified("abc-123", None)
    assert sign_github(secret, body) == {"X-Hub-Signature-256": f"sha256={expected}"}
    assert sign_github(secret, body, delivery_id="abc-123") == {
        "X-Hub-Signature-256": f"sha256={expected}",
        "X-GitHub-Delivery": "abc-123",
    }


def test_github_delivery_id_optional_and_hex_case() -> None:
    secret = "s3cr3t"
    digest = hmac_hex(secret.encode(), BODY)
    result = verify_github([secret], {"x-hub-signature-256": f"sha256={digest.upper()}"}, BODY)
    assert result == Verified(delivery_id=None, timestamp=None)


def test_stripe_known_answer() -> None:
    secret, ts = "whsec_test_secret", 1_614_265_330
    body = b'{"id": "evt_1", "object": "event"}'
    sig = hmac_hex(b"whsec_test_secret", b"1614265330." + body)
    assert sign_stripe(secret, body, timestamp=ts) == {"Stripe-Signature": f"t={ts},v1={sig}"}
    headers = {"stripe-signature": f"t={ts},v1={sig}"}
    assert verify_stripe([secret], headers, body, now=ts + 5) == Verified(None, ts)


def test_stripe_multiple_v1_and_v0_ignored() -> None:
    sig = hmac_hex(NEW.encode(), f"{NOW}.".encode() + BODY)
    header = f"t={NOW}, v1={HEX64}, v1={sig}, v0={'b' * 64}"
    assert verify_stripe([NEW], {"stripe-signature": header}, BODY, now=NOW).timestamp == NOW
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify_stripe([NEW], {"stripe-signature": f"t={NOW},v1={HEX64}"}, BODY, now=NOW)


def test_standard_published_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert "v1," + hmac_b64(key, f"{msg_id}.{ts}.".encode() + body) == expected
    assert sign_standard(secret, body, msg_id=msg_id, timestamp=ts) == {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": expected,
    }
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": expected}
    assert verify_standard([secret], headers, body, now=ts) == Verified(msg_id, ts)
    svix = {"svix-id": msg_id, "svix-timestamp": str(ts), "svix-signature": expected}
    assert verify_standard([secret], svix, body, now=ts + 299) == Verified(msg_id, ts)
    with pytest.raises(ExpiredSignature):
        verify_standard([secret], svix, body, now=ts + 301)


def test_standard_multiple_signatures_and_other_versions() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    good = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    bogus = base64.b64encode(b"x" * 32).decode()
    header = f"v1a,{good} v1,{bogus} v1,{good}"
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": header}
    assert verify_standard([secret], headers, body, now=ts).delivery_id == msg_id
    # only a v1a entry (even with the right bytes) is not accepted
    headers["webhook-signature"] = f"v1a,{good}"
    with pytest.raises(SignatureError, match="no v1 signature"):
        verify_standard([secret], headers, body, now=ts)


def test_standard_secret_formats() -> None:
    body, ts = b"{}", NOW
    # no whsec_ prefix but valid base64: key is the decoded bytes
    raw_b64 = base64.b64encode(b"k" * 24).decode()
    sig = hmac_b64(b"k" * 24, f"m.{ts}.".encode() + body)
    headers = {"webhook-id": "m", "webhook-timestamp": str(ts), "webhook-signature": f"v1,{sig}"}
    assert verify_standard([raw_b64], headers, body, now=NOW).delivery_id == "m"
    # not base64 at all: raw UTF-8 bytes
    sig = hmac_b64(b"plain secret!", f"m.{ts}.".encode() + body)
    headers["webhook-signature"] = f"v1,{sig}"
    assert verify_standard(["plain secret!"], headers, body, now=NOW).delivery_id == "m"
    # whsec_ prefix with invalid base64 is a configuration error, reported without the secret
    with pytest.raises(SignatureError) as exc_info:
        verify_standard(["whsec_not*base64"], headers, body, now=NOW)
    assert "not*base64" not in str(exc_info.value)


def test_pagerduty_known_answer() -> None:
    body = b'{"event": {"id": "01DEN3"}}'
    sig1 = hmac_hex(b"pd-secret-one", body)
    sig2 = hmac_hex(b"pd-secret-two", body)
    assert sign_pagerduty(["pd-secret-one", "pd-secret-two"], body) == {
        "X-PagerDuty-Signature": f"v1={sig1},v1={sig2}"
    }
    headers = {"x-pagerduty-signature": f"v1={sig1},v1={sig2}"}
    assert verify_pagerduty(["pd-secret-two"], headers, body) == Verified(None, None)
    assert verify_pagerduty(["pd-secret-one"], headers, body) == Verified(None, None)
    with pytest.raises(SignatureError):
        verify_pagerduty(["pd-secret-three"], headers, body)


def test_hmac_known_answers() -> None:
    secret, body = "generic-secret", b"payload"
    hexsig = hmac_hex(secret.encode(), body)
    b64sig = hmac_b64(secret.encode(), body)
    tssig = hmac_hex(secret.encode(), b"1614265330." + body)
    assert sign_hmac(secret, body) == hexsig
    assert sign_hmac(secret, body, prefix="sha256=") == "sha256=" + hexsig
    assert sign_hmac(secret, body, encoding="base64") == b64sig
    assert sign_hmac(secret, body, timestamp=1614265330) == tssig

    assert verify_hmac([secret], {"x-sig": hexsig.upper()}, body, header="X-Sig") == Verified(
        None, None
    )
    assert verify_hmac([secret], {"x-sig": b64sig}, body, header="x-sig", encoding="base64")
    result = verify_hmac(
        [secret],
        {"x-sig": tssig, "x-ts": "1614265330"},
        body,
        header="x-sig",
        timestamp_header="x-ts",
        now=1614265330,
    )
    assert result == Verified(None, 1614265330)
    # a hex digest is not accepted when base64 is configured (and vice versa)
    with pytest.raises(SignatureError):
        verify_hmac([secret], {"x-sig": b64sig}, body, header="x-sig")


def test_hmac_missing_prefix() -> None:
    value = sign_hmac(NEW, BODY)
    with pytest.raises(SignatureError, match="malformed header"):
        verify_hmac([NEW], {"x-sig": value}, BODY, header="x-sig", prefix="sha256=")


def test_hmac_argument_errors() -> None:
    headers = {"x-sig": sign_hmac(NEW, BODY, timestamp=NOW), "x-ts": str(NOW)}
    with pytest.raises(ValueError):
        verify_hmac([NEW], headers, BODY, header="x-sig", timestamp_header="x-ts")
    with pytest.raises(ValueError):
        verify_hmac([NEW], headers, BODY, header="x-sig", encoding="hex2")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sign_hmac(NEW, BODY, encoding="b32")  # type: ignore[arg-type]


def test_api_key_known_answer() -> None:
    headers = {"authorization-key": "key-abc-123"}
    assert verify_api_key(["key-abc-123"], headers, header="Authorization-Key") == Verified(
        None, None
    )
    with pytest.raises(SignatureError, match="invalid API key"):
        verify_api_key(["key-abc-1234"], headers, header="authorization-key")
    with pytest.raises(SignatureError, match="invalid API key"):
        verify_api_key(["KEY-ABC-123"], headers, header="authorization-key")


# --------------------------------------------------------------------------- misc


def test_fingerprint() -> None:
    assert fingerprint(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert fingerprint(BODY) == "sha256:" + hashlib.sha256(BODY).hexdigest()
    assert fingerprint(BODY) != fingerprint(BODY + b" ")


def test_verified_is_frozen() -> None:
    v = Verified(delivery_id="x", timestamp=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.delivery_id = "y"  # type: ignore[misc]


def test_expired_is_a_signature_error() -> None:
    assert issubclass(ExpiredSignature, SignatureError)
    assert issubclass(SignatureError, Exception)
    assert BY_NAME["stripe"].timestamped
