#!/usr/bin/env python3
# A hostile controller for test-link-hostile.sh: answers POST /v1/nodes/<id>/sync over HTTPS
# with mutual TLS on loopback, the way the test's mode file says at each connection.
# Standard library only. Every connection, request and outcome is logged as one JSON line
# ("done": true on the last one of a connection), so the test can tell what the agent sent
# (and whether anything reached us in clear).
#
#   evil-controller.py --port-file F --mode-file F --log F --certs DIR --client-ca PEM
#
# DIR holds NAME.pem and NAME.key; "server" is the default certificate. The mode file
# holds one line: "MODE [ARG]", re-read for every connection:
#   ok                 a well-behaved answer: acks every record it got
#   quiet              a well-formed answer that acks nothing (the records stay for the ground)
#   slow               200, Content-Length, then one byte per second (never complete)
#   huge               200 with a 200 MiB Content-Length body, streamed until the peer quits
#   huge-close         the same without Content-Length (body until close)
#   bad NAME           one of the malformed answers of bad_body() below
#   replay FILE        every answer carries the envelope in FILE (acks nothing)
#   forged FILE        the envelope in FILE with its payload changed, signature kept
#   forged-flood FILE  64 such envelopes in every answer, each with a seq never used before
#   tls NAME           present DIR/NAME.pem instead of the server certificate, answer "ok"
#   plain              no TLS at all: an HTTP answer on the raw socket
#   zstd NAME          Content-Encoding: zstd, one of the frames of zstd_body() below
import argparse
import json
import os
import socketserver
import ssl
import sys
import threading
import time

FLOOD_SEQ = [1000]  # the next forged seq of forged-flood, across connections
FLOOD_LOCK = threading.Lock()

HUGE = 200 * 1024 * 1024
CHUNK = 64 * 1024

log_lock = threading.Lock()
counter = [0]


def log(args, **fields):
    with log_lock:
        counter[0] += 1
        fields["n"] = counter[0]
        fields["time"] = round(time.time(), 3)
        with open(args.log, "a") as f:
            f.write(json.dumps(fields, sort_keys=True) + "\n")


def read_mode(args):
    try:
        with open(args.mode_file) as f:
            words = f.read().split()
    except OSError:
        words = []
    return (words[0] if words else "ok", words[1] if len(words) > 1 else None)


def answer(acked=None, commands=None, plan=None, next_sync=1):
    return {
        "format": 1,
        "acked": acked if acked is not None else [],
        "commands": commands if commands is not None else [],
        "contact_plan": plan if plan is not None else {"windows": []},
        "next_sync_sec": next_sync,
        "server_time": int(time.time()),
    }


def ack_all(req):
    """The acks a real controller would give: every record of the request."""
    groups = {}
    for r in req.get("records", []):
        k = r["key"]
        groups.setdefault((k["boot_epoch"], k["boot_id"]), []).append(k["seq"])
    return [{"boot_epoch": e, "boot_id": b, "seq": s} for (e, b), s in groups.items()]


def ack_unknown(req):
    """Acks of records that do not exist: other boots, seqs far past the last one, seq 0."""
    boot_id = req.get("boot_id", "0" * 32)
    epoch = req.get("boot_epoch", 1)
    top = max([r["key"]["seq"] for r in req.get("records", [])] + [0])
    return [
        {"boot_epoch": epoch, "boot_id": boot_id, "seq": [0, top + 1000, top + 1001, 2**62]},
        {"boot_epoch": epoch + 7, "boot_id": boot_id, "seq": list(range(1, 200))},
        {"boot_epoch": epoch, "boot_id": "f" * 32, "seq": list(range(1, 200))},
    ]


def ack_unsent(req):
    """Acks of this boot's records that this request did not carry: seqs 1..top+50 minus its
    own. Some wait in the outbox (the test sends a few per sync): they must stay."""
    boot_id = req.get("boot_id", "0" * 32)
    epoch = req.get("boot_epoch", 1)
    sent = {r["key"]["seq"] for r in req.get("records", [])
            if r["key"]["boot_id"] == boot_id and r["key"]["boot_epoch"] == epoch}
    top = max(sent | {0})
    return [{"boot_epoch": epoch, "boot_id": boot_id,
             "seq": [s for s in range(1, top + 50) if s not in sent]}]


def bad_body(name, req):
    """Malformed answers: bytes of the body, each one the agent must refuse or survive."""
    ok = answer()
    if name == "not-json":
        return b"<html>this is not JSON</html>"
    if name == "truncated":
        return json.dumps(ok).encode()[:-5]
    if name == "empty":
        return b""
    if name == "array":
        return b"[]"
    if name == "wrong-types":
        return json.dumps(dict(ok, acked={"seq": 1}, commands="none", next_sync_sec="1")).encode()
    if name == "next-float":
        return json.dumps(dict(ok, next_sync_sec=1.5)).encode()
    if name == "duplicate-keys":
        # the second "acked" would ack everything: a parser keeping the last one is fooled
        text = json.dumps(ok)
        return (text[:-1] + ', "acked": ' + json.dumps(ack_all(req)) + "}").encode()
    if name == "format-2":
        return json.dumps(dict(ok, format=2, acked=ack_all(req))).encode()
    if name == "extra-key":
        return json.dumps(dict(ok, acked=ack_all(req), shell="rm -rf /")).encode()
    if name == "missing-key":
        d = dict(ok, acked=ack_all(req))
        del d["server_time"]
        return json.dumps(d).encode()
    if name == "commands-65":
        env = {"seq": 1, "payload": "{}", "signature": "x"}
        return json.dumps(dict(ok, commands=[env] * 65)).encode()
    if name == "next-negative":
        return json.dumps(dict(ok, next_sync_sec=-1)).encode()
    if name == "next-huge":
        return json.dumps(dict(ok, next_sync_sec=2**63 - 1)).encode()
    if name == "deep-arrays":
        return b"[" * 100000 + b"]" * 100000
    if name == "deep-in-acked":
        return json.dumps(ok).replace('"acked": []', '"acked": ' + "[" * 100000 + "]" * 100000).encode()
    if name == "plan-257":
        t = int(time.time())
        windows = [{"start": t + 10 * i, "end": t + 10 * i + 5, "rate_bps": 1000} for i in range(257)]
        return json.dumps(dict(ok, contact_plan={"windows": windows})).encode()
    if name == "nul-in-body":
        return json.dumps(ok).encode()[:10] + b"\0" + json.dumps(ok).encode()[10:]
    if name == "invalid-utf8":
        return json.dumps(dict(ok, acked=[{"boot_epoch": 1, "boot_id": "X", "seq": []}])) \
            .encode().replace(b'"X"', b'"\xff\xfe"')
    if name == "ack-unknown":
        return json.dumps(dict(ok, acked=ack_unknown(req))).encode()
    if name == "ack-unsent":
        return json.dumps(dict(ok, acked=ack_unsent(req))).encode()
    if name == "ack-wrong-types":
        # the right records, but keys of the wrong types: must not be coerced into acks
        acks = ack_all(req)
        for a in acks:
            a["boot_epoch"] = str(a["boot_epoch"])
            a["seq"] = [str(s) for s in a["seq"]]
        return json.dumps(dict(ok, acked=acks)).encode()
    if name == "dense-acks":
        # just under the agent's 8 MiB: four million tiny values for its JSON parser to hold
        head = json.dumps(dict(ok, acked=[{"boot_epoch": req.get("boot_epoch", 1),
                                           "boot_id": req.get("boot_id", "0" * 32), "seq": [0]}]))
        i = head.index("[0]") + 1
        n = (8 * 1024 * 1024 - len(head) - 64) // 2
        return (head[:i] + "0," * n + head[i:]).encode()
    raise ValueError("unknown malformed answer " + name)


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_BLOCK_MAX = 128 * 1024


def zstd_block(kind, size, last, payload):
    """A block header (RFC 8878, 3.1.1.2): last bit, type (0 raw, 1 RLE), size."""
    h = (size << 3) | (kind << 1) | (1 if last else 0)
    return h.to_bytes(3, "little") + payload


def zstd_frame(prefix, rle_bytes, content_size=None, dict_id=None):
    """A zstd frame made by hand (no zstd module in the standard library): prefix in a raw
    block, then rle_bytes spaces in RLE blocks of 128 KiB, 4 bytes each: 200 MiB in 6 KiB."""
    descriptor = 0
    extra = b""
    if dict_id is not None:
        descriptor |= 3
        extra += dict_id.to_bytes(4, "little")
    if content_size is not None:
        descriptor |= 3 << 6
        extra += content_size.to_bytes(8, "little")
    window = bytes([(20 - 10) << 3])  # a window of 1 MiB
    out = [ZSTD_MAGIC, bytes([descriptor]), window, extra]
    out.append(zstd_block(0, len(prefix), rle_bytes == 0, prefix))
    left = rle_bytes
    while left > 0:
        n = min(left, ZSTD_BLOCK_MAX)
        left -= n
        out.append(zstd_block(1, n, left == 0, b" "))
    return b"".join(out)


def zstd_body(name, req):
    """Content-Encoding: zstd answers: (bytes, the Content-Encoding to say)."""
    prefix = b'{"format":1,"acked":['
    if name == "bomb":  # 200 MiB of JSON whitespace that does not say how much
        return zstd_frame(prefix, HUGE), "zstd"
    if name == "bomb-said":  # the same that says so in its header
        return zstd_frame(prefix, HUGE, content_size=HUGE + len(prefix)), "zstd"
    if name == "truncated":  # a good answer, cut
        return zstd_frame(json.dumps(answer(acked=ack_all(req))).encode(), 0)[:-7], "zstd"
    if name == "wrong-dict":  # made with a dictionary the node does not have
        return zstd_frame(json.dumps(answer(acked=ack_all(req))).encode(), 0, dict_id=12345), "zstd"
    if name == "gzip":  # a coding the node never asked for
        return json.dumps(answer(acked=ack_all(req))).encode(), "gzip"
    raise ValueError("unknown zstd answer " + name)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        args = self.server.args
        mode, arg = read_mode(args)
        log(args, event="connection", mode=mode, arg=arg)
        conn = self.request
        conn.settimeout(30)
        if mode == "plain":
            return self.plain(args, conn)
        name = arg if mode == "tls" else "server"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(args.certs, name + ".pem"), os.path.join(args.certs, name + ".key"))
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log(args, event="handshake-failed", done=True, mode=mode, arg=arg, error=str(e))
            return
        peer = tls.getpeercert() or {}
        cn = [v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"]
        try:
            self.serve(args, tls, mode, arg, cn[0] if cn else None)
        except (OSError, ssl.SSLError) as e:
            log(args, event="connection-error", done=True, mode=mode, arg=arg, error=str(e))
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def plain(self, args, conn):
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        log(args, event="plain", done=True, mode="plain", bytes=len(data),
            tls_client_hello=data[:1] == b"\x16", looks_like_http=data[:5] in (b"POST ", b"GET /"),
            has_records=b"records" in data)
        body = json.dumps(answer(acked=[{"boot_epoch": 1, "boot_id": "0" * 32, "seq": [1]}])).encode()
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        except OSError:
            pass

    def serve(self, args, tls, mode, arg, cn):
        f = tls.makefile("rb")
        line = f.readline(8192).decode("latin-1").rstrip("\r\n")
        if not line:
            # TLS 1.3: our handshake may end before the client has checked our certificate
            log(args, event="no-request", done=True, mode=mode, arg=arg, cn=cn)
            return
        headers = {}
        while True:
            h = f.readline(8192).decode("latin-1").rstrip("\r\n")
            if not h:
                break
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        body = f.read(length) if length else b""
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            req = {}
        keys = [[r["key"]["boot_epoch"], r["key"]["boot_id"], r["key"]["seq"]]
                for r in req.get("records", []) if isinstance(r, dict) and "key" in r]
        log(args, event="request", mode=mode, arg=arg, request=line, cn=cn, body_bytes=len(body),
            accept_encoding=headers.get("accept-encoding"), content_encoding=headers.get("content-encoding"),
            records=keys, has_status=req.get("status") is not None,
            last_command_seq=req.get("last_command_seq"), boot_epoch=req.get("boot_epoch"))
        sent = 0
        try:
            if mode == "slow":
                self.head(tls, 200, 1000)
                for _ in range(600):
                    tls.sendall(b" ")
                    sent += 1
                    if sent == 1:
                        log(args, event="dripping", mode=mode)
                    time.sleep(1)
            elif mode in ("huge", "huge-close"):
                self.head(tls, 200, HUGE if mode == "huge" else None)
                block = b" " * CHUNK
                tls.sendall(b'{"format":1,"acked":[' + b" " * (CHUNK - 21))
                sent = CHUNK
                while sent < HUGE:
                    tls.sendall(block)
                    sent += CHUNK
            elif mode == "busy":
                # a controller past a node's sync rate: 429, come back in ARG seconds
                data = json.dumps({"error": "too-many-requests", "message": "busy"}).encode()
                self.head(tls, 429, len(data), {"Retry-After": arg})
                tls.sendall(data)
                sent = len(data)
            elif mode == "zstd":
                data, coding = zstd_body(arg, req)
                self.head(tls, 200, len(data), {"Content-Encoding": coding})
                tls.sendall(data)
                sent = len(data)
            else:
                if mode == "bad":
                    data = bad_body(arg, req)
                elif mode in ("replay", "forged"):
                    with open(arg) as ef:
                        env = json.load(ef)
                    if mode == "forged":
                        # the same signature over other bytes: the next seq, status.send
                        cmd = json.loads(env["payload"])
                        cmd["seq"] = env["seq"] + 1
                        env = {"seq": env["seq"] + 1,
                               "payload": json.dumps(cmd, separators=(",", ":")),
                               "signature": env["signature"]}
                    data = json.dumps(answer(commands=[env])).encode()
                elif mode == "forged-flood":
                    with open(arg) as ef:
                        env = json.load(ef)
                    cmds = []
                    with FLOOD_LOCK:
                        for _ in range(64):
                            seq = FLOOD_SEQ[0]
                            FLOOD_SEQ[0] += 1
                            cmd = json.loads(env["payload"])
                            cmd["seq"] = seq
                            cmds.append({"seq": seq, "payload": json.dumps(cmd, separators=(",", ":")),
                                         "signature": env["signature"]})
                    data = json.dumps(answer(commands=cmds)).encode()
                elif mode == "quiet":
                    data = json.dumps(answer()).encode()
                elif mode == "spaced":
                    # acks nothing, and asks for the next sync in ARG seconds
                    data = json.dumps(answer(next_sync=int(arg))).encode()
                else:
                    data = json.dumps(answer(acked=ack_all(req))).encode()
                self.head(tls, 200, len(data))
                tls.sendall(data)
                sent = len(data)
            log(args, event="answered", done=True, mode=mode, arg=arg, sent=sent)
        except OSError as e:
            log(args, event="peer-left", done=True, mode=mode, arg=arg, sent=sent, error=str(e))

    @staticmethod
    def head(tls, status, length, extra=None):
        h = "HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nConnection: close\r\n" % status
        if length is not None:
            h += "Content-Length: %d\r\n" % length
        for k, v in (extra or {}).items():
            h += "%s: %s\r\n" % (k, v)
        tls.sendall((h + "\r\n").encode())


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        log(self.args, event="handler-error", error=str(sys.exc_info()[1]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--mode-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--certs", required=True)
    p.add_argument("--client-ca", required=True)
    args = p.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    srv.args = args
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
