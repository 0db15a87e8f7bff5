"""A small headless-Chromium driver over the DevTools protocol (no Selenium, no browser download).

Starts the Debian ``chromium`` with a fresh profile, no background networking and a dead proxy for every non-loopback
host (so nothing can leave the machine unnoticed), attaches to one page and records what the tests check: console
errors, uncaught exceptions, error log entries and the URL of every request the page made.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run")


def chromium_binary() -> str | None:
    """The Chromium executable (Debian package ``chromium``), or None."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class BrowserError(AssertionError):
    """The browser did not do what the test asked in time."""


class Chromium:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path, *, width: int = 1280, height: int = 900, timeout_s: float = 60.0) -> None:
        binary = chromium_binary()
        if binary is None:
            raise BrowserError("chromium is not installed")
        profile.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--proxy-server=http://127.0.0.1:9", f"--window-size={width},{height}", "--hide-scrollbars",
             "--mute-audio", "--no-default-browser-check", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + timeout_s
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.proc.poll() is not None or time.time() > deadline:
                self.close()
                raise BrowserError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=timeout_s)
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self._consumed = 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    # -- protocol ------------------------------------------------------------------------------------------------
    def call(self, method: str, *, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (events that arrive meanwhile are recorded)."""
        self._next_id += 1
        msg_id = self._next_id
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.time() + self.timeout_s
        while True:
            msg = self._receive(deadline, method)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page's session."""
        return self.call(method, session=self.session, **params)

    def _receive(self, deadline: float, what: str) -> dict[str, Any]:
        remaining = deadline - time.time()
        if remaining <= 0:
            raise BrowserError(f"timed out waiting for {what}")
        try:
            raw = self.ws.recv(timeout=remaining)
        except TimeoutError:
            raise BrowserError(f"timed out waiting for {what}") from None
        msg = json.loads(raw)
        if "method" in msg:
            self.events.append(msg)
        return msg

    def wait_event(self, method: str, timeout_s: float | None = None) -> dict[str, Any]:
        """The next event ``method`` of the page not yet consumed."""
        deadline = time.time() + (timeout_s or self.timeout_s)
        while True:
            for i in range(self._consumed, len(self.events)):
                if self.events[i]["method"] == method and self.events[i].get("sessionId") == self.session:
                    self._consumed = i + 1
                    return self.events[i]
            self._consumed = len(self.events)
            self._receive(deadline, method)

    # -- page actions --------------------------------------------------------------------------------------------
    def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self._consumed = len(self.events)
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def run(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its JSON value."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text')}: {expression[:120]}")
        return result.get("result", {}).get("value")

    def run_and_wait_load(self, expression: str) -> None:
        """Evaluate something that navigates (a form submit, a click) and wait for the new page's load event."""
        self._consumed = len(self.events)
        self.run(expression)
        self.wait_event("Page.loadEventFired")

    def url(self) -> str:
        return self.run("location.href")

    def html(self) -> str:
        return self.run("document.documentElement.outerHTML")

    def screenshot(self, path: Path, *, max_bytes: int | None = None) -> Path:
        """A PNG of the page's top (the viewport), written to ``path``; scaled down until under ``max_bytes``."""
        width, height = self.run("[window.innerWidth, window.innerHeight]")
        scale = 1.0
        while True:
            params: dict[str, Any] = {"format": "png"}
            if scale < 1.0:
                params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": scale}
            data = self.send("Page.captureScreenshot", **params)["data"]
            if max_bytes is None or len(data) * 3 // 4 <= max_bytes or scale <= 0.5:
                break
            scale = round(scale - 0.1, 2)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    # -- what the page did ---------------------------------------------------------------------------------------
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                out.append("exception: " + str(p.get("exceptionDetails", {}).get("text")))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for (documents, styles, images, ...)."""
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def close(self) -> None:
        """Close the browser; kill its process group by PID if it does not exit."""
        try:
            if getattr(self, "ws", None) is not None:
                try:
                    self.call("Browser.close")
                except Exception:  # noqa: BLE001 - the socket closes as the browser exits
                    pass
                self.ws.close()
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
