"""`workbench serve`: answers on loopback only, and a headless Chromium (Debian's package) loads the page,
opens the app's websocket and receives the TUI's screen."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="Debian's chromium is not installed (.ci/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def external_address() -> str | None:
    """This machine's own non-loopback address, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.fixture
def server(runs_dir):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "workbench", "serve", "--port", str(port), "--runs-dir",
                                str(runs_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        raise AssertionError("serve did not answer on 127.0.0.1")
    yield port
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def test_serve_answers_on_loopback_only(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server}/", timeout=5) as response:
        page = response.read().decode()
    assert "textual" in page.lower() and "/ws" in page
    address = external_address()
    if address is not None:
        with pytest.raises(OSError):
            socket.create_connection((address, server), timeout=2).close()


def test_binding_elsewhere_warns(capsys):
    import workbench.cli as cli
    from workbench.cli import build_parser

    assert cli.main(["serve", "--port", "0"]) == 2  # not a TCP port

    class FakeServer:
        def __init__(self, command, host, port, title):
            self.command, self.host = command, host

        def serve(self):
            return None

    import textual_serve.server

    original = textual_serve.server.Server
    textual_serve.server.Server = FakeServer
    try:
        args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "8123"])
        assert cli.cmd_serve(args) == 0
    finally:
        textual_serve.server.Server = original
    err = capsys.readouterr().err
    assert "warning" in err and "SSH tunnel" in err


async def _load_in_chromium(url: str, timeout: float = 60.0) -> tuple[bool, bytes]:
    """Open `url` in headless Chromium over the DevTools protocol; wait for the app's first screen bytes."""
    import aiohttp

    debug_port = free_port()
    profile = tempfile.mkdtemp()
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--remote-debugging-port={debug_port}", "--window-size=1200,800",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.time() + timeout
            targets = None
            while time.time() < deadline and not targets:
                try:
                    async with session.get(f"http://127.0.0.1:{debug_port}/json") as response:
                        targets = [t for t in await response.json() if t.get("type") == "page"]
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            async with session.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = iter(range(1, 10_000))

                async def call(method, **params):
                    message_id = next(ids)
                    await ws.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
                    while True:
                        reply = json.loads((await ws.receive()).data)
                        if reply.get("id") == message_id:
                            return reply.get("result", {})

                await call("Page.enable")
                await call("Page.navigate", url=url)
                streamed = False
                while time.time() < deadline and not streamed:
                    result = await call("Runtime.evaluate",
                                        expression="document.body && document.body.classList.contains('-first-byte')")
                    streamed = result.get("result", {}).get("value") is True
                    await asyncio.sleep(0.3)
                await asyncio.sleep(1.5)  # let the first frame paint
                shot = await call("Page.captureScreenshot", format="png")
                return streamed, base64.b64decode(shot.get("data", ""))
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


@needs_chromium
def test_headless_chromium_sees_the_app(server, tmp_path):
    streamed, png = asyncio.run(_load_in_chromium(f"http://127.0.0.1:{server}/"))
    assert streamed, "the app never sent its screen to the browser"
    assert png.startswith(b"\x89PNG")
    (tmp_path / "served.png").write_bytes(png)
    if os.environ.get("WORKBENCH_KEEP_SCREENSHOT"):
        (Path(os.environ["WORKBENCH_KEEP_SCREENSHOT"])).write_bytes(png)
    # The app's screen is drawn: the page is not one flat colour.
    from PIL import Image  # pillow comes with torchvision

    image = Image.open(tmp_path / "served.png").convert("L")
    assert len(set(image.get_flattened_data() if hasattr(image, "get_flattened_data") else image.getdata())) > 8
