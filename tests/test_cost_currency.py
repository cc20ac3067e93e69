"""A provider instance's configured ``currency`` and the costs vendors report.

The configured ``currency`` is the account's: it labels the ``price_per_segment`` estimate and
a cost the vendor gives without a currency (Campaigns REST's ``price``). A cost the vendor gives
in its own currency (Squad's ``NGN``) keeps it, whatever is configured: nothing is converted and
no cost is labelled with a currency it is not in.
"""

from __future__ import annotations

from decimal import Decimal

from smsgate import Gateway
from smsgate.lifecycle import Status
from smsgate.models import OutboundMessage, SendResult
from smsgate.testing import LiveServer
from smsgate.testing.sandbox import start_emulator
from test_kernel import policy as kernel_policy


def test_a_cost_the_vendor_gives_without_a_currency_is_in_the_configured_one(tmp_path: object) -> None:
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    with LiveServer(create_app()) as server:
        prov = {"plugin": "campaigns_api", "base_url": server.url, "credentials": {"api_key": SANDBOX_API_KEY},
                "sender": "ACME", "currency": "GBP"}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "GB", "providers": {"dm": prov}}}}
        with Gateway(cfg) as gw:
            t = gw.tenant("acme")
            sent = t.send("+447911123456", "hello")
            rec = t.status(sent.message_id)  # the vendor's listing: price 0.035, no currency
            assert rec.cost == Decimal("0.035"), rec
            assert rec.currency == "GBP", rec
            stats = t.stats()
            assert stats.costs == {"GBP": Decimal("0.035")} and stats.currency == "GBP", stats


def test_a_vendor_cost_in_its_own_currency_keeps_it_whatever_is_configured() -> None:
    emu = start_emulator("squad")
    try:
        gw = emu.gateway("acme", region="NG", instance="main", currency="USD", price_per_segment=0.01)
        sent = gw.tenant("acme").send("08031234567", "hello")
        assert sent.cost is not None and sent.currency == "NGN", sent  # Squad's cost, in Squad's NGN
        rec = gw.tenant("acme").get(sent.message_id)
        assert (rec.cost, rec.currency) == (sent.cost, "NGN"), rec
        assert set(gw.tenant("acme").stats().costs) == {"NGN"}
        emu.assert_sent("+2348031234567", count=1)
    finally:
        emu.stop()


def test_the_price_per_segment_estimate_is_in_the_configured_currency_not_the_vendors() -> None:
    """A vendor that names a currency but gives no cost: the estimate is the configured
    price, so it is in the configured currency (it was labelled with the vendor's)."""
    p = kernel_policy(providers={"a": {"plugin": "fake", "base_url": "http://fake", "price_per_segment": 2,
                                       "currency": "USD"}})
    msg = OutboundMessage(to="+2348031234567", text="hello", message_id="m1")
    update = p.success(msg, "a", SendResult(to=msg.to, status=Status.SUBMITTED, currency="NGN"), None)
    assert (update.cost, update.currency) == (Decimal(2), "USD")


def test_a_provider_campaign_total_without_a_currency_is_in_the_configured_one() -> None:
    """The provider's own statistics of a native campaign (Campaigns REST: the sum of ``price``)."""
    from smsgate_campaigns_api.emulator import SANDBOX_API_KEY, create_app

    with LiveServer(create_app()) as server:
        prov = {"plugin": "campaigns_api", "base_url": server.url, "credentials": {"api_key": SANDBOX_API_KEY},
                "sender": "ACME", "currency": "GBP"}
        cfg = {"store": "memory://", "tenants": {"acme": {"default_region": "GB", "providers": {"dm": prov}}}}
        with Gateway(cfg) as gw:
            camp = gw.tenant("acme").campaigns.create("c", text="hello", audience=["+447911123456", "+447911123457"],
                                                      provider="dm", mode="native")
            camp.run()
            theirs = camp.stats(include_provider=True).raw["provider"]
            assert theirs["cost"] is not None, theirs
            assert theirs["currency"] == "GBP" and set(theirs["costs"]) == {"GBP"}, theirs
