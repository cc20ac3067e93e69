"""Squad credentials: the legacy (v1) daily secret and the webhook signature.

v1 secret [DOC, v1 README]: ``base64(AES-256-CBC(key, iv, "<client_id> <user_id> <YYYY-MM-DD>"))``
with the key (32 characters) and IV (16 characters) taken from the VAS portal as text, PKCS#7
padding (the default of the documented C#, Node and PHP snippets). Deriving it needs the
optional ``cryptography`` package (``pip install "smsgate-squad[v1-secret]"``); without it, configure
a pre-computed ``secret`` credential instead.

Webhook signature [DOC, signature validation page]: header ``x-squad-encrypted-body`` is the
HMAC-SHA512 of the raw request body keyed with the merchant secret key, as hex. Squad's Node
and PHP samples compare upper-case hex, its C# sample lower-case, so :func:`verify_signature`
compares case-insensitively (in constant time).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date, datetime, timedelta, timezone

from smsgate.errors import ConfigError

__all__ = [
    "SIGNATURE_HEADER",
    "WAT",
    "derive_v1_secret",
    "have_cryptography",
    "sign_body",
    "v1_secret_plaintext",
    "verify_signature",
    "wat_today",
]

#: The header carrying the webhook signature.
SIGNATURE_HEADER = "x-squad-encrypted-body"

#: West Africa Time (Lagos, UTC+1, no daylight saving): the day the v1 secret is built for [INF].
WAT = timezone(timedelta(hours=1), "WAT")


def wat_today(now: datetime | None = None) -> date:
    """Today's date in Lagos (West Africa Time)."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(WAT).date()


def have_cryptography() -> bool:
    """Whether the optional ``cryptography`` package (needed to derive v1 secrets) is installed."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def v1_secret_plaintext(client_id: str, user_id: str, day: date) -> str:
    """The text Squad's v1 secret encrypts: ``"<client_id> <user_id> <YYYY-MM-DD>"``."""
    return f"{client_id} {user_id} {day.isoformat()}"


def derive_v1_secret(encryption_key: str, iv: str, client_id: str, user_id: str, day: date) -> str:
    """Compute the v1 secret header value for ``day``.

    Raises :class:`~smsgate.errors.ConfigError` when ``cryptography`` is missing or the key /
    IV have the wrong length (AES-256 needs 32 bytes of key, CBC 16 bytes of IV).
    """
    try:
        from cryptography.hazmat.primitives import padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "deriving the Squad v1 secret needs the 'cryptography' package: "
            "pip install 'smsgate-squad[v1-secret]', or configure a pre-computed credentials.secret"
        ) from None
    key_bytes = encryption_key.encode("utf-8")
    iv_bytes = iv.encode("utf-8")
    if len(key_bytes) != 32:
        raise ConfigError(
            f"Squad v1 encryption key must be 32 bytes (AES-256), got {len(key_bytes)}"
        )
    if len(iv_bytes) != 16:
        raise ConfigError(f"Squad v1 IV must be 16 bytes, got {len(iv_bytes)}")
    padder = padding.PKCS7(128).padder()
    plain = padder.update(v1_secret_plaintext(client_id, user_id, day).encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key_bytes), modes.CBC(iv_bytes)).encryptor()
    cipher = encryptor.update(plain) + encryptor.finalize()
    return base64.b64encode(cipher).decode("ascii")


def sign_body(secret_key: str, body: bytes) -> str:
    """The ``x-squad-encrypted-body`` value for ``body``: upper-case HMAC-SHA512 hex, as Squad sends."""
    return hmac.new(secret_key.encode("utf-8"), body, hashlib.sha512).hexdigest().upper()


def verify_signature(secret_key: str, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` is the HMAC-SHA512 of ``body`` under ``secret_key`` (any hex case)."""
    if not signature:
        return False
    expected = hmac.new(secret_key.encode("utf-8"), body, hashlib.sha512).hexdigest()
    given = signature.strip().lower()
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))
