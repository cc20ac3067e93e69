"""The Starlette routes of the Colony emulator: decode a request, call the state, answer.

Each route handler reads what the request carries (JSON body, form fields, multipart CSV,
query and path parameters), calls one :class:`~smsgate_colony.emulator.state.ColonyEmulator`
method and turns its return value into the answer (DRF paging for listings); a
:class:`~smsgate_colony.emulator.state.Rejected` becomes the DRF error body with its status.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smsgate.emulation import emulator_app
from smsgate_colony.emulator.state import ColonyEmulator, Rejected, parse_multipart

__all__ = ["ColonyRoutes", "create_app"]

Handler = Callable[[Request], Awaitable[Response]]

_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="api"'}


def _ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _no_content() -> Response:
    return Response(status_code=204)


def _error(exc: Rejected) -> JSONResponse:
    headers = _WWW_AUTHENTICATE if exc.status == 401 else None
    return JSONResponse(exc.detail, status_code=exc.status, headers=headers)


async def _json(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError as exc:
        raise Rejected({"detail": f"JSON parse error - {exc}"}) from None


async def _multipart(request: Request) -> tuple[dict[str, str], bytes]:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise Rejected({"detail": f'Unsupported media type "{ctype}" in request.'}, 415)
    try:
        fields, files = parse_multipart(ctype, await request.body())
    except ValueError:
        raise Rejected({"detail": "Multipart form parse error."}) from None
    if "file" not in files:
        raise Rejected({"file": ["No file was submitted."]})
    content = files["file"][1]
    if not content.strip():
        raise Rejected({"file": ["The submitted file is empty."]})
    return fields, content


def _id(request: Request) -> int:
    return int(request.path_params["id"])


class ColonyRoutes:
    """The HTTP face of one :class:`ColonyEmulator`: one handler per route."""

    def __init__(self, state: ColonyEmulator) -> None:
        self.state = state

    def page(self, request: Request, items: list[Any]) -> JSONResponse:
        """A listing as DRF's ``{count, next, previous, results}`` (or a plain array)."""
        state = self.state
        if not state.paginate:
            return _ok(items)
        try:
            size = min(1000, max(1, int(request.query_params.get("page_size", state.page_size))))
            page = int(request.query_params.get("page", "1"))
        except ValueError:
            raise Rejected({"detail": "Invalid page."}, 404) from None
        pages = max(1, -(-len(items) // size))
        if page < 1 or page > pages:
            raise Rejected({"detail": "Invalid page."}, 404)
        chunk = items[(page - 1) * size : page * size]
        nxt = str(request.url.include_query_params(page=page + 1)) if page < pages else None
        prev = None
        if page > 1:
            prev = str(request.url.include_query_params(page=page - 1) if page > 2
                       else request.url.remove_query_params("page"))
        return _ok({"count": len(items), "next": nxt, "previous": prev, "results": chunk})

    # ====================================================================== auth
    async def token(self, request: Request) -> Response:
        """``POST /oauth2/access_token/`` (form-encoded password / refresh_token grants)."""
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise Rejected({"error": "invalid_request"})
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        return _ok(self.state.grant_token(form))

    # ============================================================= contact lists
    async def contactlists(self, request: Request) -> Response:
        """``GET`` list / ``POST`` create contact lists."""
        if request.method == "GET":
            return self.page(request, self.state.list_contact_lists())
        return _ok(self.state.create_contact_list(await _json(request)), 201)

    async def contactlist(self, request: Request) -> Response:
        """``GET PUT PATCH DELETE`` one contact list."""
        if request.method == "GET":
            return _ok(self.state.get_contact_list(_id(request)))
        if request.method == "DELETE":
            return await self.contactlist_delete(request)
        self.state.get_contact_list(_id(request))  # 404 before the body is read
        return _ok(self.state.update_contact_list(_id(request), await _json(request), request.method == "PATCH"))

    async def contactlist_delete(self, request: Request) -> Response:
        """``DELETE`` a contact list and its contacts."""
        self.state.delete_contact_list(_id(request))
        return _no_content()

    async def contactlists_bulk_delete(self, request: Request) -> Response:
        """``DELETE {"ids": [...]}``: several lists, all or nothing."""
        self.state.delete_contact_lists(await _json(request))
        return _no_content()

    async def contactlist_import(self, request: Request) -> Response:
        """``POST`` a CSV (field ``file``) creating a list titled ``title``; answers ``{}``."""
        fields, content = await _multipart(request)
        return _ok(self.state.import_contact_list(fields.get("title", ""), content), 201)

    async def contactlist_import_into(self, request: Request) -> Response:
        """``POST`` a CSV adding contacts to an existing list; answers ``{}``."""
        self.state.get_contact_list(_id(request))  # 404 before the upload is read
        _, content = await _multipart(request)
        return _ok(self.state.import_contacts(_id(request), content), 201)

    async def contactlist_refresh(self, request: Request) -> Response:
        """``GET``: re-run the list's saved query; answers ``{}``."""
        return _ok(self.state.refresh_contact_list(_id(request)))

    async def contactlist_generate(self, request: Request) -> Response:
        """``POST {contact_list, saved_query?}``: launch the task saving contacts into a list."""
        return _ok(self.state.generate_contact_list(await _json(request)), 202)

    # ================================================================== contacts
    async def contacts(self, request: Request) -> Response:
        """``GET`` (``?contact_list=``) / ``POST`` batch (array) or single contact creation."""
        if request.method == "GET":
            return self.page(request, self.state.list_contacts(request.query_params.get("contact_list")))
        return _ok(self.state.create_contacts(await _json(request)), 201)

    async def contact(self, request: Request) -> Response:
        """``GET PUT PATCH DELETE`` one contact."""
        if request.method == "GET":
            return _ok(self.state.get_contact(_id(request)))
        if request.method == "DELETE":
            self.state.delete_contact(_id(request))
            return _no_content()
        self.state.get_contact(_id(request))
        return _ok(self.state.update_contact(_id(request), await _json(request), request.method == "PATCH"))

    # =================================================================== company
    async def company(self, request: Request) -> Response:
        """``GET PUT PATCH`` the company's details."""
        if request.method == "GET":
            return _ok(self.state.get_company())
        return _ok(self.state.update_company(await _json(request), replace=request.method == "PUT"))

    # =============================================================== deployments
    async def deployments(self, request: Request) -> Response:
        """``GET`` list / ``POST`` create a deployment from the published model's fields."""
        if request.method == "GET":
            return self.page(request, self.state.list_deployments())
        return _ok(self.state.create_deployment(await _json(request)), 201)

    async def deployment(self, request: Request) -> Response:
        """``GET PUT PATCH DELETE`` one deployment; changes only while it has not started sending."""
        if request.method == "GET":
            return _ok(self.state.get_deployment(_id(request)))
        if request.method == "DELETE":
            self.state.delete_deployment(_id(request))
            return _no_content()
        self.state.ensure_not_started(_id(request))
        return _ok(self.state.update_deployment(_id(request), await _json(request), request.method == "PATCH"))

    async def deployment_import(self, request: Request) -> Response:
        """``POST`` CSV ``destination,message`` rows creating a deployment."""
        fields, content = await _multipart(request)
        return _ok(self.state.import_deployment(fields, content), 201)

    async def deployment_import_numbers(self, request: Request) -> Response:
        """``POST`` CSV of ``destination`` numbers + form field ``message`` creating a deployment."""
        fields, content = await _multipart(request)
        return _ok(self.state.import_deployment_numbers(fields, content), 201)

    async def deployment_import_into(self, request: Request) -> Response:
        """``POST`` CSV rows appended to a deployment that has not started sending."""
        self.state.ensure_not_started(_id(request))
        _, content = await _multipart(request)
        return _ok(self.state.import_deployment_rows(_id(request), content), 201)

    async def deployment_report(self, request: Request) -> Response:
        """``POST`` (or ``GET``): generate a report into the filebox."""
        return _ok(self.state.deployment_report(_id(request)), 202)

    async def deployment_stats(self, request: Request) -> Response:
        """``GET`` statistics rows for a period (``?deployment=``)."""
        rows = self.state.deployment_stats(request.path_params["period"], request.query_params.get("deployment"))
        return self.page(request, rows)

    async def deployment_stat(self, request: Request) -> Response:
        """``GET`` one statistics row."""
        return _ok(self.state.deployment_stat(request.path_params["period"], _id(request)))

    # ================================================================== messages
    async def message(self, request: Request) -> Response:
        """``POST {message, destination, campaign_pk?}``; answers ``{}`` (seed 002)."""
        return _ok(self.state.send_message(await _json(request)), 201)

    async def message_bulk(self, request: Request) -> Response:
        """``POST [{destination, message, campaign_pk?}, ...]``; answers ``{}`` (seed 002)."""
        return _ok(self.state.send_bulk(await _json(request)), 201)

    # =================================================================== collate
    async def collate_campaigns(self, request: Request) -> Response:
        """``GET`` the company's collate campaigns."""
        return self.page(request, self.state.list_collate_campaigns())

    async def collate_campaign(self, request: Request) -> Response:
        """``GET`` one collate campaign."""
        return _ok(self.state.get_collate_campaign(_id(request)))

    async def inbound_messages(self, request: Request) -> Response:
        """``GET`` received messages (``?campaign=``, ``?originator=``)."""
        q = request.query_params
        return self.page(request, self.state.list_inbound(q.get("campaign"), q.get("originator")))

    async def inbound_message(self, request: Request) -> Response:
        """``GET`` one received message."""
        return _ok(self.state.get_inbound(_id(request)))

    # ================================================================== opt-outs
    async def optouts(self, request: Request) -> Response:
        """``GET`` (``?originator=``) list; ``POST {originator, reason}`` create."""
        if request.method == "GET":
            return self.page(request, self.state.list_optouts(request.query_params.get("originator")))
        return _ok(self.state.create_optout(await _json(request)), 201)

    async def optout_overwrite(self, request: Request) -> Response:
        """``POST``: overwrite (lift) an opt-out."""
        return _ok(self.state.overwrite_optout(_id(request)))

    # ================================================================== controls
    async def control_inbound(self, request: Request) -> Response:
        """``POST /_colony/inbound {originator, text}``: a reply; STOP words opt the sender out."""
        return _ok(self.state.reply(await _json(request)))

    async def control_campaigns(self, request: Request) -> Response:
        """``POST /_colony/campaigns {title, id?}``: create a collate campaign."""
        body = await _json(request)
        return _ok(self.state.add_campaign(str(body.get("title") or ""), body.get("id")), 201)

    async def control_optouts(self, request: Request) -> Response:
        """``POST /_colony/optouts {originator, reason}``: seed an opt-out."""
        body = await _json(request)
        return _ok(self.state.add_optout(str(body["originator"]), str(body.get("reason") or "seeded")), 201)

    async def control_saved_queries(self, request: Request) -> Response:
        """``POST /_colony/saved_queries {id, msisdns}``: define a saved query's result."""
        body = await _json(request)
        return _ok(self.state.set_saved_query(int(body["id"]), body.get("msisdns", [])))

    async def control_revoke(self, request: Request) -> Response:
        """``POST /_colony/revoke_tokens``: invalidate every access token."""
        return _ok({"revoked": self.state.revoke_tokens()})

    async def control_reset(self, request: Request) -> Response:
        """``POST /_colony/reset``: a fresh account (the request log is reset via ``/_emulator/reset``)."""
        self.state.reset()
        return _ok({"ok": True})

    async def control_filebox(self, request: Request) -> Response:
        """``GET /_colony/filebox``: generated reports."""
        return _ok(list(self.state.filebox))

    async def control_messages(self, request: Request) -> Response:
        """``GET /_colony/messages``: every message handed over, with its state."""
        return _ok(self.state.messages())

    # ==================================================================== routes
    def routes(self) -> list[Route]:
        """Starlette routes for the configured paths plus the ``/_colony`` controls."""
        table: dict[str, tuple[tuple[str, ...], Handler]] = {
            "token": (("POST",), self.token),
            "contactlists": (("GET", "POST"), self.contactlists),
            "contactlist": (("GET", "PUT", "PATCH", "DELETE"), self.contactlist),
            "contactlist_delete": (("DELETE",), self.contactlist_delete),
            "contactlists_delete": (("DELETE",), self.contactlists_bulk_delete),
            "contactlist_import": (("POST",), self.contactlist_import),
            "contactlist_import_into": (("POST",), self.contactlist_import_into),
            "contactlist_refresh": (("GET",), self.contactlist_refresh),
            "contactlist_generate": (("POST",), self.contactlist_generate),
            "contacts": (("GET", "POST"), self.contacts),
            "contact": (("GET", "PUT", "PATCH", "DELETE"), self.contact),
            "company": (("GET", "PUT", "PATCH"), self.company),
            "deployments": (("GET", "POST"), self.deployments),
            "deployment": (("GET", "PUT", "PATCH", "DELETE"), self.deployment),
            "deployment_import": (("POST",), self.deployment_import),
            "deployment_import_numbers": (("POST",), self.deployment_import_numbers),
            "deployment_import_into": (("POST",), self.deployment_import_into),
            "deployment_report": (("GET", "POST"), self.deployment_report),
            "deployment_stats": (("GET",), self.deployment_stats),
            "deployment_stat": (("GET",), self.deployment_stat),
            "message": (("POST",), self.message),
            "message_bulk": (("POST",), self.message_bulk),
            "collate_campaigns": (("GET",), self.collate_campaigns),
            "collate_campaign": (("GET",), self.collate_campaign),
            "inbound_messages": (("GET",), self.inbound_messages),
            "inbound_message": (("GET",), self.inbound_message),
            "optouts": (("GET", "POST"), self.optouts),
            "optout_filter": (("GET",), self.optouts),
            "optout_create": (("POST",), self.optouts),
            "optout_overwrite": (("POST",), self.optout_overwrite),
        }
        # several keys may share one path (e.g. list + filter + create): merge by path and method
        by_path: dict[str, dict[str, Handler]] = {}
        order: list[str] = []
        for key, (methods, handler) in table.items():
            template = _route_template(self.state.paths[key])
            if template not in by_path:
                by_path[template] = {}
                order.append(template)
            for method in methods:
                by_path[template].setdefault(method, handler)
        # literal paths before parameterised ones, so /import/ never reads as {id}
        ranked = sorted(enumerate(order), key=lambda it: (it[1].count("{"), it[0]))
        # every verb reaches the dispatcher, which answers unsupported ones with DRF's JSON 405
        verbs = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        routes = [Route(t, self._dispatcher(by_path[t]), methods=verbs) for _, t in ranked]
        controls: list[tuple[str, str, Handler]] = [
            ("/_colony/inbound", "POST", self.control_inbound),
            ("/_colony/optouts", "POST", self.control_optouts),
            ("/_colony/campaigns", "POST", self.control_campaigns),
            ("/_colony/saved_queries", "POST", self.control_saved_queries),
            ("/_colony/revoke_tokens", "POST", self.control_revoke),
            ("/_colony/reset", "POST", self.control_reset),
            ("/_colony/filebox", "GET", self.control_filebox),
            ("/_colony/messages", "GET", self.control_messages),
        ]
        routes += [Route(path, self._guard(handler), methods=[method]) for path, method, handler in controls]
        return routes

    @staticmethod
    def _guard(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Rejected as exc:
                return _error(exc)

        return run

    def _dispatcher(self, methods: Mapping[str, Handler]) -> Handler:
        async def dispatch(request: Request) -> Response:
            handler = methods.get(request.method)
            if handler is None:
                return _error(Rejected({"detail": f'Method "{request.method}" not allowed.'}, 405))
            try:
                if handler != self.token:
                    self.state.check_auth(request.headers.get("authorization", ""))
                    self.state.check_scope(request.headers.get("authorization", ""), request.method)
                return await handler(request)
            except Rejected as exc:
                return _error(exc)

        return dispatch


def _route_template(path: str) -> str:
    """A path template as a Starlette route (``{id}`` -> ``{id:int}``); absolute URLs keep their path."""
    if path.startswith(("http://", "https://")):
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return path.replace("{id}", "{id:int}").replace("{period}", "{period:str}")


def _drf_error(status: int, message: str) -> dict[str, Any]:
    """The body of an injected ``status`` fault: DRF's ``{"detail": ...}``; for a 2xx (an error
    inside a success answer, as the deployment model's ``error`` field carries one) ``{"error": ...}``.
    """
    if status == 429:
        return {"detail": "Request was throttled."}
    if 200 <= status < 300:
        return {"error": message}
    return {"detail": message}


def create_app(**options: Any) -> Any:
    """A fresh Colony emulator (ASGI app) with its own state.

    Options: ``credentials`` (dict, default :data:`SANDBOX_CREDENTIALS`),
    ``delivery_delay`` (seconds, default 0.2), ``token_ttl`` (seconds, default 86399),
    ``page_size`` (default 50), ``paginate`` (default True; False answers plain arrays),
    ``saved_queries`` ({id: [msisdn, ...]}), ``optouts`` ([msisdn or {originator, reason}]),
    ``paths`` (endpoint path overrides, like the provider option), ``clock`` (a
    ``time.time``-like callable, to move the emulator through time in tests),
    ``collate_campaigns`` ([title or {id, title}]: the account's collate campaigns; when
    given, a send's ``campaign_pk`` must name one of them), ``write_scope`` (default False; True
    answers a write made with a token lacking the ``write`` scope 403, as DRF would [INF]),
    ``invalid_numbers`` ([msisdn]: well-formed numbers refused as not a valid mobile number).
    The state object (:class:`ColonyEmulator`) is reachable as ``app.vendor``.
    """
    state = ColonyEmulator(**options)
    app = Starlette(routes=ColonyRoutes(state).routes())
    return emulator_app(app, error_body=_drf_error, vendor=state)
