"""Property tests of Squad's pure converters, the webhook verifier and the v1 secret."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.errors import AuthFailed, ConfigError, MalformedResponse
from smsgate.models import CampaignStatus, Status
from smsgate.provider import ProviderSettings
from smsgate_squad import SquadProvider
from smsgate_squad import wire as P
from smsgate_squad.auth import derive_v1_secret, sign_body, v1_secret_plaintext, verify_signature

KEY = "sandbox_sk_0123456789abcdef"


# ------------------------------------------------------------------ statuses

@given(st.one_of(st.none(), st.text(), st.integers(), st.booleans(), st.floats(allow_nan=True)))
def test_status_mapping_is_total(raw: object) -> None:
    assert isinstance(P.map_status(raw), Status)
    assert isinstance(P.campaign_status(raw), CampaignStatus)


@pytest.mark.parametrize(("raw", "status"), [
    ("submitted", Status.SUBMITTED), ("Submitted", Status.SUBMITTED),
    ("pending", Status.SENT), ("Pending", Status.SENT),
    ("delivered", Status.DELIVERED), ("Delivered", Status.DELIVERED),
    ("delivery failed", Status.UNDELIVERED), ("Delivery Failed", Status.UNDELIVERED),
    ("DELIVERY_FAILED", Status.UNDELIVERED), ("deliveryFailed", Status.UNDELIVERED),
    ("SENT", Status.SENT), ("failed", Status.FAILED), ("invalid", Status.REJECTED),
    ("absent", Status.UNDELIVERED), ("something new", Status.UNKNOWN), (None, Status.UNKNOWN),
])
def test_documented_statuses(raw: object, status: Status) -> None:
    assert P.map_status(raw) is status


@given(st.sampled_from(sorted(P.STATUS_MAP)), st.sampled_from([" ", "_", "-", "  "]), st.booleans())
def test_status_spelling_variants(key: str, sep: str, upper: bool) -> None:
    raw = key.replace(" ", sep)
    raw = raw.upper() if upper else raw.title()
    assert P.map_status(f" {raw} ") is P.STATUS_MAP[key]


def test_campaign_status_scheduled_only_in_future() -> None:
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert P.campaign_status("pending", now + timedelta(days=1), now) is CampaignStatus.SCHEDULED
    assert P.campaign_status("pending", now - timedelta(days=1), now) is CampaignStatus.RUNNING
    assert P.campaign_status("success") is CampaignStatus.COMPLETED
    assert P.campaign_status("failed") is CampaignStatus.FAILED


# ------------------------------------------------------------------ numbers

ng_mobiles = st.builds(lambda p, rest: f"+234{p}{rest:07d}", st.sampled_from(["803", "806", "813", "816", "703",
                                                                             "705", "802", "808", "809", "817",
                                                                             "905", "901"]),
                       st.integers(0, 9_999_999))


@given(ng_mobiles)
def test_number_round_trip(e164: str) -> None:
    local = P.squad_number(e164)
    assert local is not None and len(local) == 11 and local.startswith("0")
    assert P.from_squad_number(local) == e164
    assert P.from_squad_number("234" + local[1:]) == e164
    assert P.from_squad_number(e164) == e164


# deadline=None: uncached calls take 30-50 us on any input tried (30-char digit runs, letters,
# other scripts' digits, huge integers); the rare 100+ ms example is phonenumbers loading a
# region's metadata on first use, or a loaded machine, which hypothesis' 200 ms deadline flagged
@settings(deadline=None)
@given(st.one_of(st.none(), st.text(max_size=30), st.integers(), st.booleans()))
def test_from_squad_number_never_raises(raw: object) -> None:
    out = P.from_squad_number(raw)
    assert out is None or out.startswith("+")


def test_foreign_numbers() -> None:
    assert P.squad_number("+447912345678") is None
    assert P.squad_number("+447912345678", allow_international=True) == "447912345678"


# ------------------------------------------------------------------ scalars

@given(st.integers(-10**12, 10**12))
def test_to_int_accepts_numbers_and_strings(n: int) -> None:
    assert P.to_int(n) == P.to_int(str(n)) == P.to_int(f" {n} ") == n


@given(st.one_of(st.none(), st.text(max_size=20), st.floats(allow_nan=True, allow_infinity=True),
                 st.lists(st.integers(), max_size=3), st.booleans()))
def test_scalar_readers_are_total(value: object) -> None:
    P.to_int(value)
    P.to_float(value)
    d = P.to_decimal(value)
    assert d is None or d.is_finite()
    P.v1_total(value)


@given(st.integers(0, 10**9))
def test_v1_total_quirk(n: int) -> None:
    assert P.v1_total(n) == P.v1_total(str(n)) == P.v1_total([{"total": str(n)}]) == n


def test_to_decimal_keeps_cents() -> None:
    assert P.to_decimal(5.41) == Decimal("5.41")
    assert P.to_decimal("0.00") == Decimal("0.00")


# ------------------------------------------------------------------ timestamps

@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)))
def test_iso_timestamps_round_trip(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert P.parse_timestamp(text) == moment


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)),
       st.integers(-12, 14))
def test_js_date_strings(moment: datetime, hours: int) -> None:
    tz = timezone(timedelta(hours=hours))
    local = moment.replace(microsecond=0, tzinfo=tz)
    sign = "+" if hours >= 0 else "-"
    text = local.strftime("%a %b %d %Y %H:%M:%S GMT") + f"{sign}{abs(hours):02d}00 (Some Zone Time)"
    assert P.parse_timestamp(text) == local


@given(st.one_of(st.none(), st.text(max_size=60), st.integers(), st.floats(allow_nan=True), st.booleans()))
def test_parse_timestamp_never_raises(value: object) -> None:
    out = P.parse_timestamp(value)
    assert out is None or out.tzinfo is not None


def test_timestamp_forms() -> None:
    utc = timezone.utc
    assert P.parse_timestamp("2025-05-22T09:34:58.800Z") == datetime(2025, 5, 22, 9, 34, 58, 800000, tzinfo=utc)
    assert P.parse_timestamp("2025-06-01") == datetime(2025, 6, 1, tzinfo=utc)
    assert P.parse_timestamp(1747906498860) == datetime(2025, 5, 22, 9, 34, 58, 860000, tzinfo=utc)
    assert P.parse_timestamp("Wed Dec 31 2025 10:05:10 GMT+0100 (West Africa Standard Time)") == datetime(
        2025, 12, 31, 9, 5, 10, tzinfo=utc)
    assert P.iso_z(datetime(2025, 6, 1, 11, 0, tzinfo=timezone(timedelta(hours=1)))) == "2025-06-01T10:00:00Z"


# ------------------------------------------------------------------ placeholders

literal = st.text(alphabet=st.characters(blacklist_characters="{}#$", blacklist_categories=("Cs",)), max_size=8)
ident = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
piece = st.one_of(literal, ident.map(lambda n: "{" + n + "}"), st.sampled_from(["{{", "}}", "#", "$"]))


@given(st.lists(piece, max_size=8).map("".join))
def test_placeholders_round_trip(body: str) -> None:
    squad = P.to_squad_placeholders(body)
    assert P.from_squad_placeholders(squad) == body or "#$" in body or "$#" in body


def test_placeholder_examples() -> None:
    assert P.to_squad_placeholders("Hi {name}, {{literal}}") == "Hi #$name$#, {literal}"
    assert P.from_squad_placeholders("Bal#$CCY$##$AVAIL_BAL$# {x}") == "Bal{CCY}{AVAIL_BAL} {{x}}"


# ------------------------------------------------------------------ webhook signature

@given(st.binary(max_size=300), st.text(min_size=1, max_size=40))
def test_signature_verifies_in_any_case(body: bytes, key: str) -> None:
    sig = sign_body(key, body)
    assert sig == sig.upper() and len(sig) == 128
    assert verify_signature(key, body, sig)
    assert verify_signature(key, body, sig.lower())
    assert not verify_signature(key + "x", body, sig)
    assert not verify_signature(key, body + b"x", sig)
    assert not verify_signature(key, body, None)


def _prov(v1: bool = False) -> SquadProvider:
    if v1:
        return SquadProvider(ProviderSettings(plugin="squad", credentials={"key": "k", "secret": "s", "secret_key": KEY},
                                              options={"api_version": "v1"}))
    return SquadProvider(ProviderSettings(plugin="squad", credentials={"secret_key": KEY}))


ITEM = {"status": "delivered", "id": 7, "transaction_id": "B_000", "phonenumber": "08064834084", "message": "hi",
        "sender_id": "S-Alert", "network": None, "charge": "5.41", "created_at": "2025-05-08T10:25:57.000Z",
        "sent_timestamp": "2025-05-08T10:25:58.000Z", "dlr_timestamp": "2025-05-08T10:26:01.000Z", "pages": 1,
        "message_type": "direct", "batch_id": "B"}


def test_parse_webhook_envelope() -> None:
    body = json.dumps({"Event": "sms_status_update", "TransactionRef": "B_000", "Body": ITEM}).encode()
    reports = _prov().parse_webhook({"X-Squad-Encrypted-Body": sign_body(KEY, body)}, body)
    (r,) = reports
    assert (r.provider_message_id, r.batch_id, r.to, r.status) == ("B_000", "B", "+2348064834084", Status.DELIVERED)
    assert r.occurred_at == datetime(2025, 5, 8, 10, 26, 1, tzinfo=timezone.utc)
    assert r.cost == Decimal("5.41")
    # v1 sends record the batch id as the message id, so v1 reports use it
    assert _prov(v1=True).parse_webhook({"x-squad-encrypted-body": sign_body(KEY, body)}, body)[0] \
        .provider_message_id == "B"


def test_parse_webhook_bare_item_and_list() -> None:
    for payload in (ITEM, [ITEM, dict(ITEM, status="Delivery Failed", transaction_id="B_001")]):
        body = json.dumps(payload).encode()
        reports = _prov().parse_webhook({"x-squad-encrypted-body": sign_body(KEY, body).lower()}, body)
        assert reports[0].status is Status.DELIVERED
    assert reports[1].status is Status.UNDELIVERED and reports[1].error_code == "delivery failed"


def test_parse_webhook_rejects_bad_signatures_and_bodies() -> None:
    body = json.dumps(ITEM).encode()
    with pytest.raises(AuthFailed, match="missing"):
        _prov().parse_webhook({}, body)
    with pytest.raises(AuthFailed, match="invalid"):
        _prov().parse_webhook({"x-squad-encrypted-body": sign_body("other", body)}, body)
    bad = b"not json"
    with pytest.raises(MalformedResponse):
        _prov().parse_webhook({"x-squad-encrypted-body": sign_body(KEY, bad)}, bad)
    no_status = json.dumps({"Body": {"id": 1}}).encode()
    with pytest.raises(MalformedResponse, match="status"):
        _prov().parse_webhook({"x-squad-encrypted-body": sign_body(KEY, no_status)}, no_status)
    nokey = SquadProvider(ProviderSettings(plugin="squad", credentials={"key": "k", "secret": "s"},
                                           options={"api_version": "v1"}))
    with pytest.raises(ConfigError):
        nokey.parse_webhook({}, body)


def test_webhook_secret_override() -> None:
    prov = SquadProvider(ProviderSettings(plugin="squad", credentials={"secret_key": KEY, "webhook_secret": "hook"}))
    body = json.dumps(ITEM).encode()
    assert prov.parse_webhook({"x-squad-encrypted-body": sign_body("hook", body)}, body)


# ------------------------------------------------------------------ v1 secret

@settings(max_examples=25)
@given(st.integers(1, 10**6), st.integers(1, 10**6), st.dates(min_value=date(2020, 1, 1), max_value=date(2100, 1, 1)))
def test_v1_secret_decrypts_to_documented_plaintext(client: int, user: int, day: date) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key, iv = "0123456789abcdef0123456789abcdef", "fedcba9876543210"
    secret = derive_v1_secret(key, iv, str(client), str(user), day)
    dec = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).decryptor()
    padded = dec.update(base64.b64decode(secret)) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    plain = (unpadder.update(padded) + unpadder.finalize()).decode()
    assert plain == v1_secret_plaintext(str(client), str(user), day) == f"{client} {user} {day.isoformat()}"


def test_v1_secret_key_lengths() -> None:
    pytest.importorskip("cryptography")
    with pytest.raises(ConfigError, match="32 bytes"):
        derive_v1_secret("short", "0123456789abcdef", "1", "1", date(2025, 1, 1))
    with pytest.raises(ConfigError, match="16 bytes"):
        derive_v1_secret("0123456789abcdef0123456789abcdef", "short", "1", "1", date(2025, 1, 1))
