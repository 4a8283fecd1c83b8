"""A small W3C WebDriver client over the Python standard library (urllib), enough to drive
chromedriver for the dashboard test: sessions, navigation, elements, scripts, browser
logs and screenshots. No third-party package."""

import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-dev-shm-usage", "--window-size=1280,1000",
]


class WebDriverError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """chromedriver started on a free loopback port, one browser session."""

    def __init__(self, chromedriver, chromium, user_data_dir, log_path, timeout=30):
        self.port = free_port()
        self.log = open(log_path, "ab")
        # the browser's own temporary files (its crash handler's scoped dir) in the test's
        # directory, removed with it, not left in /tmp
        env = dict(os.environ, TMPDIR=os.path.dirname(os.path.abspath(user_data_dir)))
        self.proc = subprocess.Popen([chromedriver, "--port=%d" % self.port],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.base = "http://127.0.0.1:%d" % self.port
        self.timeout = timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._call("GET", "/status").get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise WebDriverError("chromedriver did not become ready")
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": True,
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": CHROMIUM_FLAGS + ["--user-data-dir=" + user_data_dir],
            },
        }}}
        value = self._call("POST", "/session", caps)
        self.session = value["sessionId"]

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout * 2) as resp:
                payload = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read())
            except ValueError:
                payload = {}
            err = payload.get("value", {}) if isinstance(payload, dict) else {}
            raise WebDriverError("%s %s: %s: %s" % (method, path, err.get("error", e.code),
                                                    err.get("message", "")[:300]))
        return payload.get("value", payload) if isinstance(payload, dict) else payload

    def _s(self, method, path, body=None):
        return self._call(method, "/session/%s%s" % (self.session, path), body)

    def get(self, url):
        self._s("POST", "/url", {"url": url})

    def execute(self, script, *args):
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        v = self._s("POST", "/element", {"using": "css selector", "value": css})
        if not isinstance(v, dict) or ELEMENT_KEY not in v:
            raise WebDriverError("find %s: unexpected answer %r" % (css, v))
        return v[ELEMENT_KEY]

    def click(self, css):
        """Find and click; the page's own refresh may replace the element between the two
        (a 'stale element reference'): find it again, a bounded number of times."""
        for attempt in range(10):
            try:
                self._s("POST", "/element/%s/click" % self.find(css), {})
                return
            except WebDriverError as e:
                if "stale element reference" not in str(e) or attempt == 9:
                    raise
                time.sleep(0.1)

    def type(self, css, text):
        self._s("POST", "/element/%s/value" % self.find(css), {"text": text})

    def wait(self, script, *args, timeout=None, what="condition"):
        """Poll a script until it returns a truthy value; return it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            v = self.execute(script, *args)
            if v:
                return v
            if time.monotonic() > deadline:
                raise WebDriverError("timed out waiting for " + what)
            time.sleep(0.1)

    def browser_log(self):
        """The browser's console entries since the last call (level, message)."""
        return self._s("POST", "/se/log", {"type": "browser"})

    def screenshot(self, path):
        png = base64.b64decode(self._s("GET", "/screenshot"))
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(png)
        os.replace(tmp, path)

    def quit(self):
        try:
            self._s("DELETE", "")
        except (OSError, WebDriverError):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
