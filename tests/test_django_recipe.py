"""docs/django.md runs: its files make a Django project (in a new process, configured with a
minimal ``settings.configure()`` around the page's ``SMSGATE`` dict), whose view sends through
the Squad emulator and whose management command runs a campaign. What reached the vendor is
read from the emulator's own record.

The page's Python blocks are the project's files: each starts with a ``# path/to/file.py``
comment line naming where it goes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from smsgate.testing import EmulatorControl, LiveServer
from smsgate_squad.emulator import SANDBOX_SECRET_KEY, create_app
from test_docs_examples import SANDBOX_URL, page_files

pytest.importorskip("django")

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "django.md"

#: Runs in the project's directory: Django configured around the page's settings, then the
#: view (twice, with the same order: one SMS) and the management command, as a project would.
RUNNER = textwrap.dedent("""
    import json
    import django
    from django.conf import settings

    import myshop.settings as page  # the page's settings block: SMSGATE = {...}

    settings.configure(SMSGATE=page.SMSGATE, INSTALLED_APPS=["shop"], ROOT_URLCONF="myshop.urls",
                       ALLOWED_HOSTS=["testserver"], SECRET_KEY="not-a-secret", DATABASES={})
    django.setup()

    from io import StringIO
    from django.core.management import call_command
    from django.test import Client

    from shop.sms import gateway, shop

    client = Client()
    first = client.post("/orders/42/shipped", {"phone": "08031234567"})
    again = client.post("/orders/42/shipped", {"phone": "08031234567"})  # a retried request
    bad = client.post("/orders/43/shipped", {"phone": "12345"})
    shop().optouts.add("+2348031234560", reason="replied STOP")
    opted_out = client.post("/orders/44/shipped", {"phone": "+2348031234560"})
    camp = shop().campaigns.create("Spring sale", text="Hi {name}, 20% off today",
                                   audience=[{"phone": f"0805123456{i}", "name": f"C{i}"} for i in range(5)])
    out = StringIO()
    call_command("run_campaign", camp.campaign_id, stdout=out)
    print(json.dumps({
        "first": [first.status_code, first.json()], "again": [again.status_code, again.json()],
        "bad": [bad.status_code, bad.json()], "opted_out": [opted_out.status_code, opted_out.json()],
        "command": out.getvalue(), "campaign": camp.campaign_id,
        "same_gateway": gateway() is gateway(),
    }))
""")


@pytest.fixture
def squad() -> Iterator[LiveServer]:
    with LiveServer(create_app(delivery_delay=0.05)) as server:
        yield server


def test_the_django_recipe_sends_from_a_view_and_runs_a_campaign(tmp_path: Path, squad: LiveServer) -> None:
    files = page_files(PAGE)
    assert {"myshop/settings.py", "shop/sms.py", "shop/views.py", "myshop/urls.py",
            "shop/management/commands/run_campaign.py", "myshop/celery.py", "myshop/__init__.py"} <= set(files)
    # the Celery app is loaded with Django (myshop/__init__.py) as the page says; nothing here queues
    # a task (tests/test_celery.py runs the tasks on a broker)
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source.replace(SANDBOX_URL, squad.url))
    for package in ("myshop", "shop", "shop/management", "shop/management/commands"):
        (tmp_path / package / "__init__.py").touch()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("SMSGATE_", "DJANGO_"))}
    env["SQUAD_SECRET_KEY"] = SANDBOX_SECRET_KEY
    out = subprocess.run([sys.executable, "-c", RUNNER], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])

    status, body = result["first"]
    assert status == 200 and body["status"] in ("submitted", "sent"), body
    assert result["again"] == result["first"]  # the idempotency key: the same message, not a second
    assert result["bad"][0] == 400 and "12345" in result["bad"][1]["error"]
    assert result["opted_out"][0] == 400 and "opted out" in result["opted_out"][1]["error"]
    assert result["command"] == f"{result['campaign']}: completed; sent 5, failed 0, skipped 0\n"
    assert result["same_gateway"] is True

    sent = Counter(m["phone_number"] for r in EmulatorControl(squad.url).requests(method="POST")
                   if r.path.endswith("/sms/send/instant") for m in r.json()["messages"])
    assert sent == Counter(["08031234567", *(f"0805123456{i}" for i in range(5))])  # each once
    assert (tmp_path / "sms.db").exists()  # the settings' store, relative to the project
