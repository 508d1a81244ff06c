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


class Served:
    """A `workbench serve` process: its port, the token in the URL it printed, and everything it wrote."""

    def __init__(self, runs_dir: Path, *extra: str, env: dict | None = None):
        import queue
        import threading

        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench", "serve", "--port", str(self.port), "--runs-dir", str(runs_dir), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()
        self.url = self._printed_url()

    def _printed_url(self) -> str:
        import queue

        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            self.output.append(line)
            if "serving the workbench TUI on " in line:
                return line.split(" on ", 1)[1].split()[0]
        self.stop()
        raise AssertionError(f"serve printed no URL: {self.output}")

    @property
    def token(self) -> str | None:
        from urllib.parse import parse_qs, urlparse

        return parse_qs(urlparse(self.url).query).get("token", [None])[0]

    def stop(self) -> str:
        """Stop the server; returns everything it wrote."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        time.sleep(0.2)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)


def get(url: str, cookie: str | None = None):
    """(status, headers, body) of a GET, 4xx included."""
    import urllib.error

    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def wait_until_up(port: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("serve did not answer on 127.0.0.1")


@pytest.fixture
def served(runs_dir):
    served = Served(runs_dir)
    wait_until_up(served.port)
    yield served
    served.stop()


def test_serve_answers_on_loopback_only(served):
    status, _, page = get(served.url)
    assert status == 200 and "textual" in page.lower() and "/ws" in page
    address = external_address()
    if address is not None:
        with pytest.raises(OSError):
            socket.create_connection((address, served.port), timeout=2).close()


def test_every_request_needs_the_token(served):
    """No token, a wrong one, a cookie for another server: 403. The URL's token: 200 and a cookie."""
    base = f"http://127.0.0.1:{served.port}"
    token = served.token
    assert token and len(token) >= 32
    for url in (f"{base}/", f"{base}/?token=", f"{base}/?token={token[:-1]}", f"{base}/?token={token}x",
                f"{base}/static/js/textual.js", f"{base}/download/x"):
        status, _, body = get(url)
        assert status == 403 and "token" in body, url
    assert get(f"{base}/", cookie=f"workbench-token-{served.port}=wrong")[0] == 403
    assert get(f"{base}/", cookie=f"workbench-token-{served.port + 1}={token}")[0] == 403  # another port's name

    status, headers, page = get(served.url)
    assert status == 200 and "/ws" in page
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"workbench-token-{served.port}={token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = cookie.split(";", 1)[0]
    assert get(f"{base}/", cookie=jar)[0] == 200  # then the cookie alone
    assert get(f"{base}/static/js/textual.js", cookie=jar)[0] == 200


@pytest.mark.slow
def test_the_websocket_needs_the_token(served):
    import aiohttp

    async def connect(cookie: str | None):
        headers = {"Cookie": cookie} if cookie else {}
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"ws://127.0.0.1:{served.port}/ws?width=80&height=24",
                                              headers=headers) as ws:
                    message = await ws.receive(timeout=60)  # the served TUI starts writing its screen
                    return message.type
            except aiohttp.WSServerHandshakeError as error:
                return error.status

    assert asyncio.run(connect(None)) == 403
    assert asyncio.run(connect(f"workbench-token-{served.port}=wrong")) == 403
    assert asyncio.run(connect(f"workbench-token-{served.port}={served.token}")) in (
        aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)


def test_the_token_is_shown_once_and_never_logged(served):
    base = f"http://127.0.0.1:{served.port}"
    get(served.url)
    get(f"{base}/?token=wrong")
    get(f"{base}/")
    output = served.stop()
    assert output.count(served.token) == 1, output  # the URL line, nothing else (no access log lines)
    assert "GET /" not in output


@pytest.mark.slow
def test_a_given_token_from_the_environment_or_the_flag(runs_dir):
    served = Served(runs_dir, env={"WORKBENCH_TOKEN": "from-the-environment"})
    try:
        assert served.token == "from-the-environment"
        wait_until_up(served.port)
        assert get(f"http://127.0.0.1:{served.port}/?token=from-the-environment")[0] == 200
    finally:
        served.stop()
    served = Served(runs_dir, "--token", "s3cret/with?odd&chars")
    try:
        assert served.token == "s3cret/with?odd&chars" and "s3cret%2Fwith%3Fodd%26chars" in served.url
        wait_until_up(served.port)
        assert get(served.url)[0] == 200 and get(f"http://127.0.0.1:{served.port}/")[0] == 403
    finally:
        served.stop()


def test_no_token_only_with_a_warning(runs_dir, capsys):
    served = Served(runs_dir, "--no-token")
    try:
        wait_until_up(served.port)
        assert served.token is None and get(f"http://127.0.0.1:{served.port}/")[0] == 200
    finally:
        output = served.stop()
    assert "warning: --no-token" in output and "every user of this machine" in output
    from workbench.cli import main

    assert main(["serve", "--no-token", "--token", "x"]) == 2
    assert main(["serve", "--token", " "]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


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
@pytest.mark.slow
def test_headless_chromium_sees_the_app(served, tmp_path):
    streamed, png = asyncio.run(_load_in_chromium(served.url))  # the printed URL, token and all
    assert streamed, "the app never sent its screen to the browser"
    assert png.startswith(b"\x89PNG")
    (tmp_path / "served.png").write_bytes(png)
    if os.environ.get("WORKBENCH_KEEP_SCREENSHOT"):
        (Path(os.environ["WORKBENCH_KEEP_SCREENSHOT"])).write_bytes(png)
    # The app's screen is drawn: the page is not one flat colour.
    from PIL import Image  # pillow comes with torchvision

    image = Image.open(tmp_path / "served.png").convert("L")
    assert len(set(image.get_flattened_data() if hasattr(image, "get_flattened_data") else image.getdata())) > 8
