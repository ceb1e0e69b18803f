"""A headless Chromium driven through the Chrome DevTools protocol, for the browser tests.

The protocol runs over ``--remote-debugging-pipe`` (file descriptors 3 and 4, messages
separated by NUL bytes), so no extra package and no port are needed. Chromium is Debian's
``chromium`` package; ``./dev test`` installs it where it is missing.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str:
    """The path of Chromium, or a test failure saying how to install it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Chromium is not installed; run the tests through ./dev test (which installs "
            "Debian's chromium package) or install it: apt-get install chromium."
        )
    return path


class DevTools:
    """A headless Chromium driven through the DevTools protocol over a pipe (fds 3 and 4)."""

    def __init__(self, chromium: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def _wire() -> None:  # in the child: fd 3 reads commands, fd 4 writes replies
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [
                chromium,
                *FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=_wire,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("Chromium did not answer over the DevTools pipe in time.")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it crash?).")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            self._events.append(self._read_message(deadline))

    def open(
        self,
        url: str,
        script: str,
        *,
        viewport: tuple[int, int] = (1280, 900),
        await_promise: bool = False,
    ) -> tuple[object, list[str]]:
        """Open ``url`` in a fresh tab, wait for load, evaluate ``script``.

        Returns the script's value and the URL of every request the page made.
        """
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        try:
            self.send("Page.enable", session)
            self.send("Network.enable", session)
            width, height = viewport
            self.send(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            self.send("Page.navigate", session, url=url)
            self.wait_event("Page.loadEventFired", session, timeout=120)
            result = self.send(
                "Runtime.evaluate",
                session,
                timeout=120,
                expression=script,
                returnByValue=True,
                awaitPromise=await_promise,
            )
            if "exceptionDetails" in result:
                raise RuntimeError(f"the script failed in the page: {result['exceptionDetails']}")
            requests = [
                e["params"]["request"]["url"]
                for e in self._events
                if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == session
            ]
            self._events = [e for e in self._events if e.get("sessionId") != session]
            return result["result"].get("value"), requests
        finally:
            self.send("Target.closeTarget", targetId=target)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
