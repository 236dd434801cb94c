#!/bin/bash
# noisyab.sh: the noisy neighbour of `belay bench --scenarios adaptive-noisy`
# by hand, for A/B tests of belay variants against one running Postgres:
# user noisy runs 100 pgbench clients flat out (-S -M simple, -j $J), user
# quiet 4 clients starting 1.5 s later for $T seconds; each variant is a
# `belay proxy` started afresh per run, variants alternating round by round.
# It prints each run's tps of both users and their total, and medians at
# the end. `belay bench` remains the measurement of record (it adds
# PgBouncer, the alone phase, p99s from pgbench's logs and the limit's
# samples); this is for quick comparisons of limiter changes:
#
#   go build -o /tmp/belay.bin ./cmd/belay
#   bench/noisyab.sh PGPORT 4 "adaptive|--max-db-connections 20" \
#       "fixed5|--adaptive-limit=false --max-db-connections 5"
#
# Usage: noisyab.sh PGPORT ROUNDS "name|belay flags[|BIN]" ...
# The users noisy and quiet must exist and may log in without a password,
# and database pgbench must hold pgbench's tables (pgbench -i). BELAY_BIN
# (default /tmp/belay.bin) is the binary; J (default 1) noisy's pgbench
# threads; T (default 10) quiet's run. Uses port 7450 and /tmp/noisyab.
set -u
PGP=$1; ROUNDS=$2; shift 2
J=${J:-1}; T=${T:-10}; PGH=${PGHOST:-127.0.0.1}
D=/tmp/noisyab; mkdir -p $D; OUT=$D/results.txt; : > $OUT
for r in $(seq $ROUNDS); do
  for v in "$@"; do
    IFS='|' read -r name flags vbin <<<"$v"
    bin=${vbin:-${BELAY_BIN:-/tmp/belay.bin}}
    setsid $bin proxy --listen 127.0.0.1:7450 --server $PGH:$PGP --pool-size 20 --auth-type trust --log-level warn $flags > $D/$name.log 2>&1 &
    bp=$!
    sleep 1
    [[ -d /proc/$bp ]] || { echo "$name did not start:" >&2; cat $D/$name.log >&2; exit 1; }
    pgbench -h 127.0.0.1 -p 7450 -U noisy -S -M simple -c 100 -j $J -T $((T + 4)) pgbench > $D/noisy.out 2>&1 &
    np=$!
    sleep 1.5
    pgbench -h 127.0.0.1 -p 7450 -U quiet -S -M simple -c 4 -j 2 -T $T pgbench > $D/quiet.out 2>&1
    wait $np
    kill -INT $bp; wait $bp 2>/dev/null
    n=$(grep -oP 'tps = \K[0-9]+' $D/noisy.out); q=$(grep -oP 'tps = \K[0-9]+' $D/quiet.out)
    [[ -z $n || -z $q ]] && { echo "round=$r $name: pgbench failed" >&2; cat $D/noisy.out $D/quiet.out >&2; continue; }
    echo "round=$r $name noisy=$n quiet=$q total=$((n + q))" | tee -a $OUT
  done
done
echo "medians over $ROUNDS rounds (min-max):"
for v in "$@"; do
  name=${v%%|*}
  printf '  %-12s' $name
  for k in noisy quiet total; do
    vals=$(grep " $name " $OUT | grep -oP " $k=\K[0-9]+" | sort -g)
    printf ' %s=%s' $k "$(awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%g(%g-%g)", m, a[1], a[NR]}' <<<"$vals")"
  done
  echo
done
