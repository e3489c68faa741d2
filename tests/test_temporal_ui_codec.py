"""The Temporal UI of the embedded stack reads histories through the API's codec endpoint with
a supervisor's web session (it cannot send a token): Debian's Chromium, the real dev server UI,
the real API. Without the session the UI shows nothing decoded, and typed text stays sealed
with the client's key even when decoded."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from datetime import date, timedelta

import pytest
from temporalio.client import Client

from tests.browser import CHROMIUM, need_chromium
from tests.stack import CLI, Stack
from tests.test_personal_data import encrypted_payloads
from tests.test_web import ARGS, PASSWORD

REASON = "Hemlig anledning: Ruth Rask har skulder"


def d(days_ago: int) -> str:
    return (date.today() - timedelta(days=days_ago)).isoformat()


def wait_text(page, text: str, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in page.inner_text("body"):
            return True
        time.sleep(0.5)
    return False


@pytest.mark.slow
def test_the_temporal_ui_decodes_a_history_with_a_supervisors_web_session(tmp_path):
    need_chromium()
    from playwright.sync_api import sync_playwright

    stack = Stack.on_free_ports(tmp_path / "data")
    added = subprocess.run([*CLI, "user", "add", "enhetschef.berg", "--role", "supervisor",
                            "--unit", "Farsta", "--password-stdin"], env=stack.env,
                           input=PASSWORD + "\n", text=True, capture_output=True, timeout=60)
    assert added.returncode == 0, added.stderr
    stack.start()
    api = f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_API_PORT']}"
    ui = f"http://127.0.0.1:{stack.env['HOUSING_CHAIN_UI_PORT']}"
    try:
        for args in (["apply", "ui-1", "--client", "k-ui1", "--target-group", "young_adults",
                      "--district", "Farsta", "--on", d(5)],
                     ["start-assessment", "ui-1", "--on", d(4)],
                     ["decide", "ui-1", "--outcome", "denied", "--reason-code", "other",
                      "--reason", REASON, "--on", d(3)]):
            done = stack.run(*args)
            assert done.returncode == 0, done.stderr

        async def history() -> dict:
            client = await Client.connect(stack.env["TEMPORAL_ADDRESS"])
            fetched = await client.get_workflow_handle("case-ui-1").fetch_history()
            return json.loads(fetched.to_json())

        payloads = encrypted_payloads(asyncio.run(history()))
        decode = f"""async (body) => {{
            const r = await fetch('{api}/codec/decode', {{method: 'POST', credentials: 'include',
                headers: {{'Content-Type': 'application/json', 'X-Namespace': 'default'}},
                body: JSON.stringify(body)}});
            return {{status: r.status, text: await r.text()}};
        }}"""
        codec_settings = f"""() => {{
            localStorage.setItem('endpoint', JSON.stringify('{api}/codec'));
            localStorage.setItem('includeCredentials', 'true');
            localStorage.setItem('overrideRemoteCodecConfiguration', 'true');
        }}"""
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)

            # not signed in: the UI's codec calls are refused, nothing reads in the clear
            stranger = browser.new_context().new_page()
            stranger.goto(ui + "/namespaces/default/workflows")
            stranger.evaluate(codec_settings)
            assert stranger.evaluate(decode, {"payloads": payloads})["status"] == 401
            stranger.goto(ui + "/namespaces/default/workflows/case-ui-1")
            assert not wait_text(stranger, '"outcome": "denied"', timeout=10)

            page = browser.new_context().new_page()
            page.goto(api + "/")
            page.fill("#username", "enhetschef.berg")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit].primary")
            page.wait_for_url(api + "/")
            page.goto(ui + "/namespaces/default/workflows")
            page.evaluate(codec_settings)
            page.goto(ui + "/namespaces/default/workflows/case-ui-1")
            assert wait_text(page, '"outcome": "denied"'), page.inner_text("body")[:2000]
            assert REASON not in page.inner_text("body")

            # what the UI decodes of the updates: the steps in the clear, the reason sealed
            answer = page.evaluate(decode, {"payloads": payloads})
            assert answer["status"] == 200, answer["text"]
            plain = b"".join(base64.b64decode(p.get("data", ""))
                             for p in json.loads(answer["text"])["payloads"])
            assert b"start_assessment" in plain and b"enc:v1:" in plain
            assert REASON.encode() not in plain
            browser.close()
    finally:
        stack.stop()
