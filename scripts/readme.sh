#!/usr/bin/env bash
# Runs README.md's shell commands as written, in order, in a fresh copy of
# this tree (its tracked files and its new ones not ignored), as a newcomer
# would after cloning: every line of every ```sh block, and the ```ini block
# as pgbouncer.ini. Run by `make test`; about a minute once Go's build cache
# is warm.
#
# What it does not run as written, and why:
#   - make test: CI's own command, which runs this script;
#   - PostgreSQL's port: the README's examples use 5432, the port of a
#     PostgreSQL you run yourself; here it is the one `make up` started
#     (.belay/pg0/port, its primary's), substituted for 5432 in commands and in the ini;
#   - 6432, belay up's port, only if it was busy and belay up took another.
# Long-running commands (make up, ./belay proxy) run in the background, each
# in its own session; the script waits for them to listen, and stops every
# process it started with SIGINT, as Ctrl-C would, checking they exit
# cleanly.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/belay-readme.XXXXXX")
chmod 755 "$tmp" # PostgreSQL runs as postgres when this runs as root
work=$tmp/belay
mkdir "$work"

bg_pids=()
cleanup() {
	for pid in "${bg_pids[@]}"; do
		kill -KILL -- "-$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "readme.sh: $*" >&2
	exit 1
}

# A fresh copy of the tree.
git -C "$repo" ls-files -z --cached --others --exclude-standard |
	(cd "$repo" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' _) |
	tar -C "$repo" --null -T - -cf - | tar -C "$work" -xf -
cd "$work"

# waitFor FILE PATTERN SECONDS: until FILE has a line matching PATTERN.
waitFor() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$1" >&2
	fail "no '$2' in $1 after $3 s"
}

# waitPort PORT SECONDS: until 127.0.0.1:PORT accepts.
waitPort() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	fail "nothing listens on 127.0.0.1:$1 after $2 s"
}

# stopBg PID LOG: SIGINT to the process group, as Ctrl-C; it must exit
# within 30 s without an error.
stopBg() {
	local pid=$1 log=$2 rc=0 i
	kill -INT -- "-$pid"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && fail "$(head -c 200 "$log"): did not stop within 30 s of SIGINT"
	wait "$pid" || rc=$?
	if grep -q 'make: \*\*\*' "$log" || { [ "$rc" != 0 ] && [ "$rc" != 130 ]; }; then
		cat "$log" >&2
		fail "exit status $rc after SIGINT (make dies of the SIGINT it got too: 130)"
	fi
}

upPort=6432 pgPort=5432 proxyPid="" upPid=""
# run CMD: one command of the README, with the substitutions above.
run() {
	local cmd=$1
	cmd=${cmd//5432/$pgPort}
	[ "$upPort" = 6432 ] || cmd=${cmd//6432/$upPort}
	echo "readme.sh: \$ $cmd"
	case "$cmd" in
	"make test")
		echo "readme.sh:   (skipped: CI's own command, which runs this script)"
		;;
	"make up")
		setsid bash -c 'exec make up' >"$tmp/up.log" 2>&1 &
		upPid=$!
		bg_pids+=("$upPid")
		waitFor "$tmp/up.log" "Press Ctrl-C" 300
		upPort=$(sed -n 's|.*Connection string:  postgres://[^@]*@127.0.0.1:\([0-9]*\)/.*|\1|p' "$tmp/up.log")
		pgPort=$(cat .belay/pg0/port)
		[ "$upPort" = 6432 ] || echo "readme.sh:   (6432 was busy: belay up listens on $upPort)"
		;;
	"./belay proxy -h" | "./belay proxy --help")
		./belay proxy -h >"$tmp/help.txt" 2>&1
		grep -q -- '--listen' "$tmp/help.txt" || fail "belay proxy -h lists no --listen"
		;;
	"./belay proxy "*)
		if [ -n "$proxyPid" ]; then stopBg "$proxyPid" "$tmp/proxy.log"; fi
		setsid bash -c "exec $cmd" >"$tmp/proxy.log" 2>&1 &
		proxyPid=$!
		bg_pids+=("$proxyPid")
		waitPort 6433 30
		;;
	*)
		timeout 120 bash -c "$cmd" || fail "failed: $cmd"
		;;
	esac
}

[ -n "$(sed -n '/^```ini$/,/^```$/p' README.md)" ] || fail "README.md has no \`\`\`ini block"
# The ini block, as pgbouncer.ini; written before the commands run, with
# the port substituted once make up has started (below).
sed -n '/^```ini$/,/^```$/p' README.md | sed '1d;$d' >"$tmp/pgbouncer.ini"

# Every line of every sh block, continuation lines joined, comments dropped.
mapfile -t cmds < <(sed -n '/^```sh$/,/^```$/{/^```/d;p}' README.md |
	sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' |
	sed -e 's/[[:space:]]\{1,\}# .*$//' -e '/^[[:space:]]*$/d')
[ "${#cmds[@]}" -gt 5 ] || fail "found only ${#cmds[@]} commands in README.md"
for c in "${cmds[@]}"; do
	if [[ "$c" == "./belay proxy pgbouncer.ini" ]]; then
		sed "s/5432/$pgPort/g" "$tmp/pgbouncer.ini" >pgbouncer.ini
	fi
	run "$c"
done

[ -n "$proxyPid" ] && stopBg "$proxyPid" "$tmp/proxy.log"
[ -n "$upPid" ] || fail "the README never ran make up"
stopBg "$upPid" "$tmp/up.log"
grep -q "belay up: stopped." "$tmp/up.log" || { cat "$tmp/up.log" >&2; fail "belay up did not say it stopped"; }
if pgrep -f "$work" >/dev/null; then
	fail "processes left running: $(pgrep -af "$work")"
fi
bg_pids=()
echo "readme.sh: ok: ${#cmds[@]} commands of README.md"
