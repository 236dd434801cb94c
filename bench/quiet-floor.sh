#!/bin/sh
# quiet-floor.sh: how far a noisy neighbour raises a quiet user's p99 on
# this machine with no proxy at all, the noisy user held to N backends.
#
# The adaptive-noisy scenarios of `belay bench` (issue Q) ask that quiet's
# p99 beside noisy be at most twice its p99 alone. This measures what the
# machine itself gives: quiet's 4 clients (`pgbench -S -M simple -c 4 -j 2`)
# alone, then beside N noisy clients (`-c N -j 1`), both straight to
# PostgreSQL, so that quiet has backends of its own and noisy never runs
# more than N queries at once (what a proxy's budget of N would at best
# give). Rounds alternate alone and beside; each prints both p99s (from
# pgbench's per-transaction logs) and their ratio, then the median ratio.
#
# usage: bench/quiet-floor.sh HOST PORT [N [ROUNDS [SECONDS]]]
#   the database postgres, user postgres, pgbench's tables loaded
#   (pgbench -i); N defaults to 5, ROUNDS to 3, SECONDS to 8.
set -eu
host=$1 port=$2 n=${3:-5} rounds=${4:-3} secs=${5:-8}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bench() { pgbench -n -S -M simple -h "$host" -p "$port" -U postgres "$@" postgres >/dev/null 2>&1; }
# p99 PREFIX: the 99th percentile (nearest rank) of the latencies, in ms,
# of the per-transaction logs PREFIX.* (their third field, in µs).
p99() { cat "$1".* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99+0.999); if(i<1)i=1; printf "%.3f", a[i]/1000}'; }
ratios=""
for r in $(seq 1 "$rounds"); do
	bench -c 4 -j 2 -T "$secs" -l --log-prefix="$dir/alone$r"
	bench -c "$n" -j 1 -T $((secs + 2)) &
	noisy=$!
	sleep 1
	bench -c 4 -j 2 -T "$secs" -l --log-prefix="$dir/beside$r"
	wait "$noisy"
	a=$(p99 "$dir/alone$r") b=$(p99 "$dir/beside$r")
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b/a}')
	ratios="$ratios $ratio"
	echo "round $r: quiet's p99 alone $a ms, beside $n noisy clients $b ms: ${ratio}x"
done
echo "median:$(echo "$ratios" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print " " a[int((NR+1)/2)] "x"}')"
