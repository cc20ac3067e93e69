"""Peer libraries sending the same messages to the same endpoint (run in the peer venv).

``python bench/peers.py smsframework|apprise --url URL [--n ...]`` prints one JSON
object like bench/workloads.py. It imports neither smsgate nor anything from
bench/, so it runs in ``bench/.work/peers-venv`` where only the peers live.

* **py-smsframework** (PyPI ``smsframework``) has no generic HTTP provider, so
  this file writes the minimal one its ``IProvider`` API asks for: ``send()``
  POSTs ``{"to", "text", "from"}`` as JSON with a ``requests.Session`` (kept
  alive between messages: the best case for the peer) and reads ``{"id"}``
  into ``message.msgid``. Messages go through ``smsframework.Gateway.send``.
* **apprise** sends through its generic ``json://`` target (one ``Apprise``
  object, one URL, ``notify()`` per message). Its JSON body has no recipient
  field, so the recipient travels as the notification title. apprise makes a
  new HTTP connection per notification (``requests.request``): that is how it
  works.

Both are synchronous libraries: they send one message at a time.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

API_KEY = "bench-key-0123456789"
TEXT = "Your verification code is 482913. It expires in 10 minutes."


def smsframework_sender(url: str) -> Any:
    import requests
    from smsframework import Gateway, IProvider, OutgoingMessage
    from smsframework.exc import MessageSendError

    class JsonHttpProvider(IProvider):  # type: ignore[misc]
        """A minimal smsframework provider for a generic HTTP/JSON SMS API."""

        def __init__(self, gateway: Any, name: str, url: str, api_key: str) -> None:
            super().__init__(gateway, name)
            self.url = url.rstrip("/") + "/messages"
            self.session = requests.Session()
            self.session.headers["X-Api-Key"] = api_key

        def send(self, message: Any) -> Any:
            body = {"to": "+" + message.dst, "text": message.body, "from": message.src}
            resp = self.session.post(self.url, json=body, timeout=30)
            if resp.status_code // 100 != 2:
                raise MessageSendError(f"HTTP {resp.status_code}: {resp.text[:200]}")
            data = resp.json()
            message.msgid = data["id"]
            message.meta = {"status": data["status"]}
            return message

    gateway = Gateway()
    gateway.add_provider("json", JsonHttpProvider, url=url, api_key=API_KEY)

    def send(to: str) -> bool:
        sent = gateway.send(OutgoingMessage(to, TEXT, src="BENCH"))
        return bool(sent.msgid)

    return send


def apprise_sender(url: str) -> Any:
    import apprise

    target = url.replace("http://", "json://", 1).rstrip("/") + "/messages"
    app = apprise.Apprise()
    if not app.add(f"{target}?+X-Api-Key={API_KEY}"):
        raise SystemExit(f"apprise rejected the URL {target}")

    def send(to: str) -> bool:
        return bool(app.notify(body=TEXT, title=to))

    return send


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=["smsframework", "apprise"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--min-n", type=int, default=200)
    parser.add_argument("--budget", type=float, default=8.0)
    parser.add_argument("--pilot-seconds", type=float, default=1.0)
    args = parser.parse_args()
    send = smsframework_sender(args.url) if args.name == "smsframework" else apprise_sender(args.url)
    t0 = time.perf_counter()
    done = 0
    while done < 200 and time.perf_counter() < t0 + args.pilot_seconds:
        send(f"+234805{done:07d}")
        done += 1
    rate = done / (time.perf_counter() - t0)
    n = max(min(args.min_n, args.n), min(args.n, int(rate * args.budget)))
    ok = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(n):
        ok += send(f"+234803{i:07d}")
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    version = __import__("importlib.metadata").metadata.version(args.name)
    print(json.dumps({
        "name": args.name, "n": n, "seconds": secs, "rate": n / secs, "ok": ok, "cpu_us": cpu / n * 1e6,
        "note": f"{args.name} {version}, sequential",
    }))


if __name__ == "__main__":
    main()
