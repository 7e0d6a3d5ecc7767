"""Hostile deliveries against the API as production runs it (``triggers api``, its own
process), sent byte for byte over raw sockets: bit flips, repeated and odd-case signature
headers, huge headers, non-UTF-8 and empty bodies, content encodings (a gzip bomb), chunked
bodies, a slow 10 MiB body, lying Content-Length. For every case: no tampered request is
accepted (no 202, no run in Temporal), no answer is a 5xx, every answer has a message body,
and the connection either serves the next request or the answer said ``Connection: close``
and the server closed it (checks in ``tests.hostile``)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from tests.helpers import github_body
from tests.hostile import (
    BODY_TIMEOUT,
    LIMIT,
    Live,
    accepted,
    assert_runs_only,
    check,
    live_api,
    refuse,
    signed,
    trickle,
)
from tests.raw_http import Closed, chunk_body, request
from triggers.core import vendor_signatures
from workers.devserver import DevServer


@pytest.fixture(scope="module")
async def live(
    tmp_path_factory: pytest.TempPathFactory,
    temporal: DevServer,
    client: Client,
    secret_keys: str,
) -> AsyncIterator[Live]:
    async with live_api(tmp_path_factory.mktemp("hostile"), temporal, client, secret_keys) as stack:
        yield stack


def bit_flips(body: bytes, delivery: str) -> list[bytes]:
    """One request per flipped bit: each body byte, then each signature character (a bit
    among the low four, so the header stays printable ASCII)."""
    out = []
    headers = signed(body, delivery)
    for i in range(len(body)):
        flipped = bytearray(body)
        flipped[i] ^= 1 << (i % 8)
        out.append(request("POST", "/P", headers, bytes(flipped)))
    sig = dict(headers)["X-Hub-Signature-256"]
    for j in range(len(sig)):
        bad = sig[:j] + chr(ord(sig[j]) ^ (1 << (j % 4))) + sig[j + 1 :]
        tampered = [(k, bad if k == "X-Hub-Signature-256" else v) for k, v in headers]
        out.append(request("POST", "/P", tampered, body))
    return out


async def test_bit_flips_in_body_and_signature_are_all_refused(live: Live) -> None:
    await accepted(live, "flip-control")
    body = github_body(n="flip")
    conn = await live.connect()
    try:
        cases = bit_flips(body, "flip-1")
        assert len(cases) > 100
        for data in cases:
            data = data.replace(b"POST /P ", f"POST {live.path} ".encode(), 1)
            # Every one on the same keep-alive connection: a refusal never costs it.
            answer = await refuse(live, data, {400, 401}, conn=conn)
            assert not answer.closes
    finally:
        await conn.close()
    await assert_runs_only(live)


async def test_duplicate_and_odd_case_signature_headers(live: Live) -> None:
    body = github_body(n="dup")
    good = signed(body, "case-ok")
    bad_sig = vendor_signatures.sign_github("not-the-secret", body)["X-Hub-Signature-256"]
    good_sig = dict(good)["X-Hub-Signature-256"]
    # Header names are case-insensitive: odd case is the same header, valid or not.
    odd = [(k.upper() if i % 2 else k.lower(), v) for i, (k, v) in enumerate(good)]
    conn = await live.connect()
    try:
        await conn.send(request("POST", live.path, odd, body))
        ok = await conn.answer()
        assert ok.status == 202, ok
        live.expected.add("case-ok")
        await refuse(live, request("POST", live.path, odd, body + b" "), {401}, conn=conn)
        rest = [(k, v) for k, v in good if k != "X-Hub-Signature-256"]
        for pair in (
            [("X-Hub-Signature-256", good_sig), ("X-Hub-Signature-256", bad_sig)],
            [("X-Hub-Signature-256", bad_sig), ("X-Hub-Signature-256", good_sig)],
            [("X-Hub-Signature-256", good_sig), ("x-hub-SIGNATURE-256", good_sig)],
        ):
            await refuse(live, request("POST", live.path, rest + pair, body), {400}, conn=conn)
        # Two delivery ids (one signature over the body): which event is it? Refused.
        two_ids = [*good, ("x-github-delivery", "case-other")]
        answer = await refuse(live, request("POST", live.path, two_ids, body), {400}, conn=conn)
        assert b"x-github-delivery" in answer.body
    finally:
        await conn.close()
    await assert_runs_only(live)


@pytest.mark.parametrize("size", [64 * 1024, 640 * 1024])
async def test_huge_headers_are_refused_and_the_server_goes_on(live: Live, size: int) -> None:
    body = github_body(n=f"huge-{size}")
    headers = signed(body, f"huge-{size}")
    for extra in (
        [("X-Pad", "a" * size)],
        [(f"X-Pad-{i}", "b" * 1000) for i in range(size // 1000)],
        [("X-Hub-Signature-256", "sha256=" + "0" * size)],
    ):
        await refuse(live, request("POST", live.path, headers + extra, body), {400, 431})
    # A signature header of 8 KiB (under the server's header limit) is read and refused.
    long_sig = [(k, v) for k, v in headers if k != "X-Hub-Signature-256"]
    long_sig.append(("X-Hub-Signature-256", "sha256=" + "ab" * 4096))
    await refuse(live, request("POST", live.path, long_sig, body), {401})


async def test_non_utf8_empty_and_odd_bodies(live: Live) -> None:
    conn = await live.connect()
    try:
        for i, (body, ctype, allowed) in enumerate(
            [
                (b'{"ref": "\xff\xfe\xc3\x28"}', "application/json", {400}),
                ('{"ref": "caf\u00e9"}'.encode("latin-1"), "application/json", {400}),
                (b"\xef\xbb\xbf{}", "application/json", {202}),  # UTF-8 with a BOM: valid
                (b"", "application/json", {400}),
                (b"", "", {400, 415}),
                (b"\x00" * 64, "application/octet-stream", {415}),
                (b"payload=%FF%FE", "application/x-www-form-urlencoded", {400}),
                (b'{"a": "\\ud800"}', "application/json", {202}),  # a lone surrogate, kept
                (b'{"a": "\\u0000"}', "application/json", {202}),  # NUL: valid, stored
            ]
        ):
            headers = [(k, ctype if k == "Content-Type" else v) for k, v in signed(body, f"b{i}")]
            data = request("POST", live.path, headers, body)
            answer = await refuse(live, data, allowed, conn=conn)
            if answer.status == 202:
                live.expected.add(f"b{i}")
        # Unsigned, empty: 401.
        await refuse(live, request("POST", live.path, [], b""), {401}, conn=conn)
    finally:
        await conn.close()
    await assert_runs_only(live)


async def test_content_encoding_is_refused_and_a_gzip_bomb_costs_nothing(live: Live) -> None:
    bomb = gzip.compress(b"\x00" * (64 << 20), compresslevel=9)
    assert len(bomb) < 128 * 1024
    conn = await live.connect()
    try:
        for encoding, body in (
            ("gzip", bomb),
            ("gzip", gzip.compress(github_body(n="gz"))),
            ("deflate", zlib.compress(github_body(n="zz"))),
            ("br", b"\x0b\x02\x80{}\x03"),
            ("gzip, identity", gzip.compress(b"{}")),
        ):
            # Signed over the bytes as sent, as a sender would: still refused (415).
            headers = [*signed(body, f"enc-{encoding}"), ("Content-Encoding", encoding)]
            answer = await refuse(live, request("POST", live.path, headers, body), {415}, conn=conn)
            assert answer.headers.get("accept-encoding") == "identity"
        body = github_body(n="identity")
        headers = [*signed(body, "enc-identity"), ("Content-Encoding", "identity")]
        await conn.send(request("POST", live.path, headers, body))
        assert (await conn.answer()).status == 202
        live.expected.add("enc-identity")
    finally:
        await conn.close()


async def test_chunked_bodies(live: Live) -> None:
    body = github_body(n="chunked")
    conn = await live.connect()
    try:
        await conn.send(request("POST", live.path, signed(body, "chunked-ok"), body, chunked=True))
        assert (await conn.answer()).status == 202
        live.expected.add("chunked-ok")
        # Over the limit, chunked: refused at the limit; the rest is not read.
        big = b'{"pad": "' + b"x" * (LIMIT + 10) + b'"}'
        data = request("POST", live.path, signed(big, "chunked-big"), big, chunked=True)
        answer = await refuse(live, data, {413}, conn=conn)
        assert answer.closes
    finally:
        await conn.close()
    # Broken chunk framing: the server's parser refuses it (400) and closes.
    broken = request("POST", live.path, signed(body, "chunked-bad"), b"", chunked=True)
    broken = broken.removesuffix(b"0\r\n\r\n") + b"zz\r\nabc\r\n"
    await refuse(live, broken, {400})
    await assert_runs_only(live)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_slow_10mib_body_is_cut_off_at_the_limit(live: Live, chunked: bool) -> None:
    total = 10 << 20
    headers = signed(b"whatever", f"slow-{chunked}")
    if chunked:
        head = request("POST", live.path, headers, chunked=True).removesuffix(b"0\r\n\r\n")
    else:
        head = request("POST", live.path, headers, length=total)
    before = live.api.peak_rss_kib()
    conn = await live.connect()
    try:
        answer, sent = await trickle(conn, head, total, chunked=chunked)
        check(answer, {413})
        # Answered at the limit (~16 pieces, 0.2 s in), long before the 10 MiB were sent
        # (10 s); then closed, so the rest of the body is never read.
        assert sent < total // 4, sent
        assert answer.closes and await conn.at_eof()
    finally:
        await conn.close()
    assert live.api.peak_rss_kib() - before < 4 * 1024


async def test_content_length_lies(live: Live) -> None:
    body = github_body(n="lies")
    headers = signed(body, "lies")
    # Shorter than the body: the server reads what was declared (signature over the whole
    # body fails: 401); the rest is no request (400, closed).
    conn = await live.connect()
    try:
        await conn.send(request("POST", live.path, headers, body, length=len(body) - 5))
        first = await conn.answer()
        check(first, {401})
        try:
            second = await conn.answer()
            check(second, {400})
            assert second.closes
        except Closed:
            pass
        assert await conn.at_eof()
    finally:
        await conn.close()
    # Longer than the body, then nothing: cut off after the body timeout (408), closed.
    conn = await live.connect()
    try:
        await conn.send(request("POST", live.path, headers, body, length=len(body) + 100))
        answer = await conn.answer(timeout=BODY_TIMEOUT + 20)
        check(answer, {408})
        assert answer.closes and await conn.at_eof()
    finally:
        await conn.close()
    # Framing the parser refuses: 400 with a body, closed.
    plain = [(k, v) for k, v in headers]
    for raw in (
        request("POST", live.path, plain, body, length=-1),
        request("POST", live.path, plain, body).replace(b"Content-Length: ", b"Content-Length: x"),
        request("POST", live.path, [*plain, ("Content-Length", "1")], body),
        request(
            "POST",
            live.path,
            [*plain, ("Content-Length", str(len(body)))],
            chunk_body(body),
            chunked=False,
        ),
    ):
        await refuse(live, raw, {400})
    await assert_runs_only(live)
