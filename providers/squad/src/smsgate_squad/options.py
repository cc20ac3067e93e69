"""``options`` of a Squad provider instance: one pydantic model for both API generations.

Unknown keys are errors; the names and their validation messages are part of the
configuration users write (``[tenants.x.providers.y.options]``), so they do not change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["SquadOptions"]


class SquadOptions(BaseModel):
    """``options`` of a Squad provider instance (validated; unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    #: ``"v2"`` (``/sms/...``, Bearer secret key) or ``"v1"`` (legacy VAS on port 8080).
    api_version: Literal["v2", "v1"] = "v2"
    #: Region used to read the local-format numbers Squad returns (``0806...``).
    region: str = "NG"
    #: Send non-Nigerian numbers as international digits instead of refusing them [INF].
    allow_international: bool = False
    #: Recipients per ``/sms/send/instant`` request [INF: no limit documented].
    max_batch: int = Field(default=100, ge=1, le=10_000)
    #: Page size for listings (``perPage`` in v2, ``count`` in v1).
    page_size: int = Field(default=50, ge=1, le=1_000)
    #: v2 bucket delete verb: GitBook says DELETE, docs.squadco.com says POST.
    bucket_delete_method: Literal["DELETE", "POST"] = "DELETE"
    #: Column header of the phone numbers in uploaded bucket CSVs [INF].
    csv_phone_column: str = "phone_number"
    # ---------------------------------------------------------------- v1 only
    #: v1 client id (path parameter of the ``by-client`` routes; part of the daily secret).
    client_id: str | None = None
    #: v1 user id (part of the daily secret).
    user_id: str | None = None
    #: v1 message routes: ``/service`` (GitBook, May 2025) or ``/dashboard`` (docs.squadco.com).
    v1_message_prefix: Literal["/service", "/dashboard"] = "/service"
    #: v1 "get all campaigns" route, as documented (it looks like a template route).
    v1_campaigns_path: str = "/service/template/by-client/{client_id}"
    #: v1 sender-ID route ("route sender/:client_ID", prefix undocumented) [INF].
    v1_sender_path: str = "/dashboard/sender/{client_id}"
    #: v1 header carrying the key [INF: header names undocumented].
    v1_key_header: str = "key"
    #: v1 header carrying the daily secret [INF].
    v1_secret_header: str = "secret"
    #: v1 query parameter that takes ``pageInfo.nextCursor`` [INF].
    v1_cursor_param: str = "cursor"
    #: v1 ``create_campaign``: how many times the campaign listing is read for the campaign just
    #: sent (one after another: an operation cannot wait). Still not listed: ``id=None``.
    v1_campaign_lookups: int = Field(default=3, ge=1, le=10)

    @field_validator("client_id", "user_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("csv_phone_column", "v1_key_header", "v1_secret_header", "v1_cursor_param")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()
