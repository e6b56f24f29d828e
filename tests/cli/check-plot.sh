#!/bin/bash
# `tiermm plot` on the statistics files in tests/fixtures/stats: usage errors
# (status 2) and bad input (status 1) with their messages, no file written or
# changed by a failed run, and pictures that are well-formed, self-contained
# SVG with a line per tier of the input, the fast_access_share panel when the
# file has values for it ("no observations" when not), the bytes moved, and
# the requested size and title; -o - writes to standard output.
# Usage: check-plot.sh TIERMM_BINARY FIXTURES_DIR
set -uo pipefail
tiermm=$1
fixtures=$2
status=0
tmp=$(mktemp -d)
trap 'chmod -R u+rwx "$tmp"; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; status=1; }

command -v python3 >/dev/null || { echo "FAIL: python3 is needed to read the pictures"; exit 1; }
work=$tmp/work
mkdir "$work" "$tmp/log"
cp "$fixtures"/*.jsonl "$fixtures"/*.csv "$work"/
cd "$work" || exit 1

# The files of the work directory, hidden ones included (temporary files).
snapshot() { ls -A "$work" | sort; }

# expect STATUS PATTERN ARGS...: tiermm plot ARGS exits STATUS and its
# standard error matches the extended regexp PATTERN (is empty when PATTERN
# is); when STATUS is not 0, no file of the work directory appeared, vanished
# or changed.
expect() {
	local want=$1 pat=$2 rc before after
	shift 2
	before=$(snapshot; md5sum -- * 2>/dev/null)
	"$tiermm" plot "$@" >"$tmp/log/out" 2>"$tmp/log/err"
	rc=$?
	after=$(snapshot; md5sum -- * 2>/dev/null)
	if [ "$rc" != "$want" ]; then
		fail "tiermm plot $*: status $rc, expected $want"
		sed 's/^/    /' "$tmp/log/err"
	elif [ -z "$pat" ] && [ -s "$tmp/log/err" ]; then
		fail "tiermm plot $*: unexpected messages"
		sed 's/^/    /' "$tmp/log/err"
	elif [ -n "$pat" ] && ! grep -qE -- "$pat" "$tmp/log/err"; then
		fail "tiermm plot $*: standard error does not match '$pat'"
		sed 's/^/    /' "$tmp/log/err"
	elif [ "$want" != 0 ] && [ "$before" != "$after" ]; then
		fail "tiermm plot $*: failed, but the directory changed:"
		diff <(echo "$before") <(echo "$after") | sed 's/^/    /'
	fi
	if [ "$want" != 0 ] && [ -s "$tmp/log/out" ]; then
		fail "tiermm plot $*: failed, but wrote to standard output"
	fi
}

# svgcheck FILE CHECK...: FILE is well-formed, self-contained SVG and passes
# every CHECK (see the script below).
cat >"$tmp/svgcheck.py" <<'EOF'
import re
import sys
import xml.dom.minidom

path, checks = sys.argv[1], sys.argv[2:]
errors = []
try:
    doc = xml.dom.minidom.parse(path)
except Exception as e:  # any parse error: not well-formed
    print("%s is not well-formed XML: %s" % (path, e))
    sys.exit(1)
root = doc.documentElement
if root.tagName != "svg" or root.getAttribute("xmlns") != "http://www.w3.org/2000/svg":
    errors.append("the root element is not <svg> in the SVG namespace")
every = doc.getElementsByTagName("*")
ids = {}
for el in every:
    if el.getAttribute("id"):
        if el.getAttribute("id") in ids:
            errors.append("id %s is not unique" % el.getAttribute("id"))
        ids[el.getAttribute("id")] = el
# Self-contained: no script, no external image, style sheet, font or link.
for tag in ("script", "image", "foreignObject", "style", "a", "use"):
    if doc.getElementsByTagName(tag):
        errors.append("has a <%s> element" % tag)
for el in every:
    for name, value in el.attributes.items():
        if name.startswith("on") or "href" in name or "url(" in value:
            errors.append("<%s %s=%r>: a script or a reference" % (el.tagName, name, value))


def text_of(el):
    return "".join(n.data for n in el.childNodes if n.nodeType == n.TEXT_NODE)


texts = [text_of(t) for t in doc.getElementsByTagName("text")]
# Numbers as in the C locale: coordinates are plain decimals.
number = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
for el in every:
    for name in ("x", "y", "x1", "y1", "x2", "y2", "width", "height", "font-size"):
        if el.hasAttribute(name) and not number.match(el.getAttribute(name)):
            errors.append("<%s %s=%r>: not a C-locale number" % (el.tagName, name,
                                                                el.getAttribute(name)))
for p in doc.getElementsByTagName("path"):
    if not re.match(r"^[MLmah0-9. -]*$", p.getAttribute("d")):
        errors.append("path %s: d=%r" % (p.getAttribute("id"), p.getAttribute("d")[:80]))


def path_points(d):
    """The points of a path, one list per subpath (the rings around lone points left out)."""
    d = re.sub(r" m[^ML]*", "", d)
    runs = []
    for sub in re.split(r"(?=M)", d):
        pts = re.findall(r"[ML](-?[0-9.]+) (-?[0-9.]+)", sub)
        if pts:
            runs.append([(float(x), float(y)) for x, y in pts])
    return runs


def ancestor_ids(el):
    out = []
    while el.parentNode is not None and el.parentNode.nodeType == el.ELEMENT_NODE:
        el = el.parentNode
        out.append(el.getAttribute("id"))
    return out


for check in checks:
    kind, _, arg = check.partition(":")
    if kind == "size":
        w, h = arg.split("x")
        if root.getAttribute("width") != w or root.getAttribute("height") != h:
            errors.append("size %sx%s, expected %s" % (root.getAttribute("width"),
                                                        root.getAttribute("height"), arg))
    elif kind == "lines":
        # The ids of the <path> lines named PREFIX<N> are exactly these.
        prefix, _, want = arg.partition("=")
        have = sorted(i for i in ids if re.match("^%s[0-9]+$" % prefix, i)
                      and ids[i].tagName == "path")
        want = sorted(prefix + n for n in want.split(",") if n)
        if have != want:
            errors.append("%s lines %s, expected %s" % (prefix, have, want))
    elif kind == "id":
        if arg not in ids:
            errors.append("no element with id %s" % arg)
    elif kind == "noid":
        if arg in ids:
            errors.append("an element with id %s, expected none" % arg)
    elif kind == "in":
        group, _, i = arg.partition("/")
        if i not in ids or group not in ancestor_ids(ids[i]):
            errors.append("no %s in the group %s" % (i, group))
    elif kind == "runs":
        i, _, n = arg.partition("=")
        got = len(path_points(ids[i].getAttribute("d"))) if i in ids else -1
        if got != int(n):
            errors.append("%s has %d runs of values, expected %s" % (i, got, n))
    elif kind == "points":
        i, _, n = arg.partition("=")
        got = sum(len(r) for r in path_points(ids[i].getAttribute("d"))) if i in ids else -1
        if got != int(n):
            errors.append("%s has %d points, expected %s" % (i, got, n))
    elif kind == "increasing":
        xs = [x for r in path_points(ids[arg].getAttribute("d")) for x, _ in r] if arg in ids else []
        if not xs or any(b <= a for a, b in zip(xs, xs[1:])):
            errors.append("the times of %s do not increase: %s" % (arg, xs))
    elif kind == "visible":
        # Every subpath draws something: a lone point has a ring around it.
        d = ids[arg].getAttribute("d") if arg in ids else ""
        if not d or any("L" not in sub and " a" not in sub for sub in re.split(r"(?=M)", d)[1:]):
            errors.append("%s has a point that nothing shows: d=%r" % (arg, d[:120]))
    elif kind == "text":
        if not any(arg in t for t in texts):
            errors.append("no text contains %r" % arg)
    elif kind == "notext":
        if any(arg in t for t in texts):
            errors.append("a text contains %r" % arg)
    elif kind == "title":
        if "title" not in ids or text_of(ids["title"]) != arg:
            errors.append("title %r, expected %r" % (text_of(ids["title"]) if "title" in ids
                                                     else None, arg))
    elif kind == "titlehas":
        if "title" not in ids or arg not in text_of(ids["title"]):
            errors.append("the title does not contain %r" % arg)
    else:
        errors.append("unknown check %r" % check)
for e in errors:
    print("%s: %s" % (path, e))
sys.exit(1 if errors else 0)
EOF
svgcheck() {
	local out
	out=$(python3 "$tmp/svgcheck.py" "$@" 2>&1) || fail "$(printf '%s\n' "$out" | sed '2,$s/^/    /')"
}

# 1. Usage errors: status 2.
expect 2 "no statistics file given"
expect 2 "an empty statistics file name" ''
expect 2 "unexpected argument 'b'" a b
expect 2 "unknown option or missing argument '--bogus'" --bogus two-pids.jsonl
expect 2 "unknown option or missing argument '--pid'" two-pids.jsonl --pid
expect 2 "--pid 0: not a process id" --pid 0 two-pids.jsonl
expect 2 "--pid -5: not a process id" --pid -5 two-pids.jsonl
expect 2 "--pid 42x: not a process id" --pid 42x two-pids.jsonl
expect 2 "--width 559: not a number of pixels from 560 to 8000" --width 559 two-pids.jsonl
expect 2 "--width 8001: not a number" --width 8001 two-pids.jsonl
expect 2 "--width 9e2: not a number" --width 9e2 two-pids.jsonl
expect 2 "--height 399: not a number of pixels from 400 to 8000" --height 399 two-pids.jsonl
expect 2 "--height : not a number" --height '' two-pids.jsonl
expect 2 "--output: an empty file name" -o '' two-pids.jsonl
expect 2 "the output share.csv is the statistics file itself" -o share.csv share.csv
cp share.csv stats.svg
expect 2 "the output stats.svg is the statistics file itself" stats.svg
expect 2 "the output \./stats.svg is the statistics file itself" stats.svg -o ./stats.svg
rm stats.svg

# 2. Help: status 0, on standard output.
"$tiermm" plot --help >"$tmp/log/help" 2>&1 || fail "tiermm plot --help: status $?"
grep -q -- "-o, --output FILE" "$tmp/log/help" || fail "tiermm plot --help does not list --output"

# 3. Bad input: status 1, and nothing written (expect checks the directory).
mkdir adir
: >empty.jsonl
expect 1 "missing.jsonl: No such file or directory" missing.jsonl
expect 1 "adir: Is a directory" adir
expect 1 "empty.jsonl: no statistics record \(the file is empty\)" empty.jsonl
expect 1 "garbage.jsonl: no statistics record \(2 lines that do not parse\)" garbage.jsonl
expect 1 "notime.jsonl: no record of pid 4242 has a time" notime.jsonl
expect 1 "has no record of pid 99; its records are of pid 4242, 4243$" --pid 99 two-pids.jsonl
expect 1 "has no record of pid 4244; its records are of pid 4242, 4243$" two-pids.jsonl --pid 4244 -o -
expect 1 "cannot write adir: Is a directory" -o adir two-pids.jsonl
expect 1 "cannot write nodir/x.svg: No such file or directory" -o nodir/x.svg two-pids.jsonl
if [ "$(id -u)" != 0 ]; then
	cp share.csv secret.csv
	chmod 000 secret.csv
	expect 1 "secret.csv: Permission denied" secret.csv
	chmod 600 secret.csv
	chmod 500 adir
	expect 1 "cannot write adir/x.svg: Permission denied" -o adir/x.svg two-pids.jsonl
	chmod 700 adir
	rm secret.csv
fi
# An output that exists is left as it was.
echo "an older picture" >keep.svg
expect 1 "no statistics record" garbage.jsonl -o keep.svg
expect 1 "has no record of pid 7" --pid 7 -o keep.svg two-pids.jsonl
[ "$(cat keep.svg)" = "an older picture" ] || fail "a failed run changed keep.svg"
rm -r keep.svg adir empty.jsonl

# 4. Pictures.
# Two processes in JSON lines: the first by default, with fast_access_share values (gaps
# where it is empty), budget and hot set.
expect 0 "" two-pids.jsonl
[ -f two-pids.svg ] || fail "tiermm plot two-pids.jsonl did not write two-pids.svg"
svgcheck two-pids.svg size:960x720 lines:tier=0,1 lines:node= in:resident/tier0 \
	in:resident/budget in:resident/hot_set in:share/fast_access_share \
	runs:fast_access_share=2 points:fast_access_share=7 points:tier0=9 points:tier1=9 \
	visible:tier0 visible:fast_access_share \
	increasing:tier0 in:moved/promoted in:moved/demoted \
	"titlehas:pid 4242" "titlehas:backend scan" "text:the file also has pid 4243" \
	"text:400 MiB" "text:observed by the backend" "text:not ground truth" \
	"text:promoted to the fast tier: 160.0 MiB" "text:demoted: 16.0 MiB" \
	"notext:no observations"
# The other one: three tiers, fast_access_share present but always empty, no runtime.
expect 0 "" --pid 4243 -o p4243.svg two-pids.jsonl
svgcheck p4243.svg lines:tier=0,1,2 points:tier2=5 noid:fast_access_share noid:budget \
	noid:hot_set "text:no observations" "text:fast_access_share is empty in every record" \
	"titlehas:pid 4243" "titlehas:backend none" "text:the file also has pid 4242"
# CSV with fast_access_share and an exec: t and the counters start again, the picture goes on.
expect 0 "" share.csv
svgcheck share.svg lines:tier=0,1 points:tier0=10 increasing:tier0 increasing:promoted \
	runs:fast_access_share=2 points:fast_access_share=8 "text:10 records of pid 6000" \
	"text:t from 0.0 to 14.0 s" "text:promoted to the fast tier: 64.0 MiB" \
	"text:demoted: 8.0 MiB"
# An older shim's file: no fast_access_share; GiB; size and title asked for, escaped.
expect 0 "" --width 1200 --height 900 --title 'A <b> & "c" '"'d'" old.jsonl
svgcheck old.svg size:1200x900 lines:tier=0,1 noid:fast_access_share \
	"text:no observations" "text:no fast_access_share in the file" "text:6 GiB" \
	"title:A <b> & \"c\" 'd'"
# No topology: a line per node. To standard output: no file.
"$tiermm" plot -o - nodes-only.csv >"$tmp/log/stdout.svg" 2>"$tmp/log/err" ||
	fail "tiermm plot -o - nodes-only.csv: status $?"
[ -e nodes-only.svg ] && fail "tiermm plot -o - wrote nodes-only.svg"
svgcheck "$tmp/log/stdout.svg" lines:tier= lines:node=0,1 "text:per node" "text:no observations"
# Text that is not UTF-8 or not allowed in XML, in the file and in the title.
printf '{"t":0.5,"pid":9,"backend":"a<b&c\\"d]]>\xff\xc3\x28\xed\xa0\x80 \xc3\xa9\\u0001","tier0_bytes":1048576}\n{"t":1.5,"pid":9,"backend":"\xe2\x82","tier0_bytes":2097152}\n' >bytes.jsonl
expect 0 "" bytes.jsonl
svgcheck bytes.svg lines:tier=0 points:tier0=2
expect 0 "" bytes.jsonl --title $'\x01<\xff\xef\xbf\xbe>' -o bytes2.svg
svgcheck bytes2.svg lines:tier=0
# Only a lone record: a picture still.
head -n 1 two-pids.jsonl >one.jsonl
expect 0 "" one.jsonl
svgcheck one.svg lines:tier=0,1 points:tier0=1 visible:tier0 visible:tier1 \
	"text:1 record of pid 4242"
# Lines that do not parse are left out, with a note.
{ cat share.csv; printf '1795000020.000,oops\n'; } >partial.csv
expect 0 "note: 1 line of partial.csv did not parse and is left out" partial.csv -o partial.svg
svgcheck partial.svg points:tier0=10
# A run that succeeds replaces an older picture, through a temporary file it renames.
echo "an older picture" >two-pids.svg
expect 0 "" two-pids.jsonl
svgcheck two-pids.svg lines:tier=0,1
leftover=$(ls -A | grep -E '^\..*\.svg\.' || true)
[ -z "$leftover" ] || fail "temporary files left: $leftover"

[ $status -eq 0 ] && echo "ok: tiermm plot: errors, pictures and outputs as expected"
exit $status
