#!/usr/bin/env python3
"""The dashboard in a real headless Chromium (test-dashboard.sh starts the controller and
the agents): pages load without console errors, the plots hold the stored reports, a
viewer gets no rollout verbs, and an abort clicked by an operator reaches the nodes.
Prints TAP-ish "ok - ..." / "not ok - ..." lines for the shell test to count."""

import argparse
import json
import os
import ssl
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webdriver  # noqa: E402


def say(ok, name, detail=""):
    print("%s - %s%s" % ("ok" if ok else "not ok", name, (": " + detail) if detail and not ok else ""),
          flush=True)
    return ok


class Api:
    def __init__(self, url, cacert, token):
        self.url, self.token = url, token
        self.ctx = ssl.create_default_context(cafile=cacert)

    def get(self, path):
        req = urllib.request.Request(self.url + path, headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
            return json.loads(r.read())


def console_errors(d):
    return [e for e in d.browser_log() if e.get("level") == "SEVERE"]


def sign_in(d, url, token):
    d.get(url + "/ui/")
    # Both the form and the sign-out button start hidden; the page shows one of them once
    # it has tried the token kept in sessionStorage (a /v1/whoami round trip, slow under
    # load). Deciding before that would race the page.
    d.wait("return document.readyState === 'complete' && (!document.getElementById('login').hidden"
           " || !document.getElementById('logout').hidden)", what="the page's sign-in state")
    if d.execute("return !document.getElementById('logout').hidden"):
        d.click("#logout")
    d.wait("return !document.getElementById('login').hidden", what="the sign-in form")
    d.type("#token", token)
    d.click("#signin")
    d.wait("return document.getElementById('view').getAttribute('data-loaded') === '/'", what="the fleet page")


def open_view(d, hash_path):
    d.execute("location.hash = arguments[0]", hash_path)
    d.wait("return document.getElementById('view').getAttribute('data-loaded') === arguments[0]",
           hash_path, what=hash_path)


def main():
    p = argparse.ArgumentParser()
    for a in ("url", "cacert", "viewer-token-file", "operator-token-file", "node", "rollout",
              "chromedriver", "chromium", "tmp", "out-dir"):
        p.add_argument("--" + a, required=True)
    p.add_argument("--timeout", type=int, default=60)
    o = p.parse_args()
    viewer = open(o.viewer_token_file).read().strip()
    operator = open(o.operator_token_file).read().strip()
    api = Api(o.url, o.cacert, operator)
    d = webdriver.Driver(o.chromedriver, o.chromium, os.path.join(o.tmp, "chromium-profile"),
                         os.path.join(o.tmp, "chromedriver.log"), timeout=o.timeout)
    try:
        # ---- the fleet, as a viewer ----
        sign_in(d, o.url, viewer)
        nodes = api.get("/v1/nodes")["nodes"]
        rows = d.execute("return [...document.querySelectorAll('#fleet tbody tr')].map(tr => "
                         "[tr.dataset.node, ...[...tr.children].map(td => td.textContent)])")
        shown = {r[0]: r for r in rows}
        ok = len(rows) == len(nodes)
        for n in nodes:
            r = shown.get(n["id"])
            s = n.get("summary") or {}
            ok = ok and r is not None and r[3] == (s.get("slot") or "?") and r[4] == (s.get("version") or "?") \
                and r[8] == (s.get("level") or "?")
        say(ok, "the fleet table shows every node with its slot, version and thermal level",
            json.dumps(rows)[:400])
        who = d.execute("return document.getElementById('who').textContent")
        say("viewer" in who, "the page says the role is viewer", who)
        errs = console_errors(d)
        say(not errs, "the fleet page loads with no console error", json.dumps(errs)[:400])
        d.screenshot(os.path.join(o.out_dir, "dashboard-fleet.png"))

        # ---- a node's plots hold its stored reports ----
        open_view(d, "/node/" + o.node)
        # The page first (one script: one rendering), then the store: reports that arrived
        # in between are newer than every point drawn, and left out of the comparison.
        pts = d.execute("return [...document.querySelectorAll('[data-plot] circle')].map(c => "
                        "[c.closest('[data-plot]').dataset.plot, c.dataset.series, Number(c.dataset.time), "
                        "Number(c.dataset.value)])")
        recs = api.get("/v1/nodes/%s/records?kind=health.report&limit=500" % o.node)["records"]
        drawn_until = max((p[2] for p in pts), default=0)
        recs = [r for r in recs if r["time_usec"] / 1e6 <= drawn_until + 1e-6]
        want = set()
        for r in recs:
            t = r["time_usec"] / 1e6
            for k, m in r["body"]["metrics"].items():
                if k.endswith(".temp_c"):
                    want.add(("Temperatures", k[:-len(".temp_c")], t, m["mean"]))
            for plot, series, k in (("Power", "battery", "battery.capacity_percent"),
                                    ("CPU", "cpu", "cpu.busy_percent"),
                                    ("Memory", "memory", "mem.available_mib")):
                if k in r["body"]["metrics"]:
                    want.add((plot, series, t, r["body"]["metrics"][k]["mean"]))
        got = {(a, b, round(c, 6), e) for a, b, c, e in pts}
        want = {(a, b, round(c, 6), e) for a, b, c, e in want}
        plots = {w[0] for w in want}
        say(len(recs) >= 2 and got == want and {"Temperatures", "Power", "CPU", "Memory"} <= plots,
            "the node's temperature, power, CPU and memory plots hold its %d stored reports" % len(recs),
            "missing %s; extra %s" % (sorted(want - got)[:3], sorted(got - want)[:3]))
        errs = console_errors(d)
        say(not errs, "the node page loads with no console error", json.dumps(errs)[:400])
        d.screenshot(os.path.join(o.out_dir, "dashboard-node.png"))

        # ---- the rollout: a viewer gets no verbs ----
        open_view(d, "/rollout/" + o.rollout)
        buttons = d.execute("return document.querySelectorAll('#actions button').length")
        say(buttons == 0, "a viewer sees the rollout without pause, resume or abort", str(buttons))
        stages = d.execute("return document.querySelectorAll('#stages tbody tr').length")
        r = api.get("/v1/rollouts/" + o.rollout)
        say(stages == len(r["stages"]), "the rollout page shows its %d stages" % len(r["stages"]), str(stages))
        errs = console_errors(d)
        say(not errs, "the rollout page loads with no console error (viewer)", json.dumps(errs)[:400])

        # ---- an operator pauses, resumes and aborts from the page ----
        sign_in(d, o.url, operator)
        open_view(d, "/rollout/" + o.rollout)
        committed = [n["node"] for n in r["nodes"] if n["state"] == "committed"]
        d.click("#pause")
        d.wait("return document.querySelector('h1 .badge').textContent === 'paused'", what="paused")
        say(api.get("/v1/rollouts/" + o.rollout)["state"] == "paused", "Pause on the page pauses the rollout")
        d.click("#resume")
        d.wait("return document.querySelector('h1 .badge').textContent === 'running'", what="running")
        say(api.get("/v1/rollouts/" + o.rollout)["state"] == "running", "Resume on the page resumes it")
        d.screenshot(os.path.join(o.out_dir, "dashboard-rollout.png"))
        d.click("#abort")
        d.wait("return !!document.getElementById('abort-confirm')", what="the confirmation")
        d.click("#abort-confirm")
        d.wait("return document.querySelector('h1 .badge').textContent === 'aborted'", what="aborted")
        say(api.get("/v1/rollouts/" + o.rollout)["state"] == "aborted", "Abort on the page aborts it")

        # the abort reaches the nodes: each committed one gets update.rollback at its next
        # sync, applies it and reports update.rolled-back
        deadline = time.monotonic() + o.timeout * 4
        while True:
            states = {n["node"]: n["state"] for n in api.get("/v1/rollouts/" + o.rollout)["nodes"]}
            if committed and all(states[n] == "rolled-back" for n in committed):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        told = all(any(c["action"] == "update.rollback" and c["state"] in ("sent", "done")
                       for c in api.get("/v1/nodes/%s/commands" % n)["commands"]) for n in committed)
        say(committed and told and all(states[n] == "rolled-back" for n in committed),
            "the abort reached the %d committed nodes: update.rollback sent and they rolled back" % len(committed),
            json.dumps(states))
        open_view(d, "/rollout/" + o.rollout)
        errs = console_errors(d)
        say(not errs, "the rollout page works with no console error (operator)", json.dumps(errs)[:400])
    except webdriver.WebDriverError as e:
        say(False, "the browser session", str(e))
    finally:
        d.quit()


if __name__ == "__main__":
    main()
