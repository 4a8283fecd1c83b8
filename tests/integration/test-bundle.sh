# Integration test of orbit-bundle: keys by keygen and by openssl, create, info, verify,
# and hostile bundles made with tar, dd, head and gzip, each refused with its reason.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"

# shellcheck source=tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"

OB=$top_builddir/orbit-bundle
[ -x "$OB" ] || bail "$OB is missing: build it first"
command -v tar >/dev/null 2>&1 || skip_all "tar not installed"
command -v gzip >/dev/null 2>&1 || skip_all "gzip not installed"

setup_testdir
D=$TESTDIR
cd "$D" || bail "cd $D"

# expect_ok NAME COMMAND...: exit 0.
expect_ok() {
        local name=$1
        shift
        if "$@" >"$D/out" 2>"$D/err"; then
                if has_sanitizer_report "$D/err"; then
                        fail "$name" "sanitizer report: $(cat "$D/err")"
                else
                        pass "$name"
                fi
        else
                fail "$name" "exit $?: $(cat "$D/err")"
        fi
}

# expect_refused NAME SUBSTRING COMMAND...: exit 1 with SUBSTRING in stderr.
expect_refused() {
        local name=$1 want=$2 rc
        shift 2
        "$@" >"$D/out" 2>"$D/err"
        rc=$?
        if has_sanitizer_report "$D/err"; then
                fail "$name" "sanitizer report: $(cat "$D/err")"
        elif [ "$rc" -ne 1 ]; then
                fail "$name" "exit $rc, expected 1: $(cat "$D/err")"
        elif ! grep -qF -- "$want" "$D/err"; then
                fail "$name" "message lacks \"$want\": $(cat "$D/err")"
        else
                pass "$name"
                note "$(head -n 1 "$D/err")"
        fi
}

# ---- keys and a valid bundle ------------------------------------------------------------
mkdir -p keyring other-keyring work
expect_ok "keygen CA" "$OB" keygen --ca --subject "CN=fleet CA,O=orbit" --key ca.key --cert ca.pem
expect_ok "keygen signer issued by the CA" "$OB" keygen --role release --subject "CN=release signer" \
        --issuer-key ca.key --issuer-cert ca.pem --key signer.key --cert signer.pem
expect_ok "keygen expired signer" "$OB" keygen --role release --subject "CN=old signer" --issuer-key ca.key \
        --issuer-cert ca.pem --not-before 2020-01-01 --days 30 --key old.key --cert old.pem
expect_ok "keygen unrelated CA" "$OB" keygen --ca --subject "CN=other CA" --key other.key --cert other.pem
cp ca.pem keyring/ && cp other.pem other-keyring/
[ "$(stat -c %a signer.key)" = 600 ] && pass "private key is mode 0600" || fail "private key is mode 0600"

cat >template.json <<'EOF'
{
  "bundle_id": "fleet-2024.06",
  "version": "1.4.0",
  "security_version": 7,
  "description": "integration test",
  "compatible": ["orbit-board-v1", "orbit-board-v2"]
}
EOF
head -c 300000 /dev/urandom >rootfs.ext4
head -c 70000 /dev/urandom >yolo.onnx
CREATE=(--manifest-template template.json --image rootfs=rootfs.ext4 --image model:yolo=yolo.onnx --chunk-size 65536)
expect_ok "create a bundle" "$OB" create "${CREATE[@]}" --key signer.key --cert signer.pem -o good.obundle
expect_ok "verify the valid bundle" "$OB" verify --keyring keyring --hardware orbit-board-v2 \
        --min-security-version 7 good.obundle
grep -q 'valid: fleet-2024.06 1.4.0 (security version 7), 2 images, signed by "CN=release signer"' "$D/out" &&
        pass "verify names bundle and signer" || fail "verify names bundle and signer" "$(cat "$D/out")"
[ "$(tar tf good.obundle | tr '\n' ' ')" = "manifest.json manifest.sig rootfs.img model-yolo.img " ] &&
        pass "members in order" || fail "members in order" "$(tar tf good.obundle)"

if "$OB" info --json good.obundle >info.json 2>"$D/err"; then
        if command -v jq >/dev/null 2>&1; then
                [ "$(jq -r '[.bundle_id, .version, .security_version, .images[0].slot_class, .images[0].size,
                    .images[0].chunks, .images[1].slot_class, .signer.subject, .verified] | join(",")' info.json)" = \
                  "fleet-2024.06,1.4.0,7,rootfs,300000,5,model:yolo,CN=release signer,false" ] &&
                        pass "info --json summary" || fail "info --json summary" "$(cat info.json)"
                [ "$(jq -r .images[0].sha256 info.json)" = "$(sha256sum rootfs.ext4 | cut -d' ' -f1)" ] &&
                        pass "info --json image sha256 is the file's" || fail "info --json image sha256 is the file's"
        else
                grep -q '"bundle_id": "fleet-2024.06"' info.json && pass "info --json summary" ||
                        fail "info --json summary" "$(cat info.json)"
        fi
else
        fail "info --json" "$(cat "$D/err")"
fi
expect_ok "info (text)" "$OB" info good.obundle
grep -q "NOT verified" "$D/out" && pass "info says it did not verify" || fail "info says it did not verify"

# ---- policy and signer ------------------------------------------------------------------
expect_refused "incompatible hardware" 'incompatible hardware: this node is "orbit-board-v9"' \
        "$OB" verify --keyring keyring --hardware orbit-board-v9 good.obundle
expect_refused "security_version below the minimum" "security_version 7 is below this node's minimum 8" \
        "$OB" verify --keyring keyring --min-security-version 8 good.obundle
expect_refused "wrong key (not in keyring)" 'does not chain to a trust anchor in the keyring' \
        "$OB" verify --keyring other-keyring good.obundle
expect_ok "create with an expired signer" "$OB" create "${CREATE[@]}" --key old.key --cert old.pem -o old.obundle
expect_refused "expired signer certificate" 'signer certificate "CN=old signer" expired on 2020-01-31' \
        "$OB" verify --keyring keyring old.obundle
expect_refused "valid bundle checked after its signer expired" 'expired on' \
        "$OB" verify --keyring keyring --now 2100-01-01 good.obundle
expect_refused "mismatched key and certificate" "does not match" \
        "$OB" create "${CREATE[@]}" --key other.key --cert signer.pem -o x.obundle
[ ! -e x.obundle ] && [ ! -e x.obundle.tmp ] && pass "failed create leaves no file" ||
        fail "failed create leaves no file"
echo '{"bundle_id": "b", "version": "1.0", "security_version": 1, "compatible": ["x"]}' >bad-template.json
expect_refused "template errors name file:line:column" "bad-template.json:1:31: version: expected a semantic version" \
        "$OB" create --manifest-template bad-template.json --image rootfs=rootfs.ext4 --key signer.key \
        --cert signer.pem -o x.obundle

# ---- hostile bundles --------------------------------------------------------------------
(cd work && tar xf ../good.obundle) || bail "cannot unpack good.obundle"
MAN_SIZE=$(stat -c %s work/manifest.json)
SIG_SIZE=$(stat -c %s work/manifest.sig)
# Offsets in a ustar/pax archive with 512-byte headers and padded data: the manifest, the
# signature, then the rootfs image's pax header (padding to a page: docs/bundle-format.md),
# its data, the image's header, its data.
pad() { echo $(((($1) + 511) / 512 * 512)); }
PAX=$((512 + $(pad "$MAN_SIZE") + 512 + $(pad "$SIG_SIZE")))
[ "$(dd if=good.obundle bs=1 skip=$((PAX + 156)) count=1 2>/dev/null)" = x ] || bail "no pax header after the signature"
PAX_SIZE=$((8#$(dd if=good.obundle bs=1 skip=$((PAX + 124)) count=11 2>/dev/null)))
ROOTFS_DATA=$((PAX + 512 + $(pad "$PAX_SIZE") + 512))
[ $((ROOTFS_DATA % 4096)) = 0 ] && pass "the image's data starts on a page" || fail "image data at $ROOTFS_DATA"
tar tvf good.obundle >tar-list.txt 2>tar-list.err && [ ! -s tar-list.err ] &&
        [ "$(awk '{print $6}' tar-list.txt | tr '\n' ' ')" = "manifest.json manifest.sig rootfs.img model-yolo.img " ] &&
        pass "GNU tar lists the members, in order, without a warning" ||
        fail "tar tvf" "$(cat tar-list.txt tar-list.err)"
[ "$(dd if=good.obundle bs=1 skip=$ROOTFS_DATA count=16 2>/dev/null | od -An -tx1)" = \
  "$(head -c 16 rootfs.ext4 | od -An -tx1)" ] || bail "rootfs data not where expected (pax headers?)"

cp good.obundle tampered-payload.obundle
BYTE=$((ROOTFS_DATA + 2 * 65536 + 100))
FLIPPED=$(($(dd if=good.obundle bs=1 skip=$BYTE count=1 2>/dev/null | od -An -tu1) ^ 1))
printf '%b' "\\x$(printf %02x "$FLIPPED")" | dd of=tampered-payload.obundle bs=1 seek=$BYTE conv=notrunc 2>/dev/null
cmp -s good.obundle tampered-payload.obundle && bail "the payload byte was not changed"
expect_refused "tampered payload byte" \
        "image 0 (rootfs, rootfs.img): chunk 2 (bytes 131072-196607) does not match its SHA-256" \
        "$OB" verify --keyring keyring tampered-payload.obundle

cp good.obundle tampered-manifest.obundle
OFF=$(grep -bo '"security_version": 7' work/manifest.json | cut -d: -f1)
printf '9' | dd of=tampered-manifest.obundle bs=1 seek=$((512 + OFF + 20)) conv=notrunc 2>/dev/null
expect_refused "tampered manifest" "bad signature: the manifest was not signed by" \
        "$OB" verify --keyring keyring tampered-manifest.obundle

T=(tar --format=ustar --owner=0 --group=0 -C work)
ln -s /dev/mmcblk0 work/link
"${T[@]}" -cf traversal.obundle -P manifest.json manifest.sig ../template.json
expect_refused "tar member ../x" 'member "../template.json" has an unsafe path' \
        "$OB" verify --keyring keyring traversal.obundle
"${T[@]}" -cf symlink.obundle manifest.json manifest.sig --transform 's/^link$/rootfs.img/' link
expect_refused "symlink member" 'member "rootfs.img" is a symbolic link to "/dev/mmcblk0"' \
        "$OB" verify --keyring keyring symlink.obundle
"${T[@]}" -cf order.obundle manifest.json manifest.sig model-yolo.img rootfs.img
expect_refused "members out of order" 'members out of order: expected member "rootfs.img", found "model-yolo.img"' \
        "$OB" verify --keyring keyring order.obundle
"${T[@]}" -cf order2.obundle manifest.sig manifest.json rootfs.img model-yolo.img
expect_refused "signature before manifest" 'expected member "manifest.json", found "manifest.sig"' \
        "$OB" verify --keyring keyring order2.obundle
cp work/rootfs.img work/big.img && head -c 4096 /dev/zero >>work/big.img
"${T[@]}" -cf sizelie.obundle manifest.json manifest.sig --transform 's/^big.img$/rootfs.img/' big.img model-yolo.img
expect_refused "member larger than the manifest says" 'member "rootfs.img" is 304096 bytes, the manifest says 300000' \
        "$OB" verify --keyring keyring sizelie.obundle
head -c $((ROOTFS_DATA + 100000)) good.obundle >truncated.obundle
expect_refused "truncated bundle" 'truncated or damaged tar while reading "rootfs.img"' \
        "$OB" verify --keyring keyring truncated.obundle
head -c 700 good.obundle >truncated2.obundle
expect_refused "truncated in the manifest" 'manifest.json' "$OB" verify --keyring keyring truncated2.obundle
"${T[@]}" -cf extra.obundle manifest.json manifest.sig rootfs.img model-yolo.img link
expect_refused "member after the last image" 'unexpected member "link" after the last image' \
        "$OB" verify --keyring keyring extra.obundle

# A decompression bomb: 1 GiB of zeros (a sparse file) behind a valid manifest, gzipped.
truncate -s 1G work/zero.img
"${T[@]}" -cf - manifest.json manifest.sig --transform 's/^zero.img$/rootfs.img/' zero.img | gzip -1 >bomb.obundle
rm -f work/zero.img
note "bomb: $(stat -c %s bomb.obundle) bytes, 1 GiB expanded"
expect_refused "gzip decompression bomb" 'compressed (gzip) bundle refused without decompressing' \
        "$OB" verify --keyring keyring bomb.obundle
# Refused from its first bytes, before any decompression: the bomb's 10-byte gzip header
# alone, without the stream it announces, is refused the same way. A tool that inflated
# first would stop at the missing stream and say the bundle is truncated.
head -c 10 bomb.obundle >bomb-header.obundle
expect_refused "bomb refused from its gzip header alone" 'compressed (gzip) bundle refused without decompressing' \
        "$OB" verify --keyring keyring bomb-header.obundle
expect_refused "info refuses the bomb too" 'compressed (gzip)' "$OB" info bomb.obundle

# the release's floor for going back (#18 item 6) travels from the template into the signed manifest
jq '. + {"rollback_floor": 5}' template.json >template-rf.json
expect_ok "create a bundle with a rollback_floor" "$OB" create --manifest-template template-rf.json \
        --image rootfs=rootfs.ext4 --chunk-size 65536 --key signer.key --cert signer.pem -o rf.obundle
[ "$(tar -xOf rf.obundle manifest.json | jq .rollback_floor)" = 5 ] &&
        [ "$(tar -xOf good.obundle manifest.json | jq .rollback_floor)" = null ] &&
        pass "the signed manifest carries rollback_floor 5 (none when the template has none)" ||
        fail "rollback_floor in the manifest" "$(tar -xOf rf.obundle manifest.json | head -c 300)"
jq '. + {"rollback_floor": 8}' template.json >template-rf8.json
expect_refused "a rollback_floor above security_version" "rollback_floor: 8 is above security_version 7" \
        "$OB" create --manifest-template template-rf8.json --image rootfs=rootfs.ext4 --key signer.key \
        --cert signer.pem -o rf8.obundle

# ---- keys made by openssl ---------------------------------------------------------------
if command -v openssl >/dev/null 2>&1; then
        mkdir -p ossl-keyring
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning,2.25.5623372019225234889473442596077835724.1\n' >signer.ext
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,2.25.5623372019225234889473442596077835724.1\n' >tls.ext
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=2.25.5623372019225234889473442596077835724.2\n' >cmd.ext
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyAgreement\nextendedKeyUsage=2.25.5623372019225234889473442596077835724.1\n' >ka.ext
        if openssl ecparam -name prime256v1 -genkey -noout -out ossl-ca.key 2>"$D/err" &&
           openssl req -x509 -new -key ossl-ca.key -subj "/CN=openssl CA" -days 30 -out ossl-ca.pem \
                   -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>>"$D/err" &&
           openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ossl-signer.key 2>>"$D/err" &&
           openssl req -new -key ossl-signer.key -subj "/CN=openssl signer" -out ossl-signer.csr 2>>"$D/err" &&
           openssl x509 -req -in ossl-signer.csr -CA ossl-ca.pem -CAkey ossl-ca.key -CAcreateserial -days 10 \
                   -extfile signer.ext -out ossl-signer.pem 2>>"$D/err" &&
           openssl x509 -req -in ossl-signer.csr -CA ossl-ca.pem -CAkey ossl-ca.key -CAcreateserial -days 10 \
                   -extfile tls.ext -out ossl-tls.pem 2>>"$D/err" &&
           openssl x509 -req -in ossl-signer.csr -CA ossl-ca.pem -CAkey ossl-ca.key -CAcreateserial -days 10 \
                   -extfile cmd.ext -out ossl-cmd.pem 2>>"$D/err" &&
           openssl x509 -req -in ossl-signer.csr -CA ossl-ca.pem -CAkey ossl-ca.key -CAcreateserial -days 10 \
                   -extfile ka.ext -out ossl-ka.pem 2>>"$D/err"; then
                pass "openssl made a CA (SEC1 key) and a signer (PKCS#8 key)"
                cp ossl-ca.pem ossl-keyring/
                expect_ok "create with openssl keys" "$OB" create "${CREATE[@]}" --key ossl-signer.key \
                        --cert ossl-signer.pem -o ossl.obundle
                expect_ok "verify with the openssl CA" "$OB" verify --keyring ossl-keyring ossl.obundle
                expect_refused "openssl bundle against another keyring" "does not chain to a trust anchor" \
                        "$OB" verify --keyring keyring ossl.obundle
                expect_refused "openssl signer checked after its 10 days" 'signer certificate "CN=openssl signer" expired on' \
                        "$OB" verify --keyring ossl-keyring --now "@$(($(date +%s) + 20 * 86400))" ossl.obundle
                expect_refused "a release key that is also a TLS key signs nothing" "one key, one role" \
                        "$OB" create "${CREATE[@]}" --key ossl-signer.key --cert ossl-tls.pem -o tls.obundle
                expect_refused "a command signer does not sign bundles" "is a command, not a release signer" \
                        "$OB" create "${CREATE[@]}" --key ossl-signer.key --cert ossl-cmd.pem -o cmd.obundle
                expect_ok "create with a key-agreement certificate" "$OB" create "${CREATE[@]}" \
                        --key ossl-signer.key --cert ossl-ka.pem -o ka.obundle
                expect_refused "signer certificate not for signatures" "key usage does not allow digitalSignature" \
                        "$OB" verify --keyring ossl-keyring ka.obundle
                # An openssl-made keyring holding both CAs trusts both.
                cat ca.pem ossl-ca.pem >ossl-keyring/both.pem
                rm ossl-keyring/ossl-ca.pem
                expect_ok "one PEM file with two anchors (ours)" "$OB" verify --keyring ossl-keyring good.obundle
                expect_ok "one PEM file with two anchors (openssl's)" "$OB" verify --keyring ossl-keyring ossl.obundle
                # A P-384 key is not what a node accepts.
                openssl ecparam -name secp384r1 -genkey -noout -out p384.key 2>/dev/null &&
                        openssl req -x509 -new -key p384.key -subj "/CN=p384" -days 5 -out p384.pem 2>/dev/null
                expect_refused "create refuses a P-384 key" "is not an EC P-256 key" \
                        "$OB" create "${CREATE[@]}" --key p384.key --cert p384.pem -o x.obundle
        else
                fail "openssl made a CA and a signer" "$(cat "$D/err")"
        fi
else
        note "SKIP openssl checks: openssl not installed (Debian package openssl)"
fi

finish
