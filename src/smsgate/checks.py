"""Online checks of configured provider instances (``smsgate config check --online``).

Each instance runs its provider's :meth:`~smsgate.provider.Provider.check`: a harmless
authenticated call (nothing sent, nothing created). What the call raised or returned
becomes one :class:`InstanceCheck`: whether the vendor was reachable, whether it accepted
the credentials, and whether the sender ID is registered where the vendor can tell::

    with Gateway("smsgate.toml") as gw:
        for result in check_online(gw):
            print(result.name, result.outcome, result.detail)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx

from smsgate.errors import (
    AuthFailed,
    ProviderError,
    SmsgateError,
    TransportError,
    UnknownOutcome,
    Unsupported,
)
from smsgate.gateway import Gateway

__all__ = ["InstanceCheck", "check_online"]

Outcome = Literal["ok", "failed", "not checked"]


@dataclass(frozen=True)
class InstanceCheck:
    """The online check of one provider instance.

    ``reachable``, ``credentials_accepted`` and ``sender_valid`` are ``None`` where the
    check could not tell (e.g. a vendor that lists no sender IDs, or credentials never
    tried because the vendor was unreachable). ``outcome`` is ``"failed"`` when the
    vendor was unreachable, refused the credentials, answered with an error, or does not
    list the sender among its registered ones; ``"not checked"`` when the provider has no
    harmless call to make (:class:`~smsgate.errors.Unsupported`).
    """

    tenant: str
    instance: str
    plugin: str
    base_url: str
    outcome: Outcome
    reachable: bool | None
    credentials_accepted: bool | None
    sender: str | None
    sender_valid: bool | None
    #: what was called and found, or what went wrong (one line, secrets redacted)
    detail: str

    @property
    def name(self) -> str:
        """``tenant/instance``."""
        return f"{self.tenant}/{self.instance}"

    @property
    def failed(self) -> bool:
        """Whether the instance failed the check."""
        return self.outcome == "failed"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return asdict(self)


def _host_port(base_url: str) -> str:
    url = httpx.URL(base_url)
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return f"{url.host}:{port}"


def check_online(gateway: Gateway) -> list[InstanceCheck]:
    """Run every provider instance's :meth:`~smsgate.provider.Provider.check`, one by one: the
    configuration's tenants, then the gateway's tenant source's (``Gateway(tenants=...)``).

    Never raises for a provider's failure: each instance gets its :class:`InstanceCheck`.
    """
    results = []
    from smsgate.tenants import source_tenant_names

    for tname in [*gateway.settings.tenants, *source_tenant_names(gateway.settings.tenants, gateway.tenants)]:
        tenant = gateway.tenant(tname)
        tcfg = tenant.config
        for iname, icfg in tcfg.providers.items():
            prov = tenant.provider(iname)
            sender = icfg.sender or tcfg.sender
            base = {"tenant": tname, "instance": iname, "plugin": prov.name, "base_url": prov.base_url}
            try:
                found = tenant.run(iname, prov.check(sender))
            except Unsupported as exc:
                results.append(InstanceCheck(**base, outcome="not checked", reachable=None, credentials_accepted=None,
                                             sender=sender, sender_valid=None, detail=_line(exc)))
                continue
            except AuthFailed as exc:
                results.append(InstanceCheck(**base, outcome="failed", reachable=True, credentials_accepted=False,
                                             sender=sender, sender_valid=None,
                                             detail=f"credentials rejected: {_line(exc)}"))
                continue
            except (TransportError, UnknownOutcome) as exc:
                where = _host_port(prov.base_url)
                text = _line(exc)
                results.append(InstanceCheck(**base, outcome="failed", reachable=False, credentials_accepted=None,
                                             sender=sender, sender_valid=None,
                                             detail=f"unreachable: {text}" if where in text
                                             else f"unreachable ({where}): {text}"))
                continue
            except ProviderError as exc:  # it answered, with an error other than refused credentials
                results.append(InstanceCheck(**base, outcome="failed", reachable=True, credentials_accepted=None,
                                             sender=sender, sender_valid=None, detail=_line(exc)))
                continue
            except SmsgateError as exc:  # a configuration or input problem found while building the call
                results.append(InstanceCheck(**base, outcome="failed", reachable=None, credentials_accepted=None,
                                             sender=sender, sender_valid=None, detail=_line(exc)))
                continue
            detail = f"{found.endpoint} answered"
            if found.sender_detail:
                detail += f"; sender: {found.sender_detail}"
            results.append(InstanceCheck(
                **base, outcome="failed" if found.sender_valid is False else "ok", reachable=True,
                credentials_accepted=True, sender=found.sender, sender_valid=found.sender_valid, detail=detail,
            ))
    return results


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
