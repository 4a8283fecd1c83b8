# Integration test: state-check, which judges a directory of the agent's state files with
# the agent's own loaders (scripts/board.sh's sweep runs it on the data partition at each
# flush of a power cut). Files made here byte by byte in both formats (lib/statefile.h):
# good, torn with a last good copy, empty with one, a last good copy alone, torn with none, empty, zeros,
# a pair with one torn copy and with two; temporary and ignored names left out.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

TOOL=$top_builddir/tests/integration/state-check
[ -x "$TOOL" ] || bail "$TOOL not built"
setup_testdir
S=$TESTDIR/state
mkdir -p "$S"

# single FILE PAYLOAD: statefile_save's format; pair FILE SEQ0 PAYLOAD0 SEQ1 PAYLOAD1 (a
# SEQ of "-" leaves that block zeros, "torn" writes a copy whose last byte is flipped)
python3 - "$S" <<'PY' || bail "making the state files"
import hashlib, os, sys
S = sys.argv[1]
def single(payload):
    p = payload.encode()
    return b"orbit-state 1 %d %s\n" % (len(p), hashlib.sha256(p).hexdigest().encode()) + p
def block(seq, payload, torn=False):
    p = payload.encode()
    d = hashlib.sha256(b"%d %d\n" % (seq, len(p)) + p).hexdigest().encode()
    b = b"orbit-pair 1 %d %d %s\n" % (seq, len(p), d) + p
    b = b + b"\0" * (4096 - len(b))
    if torn:
        i = len(b.rstrip(b"\0")) - 1
        b = b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]
    return b
def put(name, data):
    open(os.path.join(S, name), "wb").write(data)
put("identity", single('{"node":"sat-1"}'))
put("boot", single('{"epoch":4}')[:-3])                  # torn: its payload cut short
put("boot.prev", single('{"epoch":3}'))
put("link.prev", single('{"seq":9}'))                    # a removal that took the file first
put("usage", b"")                                        # empty, its last good copy whole
put("usage.prev", single('{"cpu":7}'))
put("trust", single('{"keys":[]}').replace(b"keys", b"keyz"))  # no last copy
put("update", b"")                                       # empty: its data lost
put("scrub", b"\0" * 8192)                               # zeros
put("progress", block(6, '{"chunks":60}') + block(7, '{"chunks":70}', torn=True))
put("records", block(2, '{"a":1}', torn=True) + block(3, '{"a":2}', torn=True))
put("fresh", block(0, '{"x":0}') + b"\0" * 4096)         # one copy, the other never written
put("desired.tmp", b"half")                              # a save cut before its rename
put("agent.lock", b"")                                   # ignored by name
PY

out=$("$TOOL" --ignore agent.lock "$S" 2>"$TESTDIR/err")
rc=$?
note "$(tail -n 1 <<<"$out")"
verdict() { grep -E "^[A-Za-z]+ $S/$1( |:|$)" <<<"$out" | awk '{ print $1 }'; }
check "a good file: good" test "$(verdict identity)" = good
check "a pair with one copy never written: good" test "$(verdict fresh)" = good
check "torn, its last good copy whole: restored" test "$(verdict boot)" = restored
check "the restored copy written back as the file (the load on a copy of the state)" \
        grepq '"epoch":3' "$S/boot"
check "a last good copy alone (a removal that took the file first): bad, it would come back" \
        grepq "^BAD $S/link: its last good copy alone" <<<"$out"
check "an empty file beside its last good copy: restored" test "$(verdict usage)" = restored
check "a pair, its newer copy torn: the older one good" test "$(verdict progress)" = good
check "torn with no last good copy: bad" grepq "^BAD $S/trust: no copy verifies" <<<"$out"
check "an empty file: bad (the agent never makes one)" grepq "^BAD $S/update: empty" <<<"$out"
check "a file of zeros: bad" grepq "^BAD $S/scrub: no copy in it" <<<"$out"
check "a pair with both copies torn: bad" grepq "^BAD $S/records: no copy verifies" <<<"$out"
check "the counts: 10 state files, 3 good, 2 restored, 5 bad; a temporary file, an ignored one" \
        grepq 'state-check: 10 state files: 3 good, 2 restored from their last good copy, 5 bad; 1 temporary or kept corrupt, 1 ignored' <<<"$out"
check "exit status 1 with a bad file" test "$rc" = 1
check "the loaders' reasons on standard error" grepq 'state .*/trust: unusable' "$TESTDIR/err"

rm -f "$S/trust" "$S/update" "$S/scrub" "$S/records" "$S/link.prev"
out=$("$TOOL" --ignore agent.lock "$S" 2>/dev/null)
rc=$?
note "$(grep -v "^good\|^restored" <<<"$out")"
check "without the bad ones: exit status 0 (what the loader kept aside, boot.corrupt and usage.corrupt, left out)" \
        eval 'test "$rc" = 0 && test -f "$S/boot.corrupt" && grepq "3 temporary or kept corrupt" <<<"$out"' 
check "an unreadable directory: status 2, named" eval '"$TOOL" "$TESTDIR/none" >/dev/null 2>"$TESTDIR/err"; test $? = 2 &&
        grepq "state-check: $TESTDIR/none: No such file or directory" "$TESTDIR/err"'

finish
