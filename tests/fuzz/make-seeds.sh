#!/usr/bin/env bash
# Re-make every signed fuzz seed from the fuzz PKI in tests/fuzz/keys (docs/fuzzing.md,
# "Seed corpora"), and check each one verifies (or fails) as it should.
# Usage: make-seeds.sh BUILD_DIR [--keys]
#   BUILD_DIR  a configured build where `make check` (or `make orbit-bundle
#              tests/integration/command-verify tests/fuzz/seed-tool`) has run
#   --keys     first make a new fuzz PKI (CA, release and command signers, root) and
#              embed the CA and the in-force trust document in tests/fuzz/fuzz-keys.h
# Writes into the source tree: tests/fuzz/corpus/{fuzz-bundle,fuzz-signature,fuzz-command,
# fuzz-sync-answer,fuzz-zstd-answer,fuzz-trust} (only the seeds that carry a signature) and,
# with --keys, tests/fuzz/keys and tests/fuzz/fuzz-keys.h. ECDSA signatures are randomized,
# so every run changes the signed seeds' bytes, never what they are.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: make-seeds.sh BUILD_DIR [--keys]}" && pwd)
new_keys=${2:-}
bundle=$build/orbit-bundle
command_verify=$build/tests/integration/command-verify
seed_tool=$build/tests/fuzz/seed-tool
for t in "$bundle" "$command_verify" "$seed_tool"; do
        [ -x "$t" ] || { echo "make-seeds.sh: $t missing: run 'make check' in $build" >&2; exit 2; }
done
keys=$here/keys
corpus=$here/corpus
tmp=$(mktemp -d "${TMPDIR:-/tmp}/orbit-seeds.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The fuzz PKI: test-only keys, trusted by nothing but the harnesses, valid 2020 to 2119.
validity=(--not-before 2020-01-01 --days 36500)
if [ "$new_keys" = --keys ]; then
        rm -f "$keys"/*.key "$keys"/*.pem
        "$bundle" keygen --ca --key "$keys/ca.key" --cert "$keys/ca.pem" \
                --subject "CN=orbit fuzz CA,O=orbit" "${validity[@]}"
        for role in release command; do
                "$bundle" keygen --role $role --key "$keys/$role.key" --cert "$keys/$role.pem" \
                        --subject "CN=orbit fuzz $role signer,O=orbit" \
                        --issuer-key "$keys/ca.key" --issuer-cert "$keys/ca.pem" "${validity[@]}"
        done
        "$bundle" keygen --role root --key "$keys/root.key" --cert "$keys/root.pem" \
                --subject "CN=orbit fuzz root,O=orbit" "${validity[@]}"
elif [ -n "$new_keys" ]; then
        echo "make-seeds.sh: unknown option $new_keys" >&2
        exit 2
fi
mkdir -p "$tmp/keyring"
cp "$keys/ca.pem" "$tmp/keyring/"
# A signer in the right role that nothing trusts (the "untrusted" seeds).
"$bundle" keygen --role release --key "$tmp/other.key" --cert "$tmp/other.pem" \
        --subject "CN=someone else" "${validity[@]}" >/dev/null

# Flip one byte, the first occurrence of FROM in FILE, to TO (same length).
patch_first() {
        python3 - "$@" <<'EOF'
import sys
path, old, new = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
data = open(path, 'rb').read()
i = data.index(old)
open(path, 'wb').write(data[:i] + new + data[i + len(old):])
EOF
}

# ---- fuzz-bundle: orbit-bundle create, chunk size 4096, hardware orbit-board-v2 ----------
d=$corpus/fuzz-bundle
cat >"$tmp/template.json" <<'EOF'
{"format": 1, "bundle_id": "fuzz-1", "version": "1.0.0", "security_version": 1,
 "description": "fuzz seed", "compatible": ["orbit-board-v2"]}
EOF
head -c 5000 /dev/zero | tr '\0' R >"$tmp/rootfs.img"
printf model >"$tmp/model-yolo.img"
(cd "$tmp" && "$bundle" create --manifest-template template.json --image rootfs=rootfs.img \
        --image model:yolo=model-yolo.img --key "$keys/release.key" --cert "$keys/release.pem" \
        --chunk-size 4096 -o "$d/valid.bundle" >/dev/null)
cp "$d/valid.bundle" "$d/bad-signature.bundle"
patch_first "$d/bad-signature.bundle" '"fuzz-1"' '"Fuzz-1"'    # the signed manifest changed
cp "$d/valid.bundle" "$d/bad-chunk.bundle"
patch_first "$d/bad-chunk.bundle" RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRX
head -c 3000 "$d/valid.bundle" >"$d/truncated.bundle"
gzip -n -9 -c "$d/valid.bundle" >"$d/compressed.bundle"
"$bundle" verify --keyring "$tmp/keyring" --hardware orbit-board-v2 "$d/valid.bundle" >/dev/null
for b in bad-signature bad-chunk truncated compressed; do
        if "$bundle" verify --keyring "$tmp/keyring" --hardware orbit-board-v2 "$d/$b.bundle" \
                >/dev/null 2>&1; then
                echo "make-seeds.sh: $b.bundle verifies" >&2
                exit 1
        fi
done

# ---- fuzz-signature: over the fixed data of fuzz-signature.c, purpose bundle -------------
d=$corpus/fuzz-signature
printf 'orbit fuzz: the fixed data every fuzz-signature input signs\n' >"$tmp/data"
grep -q '"orbit fuzz: the fixed data every fuzz-signature input signs\\n"' \
        "$here/fuzz-signature.c" || { echo "make-seeds.sh: FUZZ_SIGNED_DATA changed" >&2; exit 1; }
"$seed_tool" sign bundle "$keys/release.key" "$keys/release.pem" "$tmp/data" >"$d/valid.sig"
head -c $(($(wc -c <"$d/valid.sig") / 2)) "$d/valid.sig" >"$d/truncated.sig"
"$seed_tool" sign bundle "$tmp/other.key" "$tmp/other.pem" "$tmp/data" >"$d/untrusted.sig"
# a good command signature: the wrong purpose and role for a bundle
"$seed_tool" sign command "$keys/command.key" "$keys/command.pem" "$tmp/data" >"$d/wrong-purpose.sig"

# ---- fuzz-command: envelopes for node-1 (last applied seq 2), by the command signer -------
d=$corpus/fuzz-command
envelope() { # NAME NODE SEQ ACTION PARAMS
        "$command_verify" --sign "$keys/command.key" "$keys/command.pem" "$2" "$3" 1700000000 \
                4000000000 "$4" "$5" >"$d/$1.json"
        python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["payload"])' \
                "$d/$1.json" >"$d/$1.json.payload"
}
envelope workload-start node-1 3 workload.start '{"name":"cam"}'
envelope update-install node-1 4 update.install '{"bundle_id":"fleet-1"}'
envelope config-set node-1 5 config.set '{"key":"log.level","value":"debug"}'
envelope reboot-other-node node-2 6 reboot '{}'
python3 - "$d/workload-start.json" "$d/extra-key.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
e["extra"] = 1
open(sys.argv[2], "w").write(json.dumps(e))
EOF
for c in workload-start update-install config-set; do
        "$command_verify" "$tmp/keyring" node-1 2 "$d/$c.json" >/dev/null
done
for c in reboot-other-node extra-key; do
        if "$command_verify" "$tmp/keyring" node-1 2 "$d/$c.json" >/dev/null 2>&1; then
                echo "make-seeds.sh: $c.json verifies" >&2
                exit 1
        fi
done

# ---- fuzz-sync-answer and fuzz-zstd-answer: an answer carrying that command --------------
printf '{"format":1,"acked":[],"commands":[%s],"contact_plan":{"windows":[{"start":1,"end":2,"rate_bps":1},{"start":5,"end":9,"rate_bps":3}]},"next_sync_sec":86400,"server_time":1}' \
        "$(cat "$d/workload-start.json")" >"$corpus/fuzz-sync-answer/command.json"
# byte 0: no dictionary, pieces of 9 bytes (fuzz-zstd-answer.c)
{ printf '\020'; zstd -q -3 --no-check -c "$corpus/fuzz-sync-answer/command.json"; } \
        >"$corpus/fuzz-zstd-answer/command.zst"

# ---- fuzz-trust: envelopes signed by the fuzz root ---------------------------------------
d=$corpus/fuzz-trust
mkdir -p "$d"
trust() { # FILE VERSION EXPIRES
        "$seed_tool" trust-new "$2" "$3" 1 "$keys/root.pem" "$keys/ca.pem" "$keys/ca.pem" \
                >"$tmp/unsigned.json"
        "$seed_tool" trust-sign "$tmp/unsigned.json" "$keys/root.key" "$keys/root.pem" >"$1"
}
trust "$d/valid-v1.json" 1 4000000000   # the document in force of fuzz-trust.c
trust "$d/valid-v2.json" 2 4000000000   # an update of it
trust "$d/expired-v2.json" 2 1700000000 # an update that expired in 2023
cp "$d/valid-v2.json" "$d/bad-signature.json"
patch_first "$d/bad-signature.json" '\"version\": 2' '\"version\": 3' # signed text changed
printf '{"signed": "{\\"type\\": \\"orbit-trust\\", \\"format\\": 1, \\"version\\": 1}", "signatures": [1]}\n' \
        >"$d/malformed.json"

# ---- tests/fuzz/fuzz-keys.h: the CA and the in-force trust document, embedded ------------
python3 - "$here/fuzz-keys.h" "$keys/ca.pem" "$d/valid-v1.json" <<'EOF'
import re, sys
header, ca, doc = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read()
def c_string(text):
    out = []
    for line in text.splitlines(keepends=True):
        for i in range(0, len(line), 72):  # long lines (the signed text) in pieces
            piece = line[i:i + 72]
            out.append('        "' + piece.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n') + '"\n')
    return ''.join(out)
h = open(header).read()
for name, text in (("FUZZ_CA_PEM", ca), ("FUZZ_TRUST_IN_FORCE", doc)):
    h, n = re.subn(r'(static const char %s\[\] =\n)(?:        ".*"\n)+' % name,
                   lambda m: m.group(1) + c_string(text), h)
    assert n == 1, name
open(header, 'w').write(h)
EOF
echo "make-seeds.sh: seeds re-made from $keys"
