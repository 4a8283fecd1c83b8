#!/usr/bin/env bash
# The bytes on the wire of a sync, plain, zstd and zstd with a dictionary: the bodies of
# bench/link-zstd (one health.report; 250 records of ~3.7 KB) posted to the build's
# orbit-controller (--zstd-dictionary) over loopback with mutual TLS by a client that
# speaks TLS through memory buffers, so every TCP payload byte is counted: the handshake
# (TLS 1.3, both certificates, no resumption) apart from the request and its answer
# (headers as the agent sends them; the answer in zstd when asked; the server's session
# tickets land in the answer's count, the same for every row). Figures, not a test.
#
#   bench/link-zstd-wire.sh [BUILD_DIR]      (default: the current directory)
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
for t in openssl python3; do
        command -v "$t" >/dev/null 2>&1 || { echo "link-zstd-wire: $t not found" >&2; exit 1; }
done
[ -x "$B/orbit-controller" ] && [ -x "$B/orbit-bundle" ] || { echo "link-zstd-wire: no orbit-controller in $B" >&2; exit 1; }
make -s -C "$B" bench/link-zstd >/dev/null
D=$(mktemp -d)
CPID=""
trap '[ -n "$CPID" ] && kill "$CPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
cd "$D"
mkca() {
        openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null &&
                openssl req -x509 -new -key "$1.key" -subj "$2" -days 2 -out "$1.pem" \
                        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
}
mkcert() {
        openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null &&
                openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null &&
                printf '%s\n' "$4" >"$1.ext" &&
                openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 1 \
                        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
mkca server-ca "/CN=ground TLS CA" && mkca node-ca "/CN=fleet node CA" &&
        mkcert server 127.0.0.1 server-ca 'basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1' &&
        mkcert node sat-017 node-ca 'basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
"$B/orbit-bundle" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null
"$B/orbit-bundle" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
        --key cmd.key --cert cmd.pem >/dev/null
"$B/bench/link-zstd" 16384 "$D" >/dev/null
"$B/orbit-controller" serve --listen 127.0.0.1:0 --port-file port --data-dir data --cert server.pem \
        --key server.key --node-ca node-ca.pem --command-key cmd.key --command-cert cmd.pem \
        --zstd-dictionary link.dict --log-level warning >controller.log 2>&1 &
CPID=$!
for _ in $(seq 100); do [ -s port ] && break; sleep 0.1; done
[ -s port ] || { echo "link-zstd-wire: the controller did not start: $(cat controller.log)" >&2; exit 1; }
python3 - "$(cat port)" "$(od -An -tu4 -j4 -N4 link.dict | tr -d ' ')" <<'EOF'
import socket, ssl, sys

port, dict_id = int(sys.argv[1]), sys.argv[2]


def sync(body, headers):
    ctx = ssl.create_default_context(cafile="server-ca.pem")
    ctx.load_cert_chain("node.pem", "node.key")
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")
    s = socket.create_connection(("127.0.0.1", port))
    n = {"up": 0, "down": 0}

    def flush():
        d = out.read()
        if d:
            s.sendall(d)
            n["up"] += len(d)

    def fill():
        d = s.recv(65536)
        if not d:
            raise EOFError
        n["down"] += len(d)
        inc.write(d)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            fill()
    flush()
    hs = dict(n)
    head = ("POST /v1/nodes/sat-017/sync HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "%sContent-Length: %d\r\n\r\n"
            % (port, "".join("%s: %s\r\n" % h for h in headers), len(body)))
    tls.write(head.encode() + body)
    flush()
    answer = b""
    while True:
        try:
            chunk = tls.read(65536)
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                h, _, rest = answer.partition(b"\r\n\r\n")
                length = [int(l.split(b":")[1]) for l in h.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if length and len(rest) >= length[0]:
                    break
        except ssl.SSLWantReadError:
            flush()
            fill()
    status = answer.split(b" ", 2)[1].decode()
    coding = b"content-encoding: zstd" in answer.partition(b"\r\n\r\n")[0].lower()
    s.close()
    return hs, {"up": n["up"] - hs["up"], "down": n["down"] - hs["down"]}, status, coding


rows = []
for name, label in (("one", "one health.report"), ("backlog", "250 records of ~3.7 KB")):
    for kind, suffix, headers in (
            ("plain (old peers)", ".json", []),
            ("zstd", ".zst", [("Accept-Encoding", "zstd"), ("Content-Encoding", "zstd")]),
            ("zstd + dictionary", ".dict.zst", [("Accept-Encoding", "zstd"), ("Orbit-Zstd-Dictionary", dict_id),
                                                 ("Content-Encoding", "zstd")])):
        body = open(name + suffix, "rb").read()
        hs, x, status, coding = sync(body, headers)
        rows.append((label, kind, len(body), x["up"], x["down"], coding, hs["up"] + hs["down"], status))
print("%-24s %-18s %10s %12s %12s %7s  (handshake)" % ("sync", "coding", "body", "request", "answer", "zstd?"))
for label, kind, body, up, down, coding, hs, status in rows:
    print("%-24s %-18s %10d %12d %12d %7s  (%d B, HTTP %s)" % (label, kind, body, up, down, "yes" if coding else "no", hs, status))
EOF
