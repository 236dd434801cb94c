#!/bin/bash
# sidebyside.sh: PgBouncer (transaction pooling, pool 20) and variants of belay
# (builds, flags, environment) in front of one running Postgres, pgbench runs
# alternating round by round, with each proxy's CPU per 1,000 transactions from
# /proc. `belay bench` compares fixed targets; this is for A/B tests of belay
# itself, e.g. the event-loop default:
#
#   go build -o /tmp/belay.bin ./cmd/belay
#   T=8 ARGS="-S -M simple -c 100 -j 2" bench/sidebyside.sh PGPORT 3 \
#       "loops2|GOMAXPROCS=2|--event-loops 2" "loops1|GOMAXPROCS=2|--event-loops 1"
#
# Usage: sidebyside.sh PGPORT ROUNDS "name|ENV=VALUE ...|belay flags" ...
# BELAY_BIN (default /tmp/belay.bin) is the belay binary; a variant whose name
# contains "opt" runs BELAY_OPT_BIN instead. Run as root (PgBouncer runs as the
# postgres user); it uses ports 6434 and 7440 upwards and /tmp/pgb.
set -u
PGP=$1; ROUNDS=$2; shift 2
T=${T:-10}; ARGS=${ARGS:-"-S -M simple -c 100 -j 2"}
D=/tmp/pgb; mkdir -p $D; chown postgres $D
printf '"postgres" ""\n' > $D/userlist.txt
cat > $D/pgbouncer.ini <<I
[databases]
postgres = host=127.0.0.1 port=$PGP dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6434
unix_socket_dir =
auth_type = trust
auth_file = $D/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits
logfile = $D/pgbouncer.log
pidfile = $D/pgbouncer.pid
I
chown postgres $D/*
runuser -u postgres -- pgbouncer -d $D/pgbouncer.ini
sleep 0.5
NAMES=(pgbouncer); PORTS=(6434); PIDS=($(cat $D/pgbouncer.pid))
port=7440
for v in "$@"; do
  IFS='|' read -r name envs flags <<<"$v"
  bin=${BELAY_BIN:-/tmp/belay.bin}; [[ $name == *opt* ]] && bin=${BELAY_OPT_BIN:-/tmp/belay.opt}; env $envs $bin proxy --listen 127.0.0.1:$port --server 127.0.0.1:$PGP --pool-size 20 --log-level warn $flags > $D/$name.log 2>&1 &
  NAMES+=($name); PORTS+=($port); PIDS+=($!); port=$((port+1))
done
sleep 1
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
for r in $(seq $ROUNDS); do
  for i in ${!NAMES[@]}; do
    s1=$(ticks ${PIDS[$i]})
    out=$(pgbench -h 127.0.0.1 -p ${PORTS[$i]} -U postgres $ARGS -T $T postgres 2>&1)
    s2=$(ticks ${PIDS[$i]})
    n=$(grep -oP 'actually processed: \K[0-9]+' <<<"$out")
    f=$(grep -oP 'failed transactions: \K[0-9]+' <<<"$out")
    tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$out")
    echo "round=$r ${NAMES[$i]} tps=${tps%.*} failed=$f cpu_ms_per_1000=$(awk -v t=$((s2-s1)) -v n=$n 'BEGIN{printf "%.1f", t*10/n*1000}')"
  done
done
kill -INT ${PIDS[@]}; wait 2>/dev/null
