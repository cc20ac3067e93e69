"""The Squad emulator's HTTP face: Starlette routes that read a request, call
:class:`~smsgate_squad.emulator.state.SquadEmulator` and wrap its answer in Squad's envelope.

* v2: ``Authorization: Bearer <secret key>``; envelope ``{status: 200, success, message, data}``.
* v1: headers ``key`` / ``secret`` (names configurable); envelopes ``{status: "SUCCESS"|"CREATED",
  message, data}`` (the bucket routes omit ``status``); message routes under both
  ``/service/message...`` and ``/dashboard/message...``.
* 401 ``{"success": false, "message": "", "data": {}}`` without credentials, 403
  ``"Merchant authentication failed"`` with wrong ones; other errors use Squad's generic
  ``{"status": 400, "success": false, "message": ..., "data": {}}``.
* With ``webhook_url`` each message's transitions are POSTed there, signed like Squad
  (``x-squad-encrypted-body``: upper-case HMAC-SHA512 hex of the body keyed with the secret
  key), unless a ``drop_callbacks`` fault is active.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smsgate.emulation import CallbackPoster, emulator_app
from smsgate_squad.auth import SIGNATURE_HEADER, sign_body
from smsgate_squad.emulator.state import (
    SANDBOX_CLIENT_ID,
    SANDBOX_SECRET_KEY,
    SANDBOX_USER_ID,
    SANDBOX_V1_IV,
    SANDBOX_V1_KEY,
    SANDBOX_V1_SECRET,
    Message,
    Rejected,
    S3Error,
    SquadEmulator,
)

__all__ = ["create_app"]

log = logging.getLogger("smsgate_squad.emulator")

Handler = Callable[[Request], Awaitable[Response]]


def _err(status: int, message: str) -> JSONResponse:
    """Squad's generic error envelope [DOC, other Squad APIs]."""
    return JSONResponse({"status": status, "success": False, "message": message, "data": {}},
                        status_code=status)


def _denied(refusal: Rejected) -> JSONResponse:
    """The 401/403 bodies, which carry no ``status`` [DOC]."""
    return JSONResponse({"success": False, "message": refusal.message, "data": {}}, status_code=refusal.status)


def _v2(data: Any) -> JSONResponse:
    return JSONResponse({"status": 200, "success": True, "message": "Success", "data": data})


def _v1(message: str, data: Any, status: str | None = "SUCCESS") -> JSONResponse:
    body: dict[str, Any] = {} if status is None else {"status": status}
    body["message"] = message
    if data is not None:
        body["data"] = data
    return JSONResponse(body)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise Rejected(400, "Invalid JSON body") from None
    if not isinstance(body, dict):
        raise Rejected(400, "Request body must be a JSON object")
    return body


class _Callbacks:
    """Signed status callbacks to ``webhook_url`` as messages advance (one task per batch)."""

    def __init__(self, st: SquadEmulator) -> None:
        self.st = st
        self.tasks: set[asyncio.Task[None]] = set()
        self.poster = CallbackPoster()

    def schedule(self, msgs: list[Message]) -> None:
        if not self.st.webhook_url or not msgs:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(list(msgs)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, msgs: list[Message]) -> None:
        st = self.st
        assert st.webhook_url is not None
        key = st.webhook_secret or st.secret_key
        for fraction in (0.5, 1.0):
            wait = msgs[0].created + st.delivery_delay * fraction - st.now()
            if wait > 0:
                await asyncio.sleep(wait)
            if st.control.callbacks_dropped():
                continue
            for msg in msgs:
                body = st.callback_body(msg, msg.created + st.delivery_delay * fraction)
                headers = {"content-type": "application/json", SIGNATURE_HEADER: sign_body(key, body)}
                try:
                    response = await self.poster.post(st.webhook_url, content=body, headers=headers)
                    st.callbacks.append({"transaction_id": msg.transaction_id,
                                         "status_code": response.status_code})
                except httpx.HTTPError as exc:
                    log.warning("squad emulator: callback to %s failed: %s", st.webhook_url, exc)

    async def shutdown(self) -> None:
        """Cancel pending callbacks."""
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.poster.aclose()


def create_app(
    *,
    secret_key: str = SANDBOX_SECRET_KEY,
    v1_key: str = SANDBOX_V1_KEY,
    v1_secret: str | None = SANDBOX_V1_SECRET,
    v1_encryption_key: str | None = None,
    v1_iv: str = SANDBOX_V1_IV,
    client_id: int = SANDBOX_CLIENT_ID,
    user_id: int = SANDBOX_USER_ID,
    v1_key_header: str = "key",
    v1_secret_header: str = "secret",
    merchant_id: str = "SMSGATE01",
    delivery_delay: float = 0.5,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    registered_senders: Iterable[str] | None = None,
    price_v2: Decimal | str = "5.41",
    price_v1: Decimal | str = "4",
    signed_url_ttl: float = 300.0,
    max_instant_batch: int = 1000,
) -> Any:
    """Build the emulator ASGI app (wrapped with request recording and fault injection).

    ``delivery_delay`` seconds until a message is final; ``webhook_url`` receives signed
    status callbacks; ``registered_senders`` (``None`` = any) limits v2 sender IDs. The
    state is reachable in-process as ``app.vendor`` (:class:`SquadEmulator`).
    """
    st = SquadEmulator(
        secret_key=secret_key, v1_key=v1_key, v1_secret=v1_secret, v1_encryption_key=v1_encryption_key,
        v1_iv=v1_iv, client_id=client_id, user_id=user_id, v1_key_header=v1_key_header.lower(),
        v1_secret_header=v1_secret_header.lower(), merchant_id=merchant_id,
        delivery_delay=max(0.0, delivery_delay), webhook_url=webhook_url, webhook_secret=webhook_secret,
        registered_senders=None if registered_senders is None else frozenset(registered_senders),
        price_v2=Decimal(str(price_v2)), price_v1=Decimal(str(price_v1)),
        signed_url_ttl=signed_url_ttl, max_instant_batch=max_instant_batch,
    )
    callbacks = _Callbacks(st)
    st.on_messages = callbacks.schedule

    def v2(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            denied = st.check_v2(request.headers.get("authorization", ""))
            if denied is not None:
                return _denied(denied)
            try:
                st.tick()
                return await handler(request)
            except Rejected as exc:
                return _err(exc.status, exc.message)
        return wrapped

    def v1(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            denied = st.check_v1(request.headers.get(st.v1_key_header, ""),
                                 request.headers.get(st.v1_secret_header, ""))
            if denied is not None:
                return _denied(denied)
            try:
                return await handler(request)
            except Rejected as exc:
                return _err(exc.status, exc.message)
        return wrapped

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # ================================================================ v2
    async def send_instant(request: Request) -> Response:
        return _v2(st.send_instant(await _json_body(request)))

    async def templates_v2(request: Request) -> Response:
        if request.method == "POST":
            return _v2(st.create_template_v2(await _json_body(request)))
        return _v2(st.list_templates_v2(request.query_params))

    async def template_v2_item(request: Request) -> Response:
        uuid = request.path_params["uuid"]
        if request.method == "DELETE":
            return _v2(st.delete_template_v2(uuid))
        if uuid not in st.templates_v2:  # 404 before reading the body, as before
            raise Rejected(404, "Template not found")
        return _v2(st.edit_template_v2(uuid, await _json_body(request)))

    async def buckets_v2(request: Request) -> Response:
        if request.method == "POST":
            return _v2(st.create_bucket_v2(await _json_body(request), base_url(request)))
        return _v2(st.list_buckets_v2(request.query_params))

    async def bucket_v2_item(request: Request) -> Response:
        return _v2(st.delete_bucket_v2(request.path_params["uuid"]))

    async def s3_put(request: Request) -> Response:
        try:
            etag = st.upload_csv(request.url.path, request.query_params, request.headers.get("x-amz-acl"),
                                 await request.body(), base_url(request))
        except S3Error as exc:
            xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{exc.code}</Code>'
                   f"<Message>{exc.message}</Message></Error>")
            return Response(xml, status_code=exc.status, media_type="application/xml")
        return Response(b"", status_code=200, headers={"ETag": f'"{etag}"'})

    async def campaigns_v2(request: Request) -> Response:
        if request.method == "POST":
            return _v2(st.create_campaign_v2(await _json_body(request)))
        return _v2(st.list_campaigns_v2(request.query_params))

    async def campaign_v2_item(request: Request) -> Response:
        return _v2(st.delete_campaign_v2(request.path_params["uuid"]))

    # ================================================================ v1
    async def send_v1(request: Request) -> Response:
        return _v1("messages sent successfully", st.send_v1(await _json_body(request)))

    async def campaign_messages_v1(request: Request) -> Response:
        return _v1("campaign messages retrieved successfully",
                   st.campaign_messages_v1(request.path_params["campaign_id"], request.query_params))

    async def stats_client_v1(request: Request) -> Response:
        return _v1("statistics retrieved successfully", st.client_statistics_v1(request.path_params["client_id"]))

    async def stats_campaign_v1(request: Request) -> Response:
        return _v1("campaign statistics retrieved successfully",
                   st.campaign_statistics_v1(request.path_params["campaign_id"]))

    async def by_phone_v1(request: Request) -> Response:
        return _v1("phone messages retrieved successfully",
                   st.messages_by_phone_v1(request.path_params["phone"], request.query_params))

    async def by_params_v1(request: Request) -> Response:
        return _v1("messages retrieved successfully", st.messages_by_batch_v1(request.query_params))

    async def hourly_v1(request: Request) -> Response:
        return _v1("hourly statistics retrieved successfully",
                   st.hourly_statistics_v1(request.path_params["client_id"], request.query_params.get("date", "")))

    async def campaigns_v1(request: Request) -> Response:
        return _v1("campaigns retrieved successfully",
                   st.campaigns_v1_listing(request.path_params["client_id"], request.query_params))

    async def buckets_v1(request: Request) -> Response:
        if request.method == "POST":
            return _v1("bucket created successfully", st.create_bucket_v1(await _json_body(request)),
                       status="CREATED")
        # the bucket list has no "status" key [DOC]
        return _v1("success", st.buckets_v1_listing(request.path_params["client_id"], request.query_params),
                   status=None)

    async def bucket_v1_item(request: Request) -> Response:
        bucket_id = request.path_params["bucket_id"]
        if request.method == "DELETE":
            st.delete_bucket_v1(bucket_id)
            return _v1("success", None, status=None)
        st.find_bucket_v1(bucket_id)  # 404 before reading the body
        return _v1("success", st.rename_bucket_v1(bucket_id, await _json_body(request)), status=None)

    async def templates_v1(request: Request) -> Response:
        if request.method == "POST":
            return _v1("template created successfully", st.create_template_v1(await _json_body(request)),
                       status="CREATED")
        return _v1("templates retrieved successfully",
                   st.templates_v1_listing(request.path_params["client_id"], request.query_params))

    async def template_v1_item(request: Request) -> Response:
        template_id = request.path_params["template_id"]
        if request.method == "DELETE":
            st.delete_template_v1(template_id)
            return _v1("success", None, status=None)
        st.find_template_v1(template_id)  # 404 before reading the body
        return _v1("template updated successfully", st.edit_template_v1(template_id, await _json_body(request)))

    async def senders_v1(request: Request) -> Response:
        return _v1("senders retrieved successfully", st.senders_v1(request.path_params["client_id"]))

    routes = [
        Route("/sms/send/instant", v2(send_instant), methods=["POST"]),
        Route("/sms/template", v2(templates_v2), methods=["GET", "POST"]),
        Route("/sms/template/{uuid}", v2(template_v2_item), methods=["PATCH", "DELETE"]),
        Route("/sms/bucket", v2(buckets_v2), methods=["GET", "POST"]),
        # GitBook: DELETE; docs.squadco.com: POST -- accept both
        Route("/sms/bucket/{uuid}", v2(bucket_v2_item), methods=["DELETE", "POST"]),
        Route("/sms/campaign", v2(campaigns_v2), methods=["GET", "POST"]),
        Route("/sms/campaign/{uuid}", v2(campaign_v2_item), methods=["DELETE"]),
        Route("/_s3/{key:path}", s3_put, methods=["PUT"]),
        # v1 routes that do not depend on the message prefix
        Route("/service/template/by-client/{client_id}", v1(campaigns_v1), methods=["GET"]),
        Route("/dashboard/bucket", v1(buckets_v1), methods=["POST"]),
        Route("/dashboard/bucket/by-client/{client_id}", v1(buckets_v1), methods=["GET"]),
        Route("/dashboard/bucket/{bucket_id}", v1(bucket_v1_item), methods=["PATCH", "DELETE"]),
        Route("/dashboard/template", v1(templates_v1), methods=["POST"]),
        Route("/dashboard/template/by-client/{client_id}", v1(templates_v1), methods=["GET"]),
        Route("/dashboard/template/{template_id}", v1(template_v1_item), methods=["PATCH", "DELETE"]),
    ]
    for prefix in ("/service", "/dashboard"):
        routes += [
            Route(f"{prefix}/message", v1(send_v1), methods=["POST"]),
            Route(f"{prefix}/message/campaign/messages/by-campaign/{{campaign_id}}",
                  v1(campaign_messages_v1), methods=["GET"]),
            Route(f"{prefix}/message/statistics/by-client/{{client_id}}", v1(stats_client_v1), methods=["GET"]),
            Route(f"{prefix}/message/statistics/by-campaign/{{campaign_id}}", v1(stats_campaign_v1),
                  methods=["GET"]),
            Route(f"{prefix}/message/by-phone/{{phone}}", v1(by_phone_v1), methods=["GET"]),
            Route(f"{prefix}/message/by-params", v1(by_params_v1), methods=["GET"]),
            Route(f"{prefix}/message.summary/hourly-statistics/by-client/{{client_id}}", v1(hourly_v1),
                  methods=["GET"]),
            Route(f"{prefix}/sender/{{client_id}}", v1(senders_v1), methods=["GET"]),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await callbacks.shutdown()

    async def not_found(request: Request, exc: Exception) -> Response:
        return _err(404, "Route not found")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _err(405, "Method not allowed")

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_allowed})
    wrapped = emulator_app(
        app, state=st.control,
        error_body=lambda status, message: {"status": status, "success": False, "message": message, "data": {}},
        vendor=st,
    )
    return wrapped
