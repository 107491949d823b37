"""Hardening of the web against hostile input, on the running app and the local Kafka:

- no message content stops the read model (poison records are dead-lettered, the next ones are read),
  and a failing consumer loop is reported by health and restarted;
- officers attach only their own uploads (or their case's evidence) to actions;
- login throttling per user and per address, and no username oracle in the answer time;
- cookie-authenticated state changes need a same-origin Origin/Referer;
- non-ASCII tokens, symlinks in the evidence store, disguised uploads, security headers.
"""
from __future__ import annotations

import asyncio
import hashlib
import statistics
import time

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from conftest import reader_from_beginning
from contract import DeadLetter, new_id
from web_harness import (count_rows, PASSWORDS, WebHarness, camera_status, dispatched_case, incident, start_web, stored_evidence,
                         street_jpeg)

pytestmark = [pytest.mark.kafka]

DEEP_JSON = b'{"schema_version":1,"bbox":' + b"[" * 1000 + b"]" * 1000 + b"}"
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000
DECODING = ("RecursionError", "ContractError")  # bounded decoding may name deep nesting a contract error
POISON = {  # value -> the exception classes the dead letter may name
    DEEP_JSON: DECODING,
    DEEP_OBJECT: DECODING,
    b"[" * 200_000: DECODING,
    b"{oops": ("ContractError",),
    b"\xff\xfe\x00garbage": ("ContractError",),
    b"[]": ("ContractError",),
    b'{"schema_version":1,"event_id":"e","camera_id":"cam-01","state":"online","observed_at":NaN}': ("ContractError",),
    None: ("TypeError", "ContractError"),  # a tombstone: no value at all
}


@pytest.fixture(scope="module")
def web(kafka_bootstrap: str, city, tmp_path_factory) -> WebHarness:
    harness = start_web(city, kafka_bootstrap, tmp_path_factory.mktemp("evidence"), outcome_wait_s=0.5)
    yield harness
    harness.stop()


def dead_letters(web: WebHarness, count: int, timeout: float = 15.0) -> list[DeadLetter]:
    """At least ``count`` dead letters from the app's dead-letter topic (all there are once that many came)."""
    reader = reader_from_beginning(web.city.kafka.bootstrap, web.city.kafka.topics.dead_letter)
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + timeout
    try:
        while len(letters) < count and time.monotonic() < deadline:
            for batch in reader.poll(timeout_ms=200).values():
                letters += [letter for m in batch if (letter := readable_dead_letter(m.value))]
    finally:
        reader.close()
    assert len(letters) >= count, f"only {len(letters)} of {count} dead letters came"
    return letters


def publish_raw(web: WebHarness, topic_kind: str, *values: bytes | None) -> list[str]:
    """Send raw message values (None: a tombstone) and return their positions ``topic/partition/offset``."""
    topic = getattr(web.city.kafka.topics, topic_kind)
    sent = [web.producer.send(topic, value, key=new_id().encode()) for value in values]
    web.producer.flush(10)
    return [f"{m.topic}/{m.partition}/{m.offset}" for m in (future.get(10) for future in sent)]


def readable_dead_letter(value: bytes | None) -> DeadLetter | None:
    """The dead letter in ``value``; None for the poison this module itself puts on the dead-letter topic."""
    try:
        return DeadLetter.from_json(value)
    except Exception:
        return None


def bad_records(kind: str) -> float:
    return REGISTRY.get_sample_value("nonsite_web_bad_records_total", {"topic": kind}) or 0.0


# ------------------------------------------------------------------ 1. the read model survives any message
def test_poison_messages_are_dead_lettered_and_the_read_model_keeps_reading(web: WebHarness) -> None:
    before = {kind: bad_records(kind) for kind in ("camera_status", "incidents", "dead_letter")}
    with capture_logs() as logs:
        cameras = publish_raw(web, "camera_status", *POISON)
        incidents = publish_raw(web, "incidents", DEEP_JSON, b"{oops")
        publish_raw(web, "dead_letter", DEEP_JSON)  # read from the dead-letter topic: counted, never re-lettered
        web.publish("camera_status", camera_status("cam-02", "offline", "after the poison"))
        case = incident()
        web.publish("incidents", case)
        ops = web.client("ops")
        web.wait_for(lambda: web.app.state.store.incident(case.incident_id) is not None, what="the valid incident")
        web.wait_for(lambda: bad_records("dead_letter") > before["dead_letter"], what="the bad dead letter counted")

    health = web.client().get("/api/health")
    assert health.status_code == 200 and health.json()["ok"] is True and health.json()["reason"] is None
    assert ops.get(f"/api/incidents/{case.incident_id}").status_code == 200
    shown = web.wait_for(lambda: {c["camera_id"]: c for c in ops.get("/api/cameras").json()}["cam-02"]["reason"]
                         == "after the poison", what="the valid camera status")
    assert shown

    letters = {letter.dead_letter_id: letter for letter in dead_letters(web, len(cameras) + len(incidents))}
    for where, expected in [*zip(cameras, POISON.values()), *zip(incidents, (DECODING, ("ContractError",)))]:
        letter = letters[where]
        assert letter.reason.split(":")[0] in expected and len(letter.reason) > 20, (where, letter.reason)
        assert f"{letter.topic}/{letter.partition}/{letter.offset}" == where
    assert not [letter for letter in letters.values() if letter.topic == web.city.kafka.topics.dead_letter]
    assert bad_records("camera_status") - before["camera_status"] == len(cameras)
    assert bad_records("incidents") - before["incidents"] == len(incidents)
    logged = [entry for entry in logs if entry["event"] == "web.bus.bad_record"]
    assert {f"{e['topic']}/{e['partition']}/{e['offset']}" for e in logged} >= set(cameras) | set(incidents)
    assert all(entry["log_level"] == "warning" and entry["reason"] for entry in logged)


def test_a_failing_consumer_loop_shows_in_health_and_restarts_without_refolding(web: WebHarness) -> None:
    bus = web.app.state.bus
    bus.restart_backoff_s = 1.0
    first = incident()
    before = bus.recorded
    web.publish("incidents", first)
    web.wait_for(lambda: web.app.state.store.incident(first.incident_id) is not None, what="the first incident")
    web.wait_for(lambda: bus.recorded > before, what="the count of recorded records")
    folded = bus.recorded
    alerts_before = count_rows(web, "alerts")
    failures = REGISTRY.get_sample_value("nonsite_web_read_model_failures_total") or 0.0
    client = web.client()
    with capture_logs() as logs:
        asyncio.run_coroutine_threadsafe(bus.consumer.stop(), bus.loop).result(10)  # the consumer breaks under it
        down = web.wait_for(lambda: (r := client.get("/api/health")).status_code == 503 and r.json(),
                            timeout=5, what="health 503")
        assert down["ok"] is False and "ConsumerStoppedError" in down["reason"]
        assert REGISTRY.get_sample_value("nonsite_web_read_model_up") == 0
        web.wait_for(lambda: client.get("/api/health").status_code == 200, timeout=15, what="health back to 200")
    assert REGISTRY.get_sample_value("nonsite_web_read_model_up") == 1
    assert REGISTRY.get_sample_value("nonsite_web_read_model_failures_total") == failures + 1
    failed = [entry for entry in logs if entry["event"] == "web.bus.consumer_failed"]
    assert failed and "ConsumerStoppedError" in failed[0]["error"] and failed[0]["log_level"] == "error"
    later = incident()
    web.publish("incidents", later)
    web.wait_for(lambda: web.app.state.store.incident(later.incident_id) is not None, what="an incident after the restart")
    # the count moves after the write's thread returns, so the store can show the incident a moment earlier
    web.wait_for(lambda: web.app.state.bus.recorded > folded, what="the count of recorded records")
    assert web.app.state.bus.recorded == folded + 1  # resumed where it was: nothing read twice
    assert count_rows(web, "alerts") == alerts_before


def test_a_dead_letter_whose_raw_text_nests_deeply_does_not_break_the_feedback_verdicts(web: WebHarness) -> None:
    letter = DeadLetter(dead_letter_id=new_id(), topic=web.city.kafka.topics.feedback, partition=0, offset=10**9,
                        reason="unusable", at="2026-11-21T01:00:00.000Z", raw="[" * 5_000)
    before = bad_records("dead_letter")
    web.publish("dead_letter", letter)
    web.wait_for(lambda: web.app.state.store.outcome(f"{letter.topic}/0/{10**9}"), what="the dead letter's verdict")
    assert bad_records("dead_letter") == before


# ------------------------------------------------------------------ 2. evidence attached to an action
def upload(client, photo: bytes, content_type: str = "image/jpeg"):
    return client.post("/api/uploads", content=photo, headers={"Content-Type": content_type})


def test_an_officer_attaches_only_her_own_uploads_or_her_cases_evidence(web: WebHarness) -> None:
    private = upload(web.client("wangqiang"), street_jpeg("wang's private photo"))
    assert private.status_code == 201, private.text
    other_case_evidence = stored_evidence(web, "another case")
    dispatched_case(web, "O201", camera_id="cam-03", grid_id="G02", evidence=[other_case_evidence])
    case_evidence = stored_evidence(web, "her case")
    case, task = dispatched_case(web, "O102", evidence=[case_evidence])
    lina = web.client("lina")
    for foreign in (private.json()["sha256"], other_case_evidence.sha256):
        refused = lina.post(f"/api/tasks/{task.task_id}/actions", json={"action": "resolve", "evidence": [foreign]})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == (f"evidence[0]: no photo you uploaded or of this case with sha256 "
                                           f"'{foreign}'")
        assert lina.get(f"/api/evidence/{foreign}").status_code == 403
    with pytest.raises(AssertionError):
        web.next_feedback(timeout=1.0, incident_id=case.incident_id)

    own = upload(lina, street_jpeg("lina's photo")).json()["sha256"]
    accepted = lina.post(f"/api/tasks/{task.task_id}/actions",
                         json={"action": "resolve", "evidence": [own, case_evidence.sha256]})
    assert accepted.status_code == 202, accepted.text
    feedback = web.next_feedback(feedback_id=accepted.json()["feedback_id"])
    assert [e.sha256 for e in feedback.evidence] == [own, case_evidence.sha256]


# ------------------------------------------------------------------ 3. login throttling and timing
@pytest.fixture
def throttle(web: WebHarness):
    """Install a login throttle with the test's limits and a hand-moved clock; the default one after."""
    from web.throttle import FakeClock, LoginThrottle

    clock = FakeClock()

    def install(**limits) -> None:
        web.app.state.login_throttle = LoginThrottle(clock=clock, **limits)

    yield install, clock
    web.app.state.login_throttle = LoginThrottle()


def login(client, username: str, password: str):
    client.cookies.clear()  # as a script would log in: no session cookie, so no Origin needed
    return client.post("/api/login", json={"username": username, "password": password})


def test_wrong_passwords_for_one_user_bring_a_growing_wait(web: WebHarness, throttle) -> None:
    install, clock = throttle
    install(free_failures_per_user=3, free_failures_per_address=100, first_delay_s=30)
    client = web.client()
    for _ in range(3):
        assert login(client, "ops", "wrong").status_code == 401
    refused = login(client, "ops", PASSWORDS["ops"])  # even the right password waits
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"
    assert refused.json()["error"] == "too many failed logins for this user or address: try again in 30 s"
    assert login(client, "sup", PASSWORDS["sup"]).status_code == 200  # another user is not held up
    clock.now += 30
    assert login(client, "ops", "wrong").status_code == 401
    assert login(client, "OPS", "wrong").headers.get("Retry-After") == "60"  # the wait doubles
    clock.now += 60
    assert login(client, "ops", PASSWORDS["ops"]).status_code == 200
    assert login(client, "ops", "wrong").status_code == 401  # a success starts the count afresh


def test_wrong_passwords_from_one_address_bring_a_wait_for_any_user(web: WebHarness, throttle) -> None:
    install, clock = throttle
    install(free_failures_per_user=100, free_failures_per_address=4, first_delay_s=30)
    client = web.client()
    for index in range(4):
        assert login(client, f"ghost{index}", "guess").status_code == 401
    for username, password in (("ghost9", "guess"), ("ops", PASSWORDS["ops"])):
        refused = login(client, username, password)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "30", (username, refused.text)
    clock.now += 30
    assert login(client, "ops", PASSWORDS["ops"]).status_code == 200


def test_an_unknown_user_is_answered_as_slowly_as_a_wrong_password(web: WebHarness, throttle) -> None:
    install, _ = throttle
    install(free_failures_per_user=1000, free_failures_per_address=1000)
    client = web.client()

    def seconds(username: str) -> float:
        started = time.perf_counter()
        assert login(client, username, "not the password").status_code == 401
        return time.perf_counter() - started

    wrong_password, unknown_user = [], []
    for index in range(7):
        wrong_password.append(seconds("ops"))
        unknown_user.append(seconds(f"nobody{index}"))
    ratio = statistics.median(unknown_user) / statistics.median(wrong_password)
    assert 0.6 < ratio < 1.7, (wrong_password, unknown_user)


# ------------------------------------------------------------------ 4. the Origin rule
def cookie_client(web: WebHarness, username: str):
    """A client that authenticates with the session cookie only, as a browser does."""
    import httpx

    client = httpx.Client(base_url=web.base_url, timeout=20)
    answer = client.post("/api/login", json={"username": username, "password": PASSWORDS[username]},
                         headers={"Origin": web.base_url})
    assert answer.status_code == 200 and client.cookies.get("nonsite_token"), answer.text
    return client


def test_cookie_authenticated_state_changes_need_this_sites_origin(web: WebHarness) -> None:
    host, port = web.base_url.rsplit(":", 1)
    other_port = f"{host}:{int(port) + 1}"
    client = cookie_client(web, "ops")
    for headers in ({"Origin": other_port}, {"Referer": f"{other_port}/evil.html"}, {}, {"Origin": "null"},
                    {"Origin": "http://localhost:" + port}):
        forced = client.post("/api/logout", headers=headers)
        assert forced.status_code == 403, (headers, forced.text)
        assert forced.json()["error"].startswith("origin: "), forced.text
    assert client.get("/api/me").status_code == 200  # still logged in

    officer = cookie_client(web, "zhangwei")
    photo = street_jpeg("cookie")
    jpeg = {"Content-Type": "image/jpeg"}
    assert officer.post("/api/uploads", content=photo, headers={**jpeg, "Origin": other_port}).status_code == 403
    same_site = officer.post("/api/uploads", content=photo, headers={**jpeg, "Referer": f"{web.base_url}/officer"})
    assert same_site.status_code == 201, same_site.text
    refused_login = web.client().post("/api/login", json={"username": "ops", "password": PASSWORDS["ops"]},
                                      headers={"Origin": other_port})
    assert refused_login.status_code == 403  # no logging someone in from another page either
    assert client.post("/api/logout", headers={"Origin": web.base_url}).status_code == 200
    assert client.get("/api/me").status_code == 401


def test_bearer_calls_without_the_cookie_need_no_origin(web: WebHarness) -> None:
    client = web.client("ops")  # bearer token, cookies cleared
    assert "origin" not in {k.lower() for k in client.headers}
    assert client.post("/api/logout").status_code == 200


# ------------------------------------------------------------------ 5. tokens, store, uploads, headers
def test_a_non_ascii_token_is_a_401_not_a_500(web: WebHarness) -> None:
    client = web.client()
    for headers in ({"Authorization": "Bearer ".encode() + "令牌.签名".encode()},
                    {"Cookie": b"nonsite_token=" + "ü.x".encode()},
                    {"Authorization": b"Bearer \xff\xfe.\x80"}):
        for method, path in (("GET", "/api/me"), ("GET", "/api/incidents")):
            answer = client.request(method, path, headers=headers)
            assert answer.status_code == 401, (headers, answer.text)
            assert answer.json()["error"].startswith("authentication required")


def test_the_evidence_store_serves_no_symlink(web: WebHarness, tmp_path) -> None:
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(street_jpeg("outside the store"))
    linked_file, linked_folder, flat_link = (hashlib.sha256(new_id().encode()).hexdigest() for _ in range(3))
    (web.evidence_dir / linked_file[:2]).mkdir(parents=True, exist_ok=True)
    (web.evidence_dir / linked_file[:2] / f"{linked_file}.jpg").symlink_to(outside)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{linked_folder}.jpg").write_bytes(outside.read_bytes())
    (web.evidence_dir / linked_folder[:2]).symlink_to(elsewhere, target_is_directory=True)
    (web.evidence_dir / f"{flat_link}.jpg").symlink_to("/etc/passwd")
    ops = web.client("ops")
    for sha in (linked_file, linked_folder, flat_link):
        assert ops.get(f"/api/evidence/{sha}").status_code == 404, sha
    real = stored_evidence(web, "a regular file")
    assert ops.get(f"/api/evidence/{real.sha256}").status_code == 200


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a ``width`` x ``height`` canvas (a decompression bomb's first bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("content_type,body", [
    ("image/jpeg", b"\xff\xd8\xff" + b"<html><script>alert(document.cookie)</script></html>"),
    ("image/jpeg", street_jpeg("truncated")[:1500]),
    ("image/png", b"\x89PNG\r\n\x1a\n<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"),
    ("image/webp", b"RIFF\x40\x00\x00\x00WEBPVP8 <html><script>alert(1)</script></html>"),
    ("image/png", png_claiming(60_000, 60_000)),
], ids=["html-behind-jpeg-magic", "truncated-jpeg", "svg-behind-png-magic", "html-behind-webp-magic", "png-bomb"])
def test_an_upload_must_decode_completely_as_the_type_it_claims(web: WebHarness, content_type, body) -> None:
    answer = upload(web.client("zhangwei"), body, content_type)
    assert answer.status_code == 415, answer.text
    assert answer.json()["error"].startswith("body: "), answer.text
    assert not (web.evidence_dir / hashlib.sha256(body).hexdigest()[:2]).joinpath(
        f"{hashlib.sha256(body).hexdigest()}.{content_type.split('/')[1].replace('jpeg', 'jpg')}").exists()


def test_real_png_and_webp_photos_are_still_accepted(web: WebHarness) -> None:
    import cv2
    import numpy as np

    frame = cv2.imdecode(np.frombuffer(street_jpeg("formats"), np.uint8), cv2.IMREAD_COLOR)
    client = web.client("zhangwei")
    for extension, content_type in ((".png", "image/png"), (".webp", "image/webp")):
        ok, encoded = cv2.imencode(extension, frame)
        assert ok
        answer = upload(client, encoded.tobytes(), content_type)
        assert answer.status_code == 201, answer.text
        served = client.get(answer.json()["url"])
        assert served.headers["content-type"] == content_type and served.headers["x-content-type-options"] == "nosniff"


def test_every_answer_carries_the_security_headers(web: WebHarness) -> None:
    anonymous, ops = web.client(), web.client("ops")
    evidence = stored_evidence(web, "headers")
    answers = [anonymous.get(page) for page in ("/", "/login", "/wall", "/officer", "/reports", "/docs")]
    answers += [anonymous.get("/static/common.js"), anonymous.get("/api/health"), anonymous.get("/api/me"),
                anonymous.get("/api/no-such-route"), anonymous.get("/openapi.json"), anonymous.get("/metrics"),
                ops.get(f"/api/evidence/{evidence.sha256}"), ops.get("/api/incidents"),
                anonymous.post("/api/login", content=b"{bad json", headers={"Content-Type": "application/json"})]
    for answer in answers:
        where = f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}"
        assert answer.headers.get("x-content-type-options") == "nosniff", where
        assert answer.headers.get("x-frame-options") == "DENY", where
        policy = dict(part.strip().split(" ", 1) for part in answer.headers["content-security-policy"].split(";"))
        assert policy["frame-ancestors"] == "'none'" and policy["script-src"] == "'self'", where
        assert "unsafe" not in policy["default-src"], where


def test_pages_have_no_inline_script_for_the_policy_to_block(web: WebHarness) -> None:
    import re

    for page in ("/", "/login", "/wall", "/officer", "/reports", "/reports/monthly", "/docs"):
        html = web.client().get(page).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page
        assert not re.search(r"\son[a-z]+\s*=", html), page  # inline event handlers are inline script too
