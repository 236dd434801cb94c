#!/bin/bash
# sidebyside.sh: PgBouncer (transaction pooling, pool 20) and variants of belay
# (builds, flags, environment) in front of one running Postgres, pgbench runs
# alternating round by round, with each proxy's CPU per 1,000 transactions from
# /proc, and medians over the rounds at the end. `belay bench` compares fixed
# targets; this is for A/B tests of belay itself, e.g. the event-loop default:
#
#   go build -o /tmp/belay.bin ./cmd/belay
#   T=8 ARGS="-S -M simple -c 100 -j 2" bench/sidebyside.sh PGPORT 3 \
#       "loops2|GOMAXPROCS=2|--event-loops 2" "loops1|GOMAXPROCS=2|--event-loops 1"
#
# Usage: sidebyside.sh PGPORT ROUNDS "name|ENV=VALUE ...|belay flags" ...
# BELAY_BIN (default /tmp/belay.bin) is the belay binary; a variant whose name
# contains "opt" runs BELAY_OPT_BIN instead, and a variant "name|ENV|flags|BIN"
# runs BIN. Run as root (PgBouncer runs as the postgres user); it uses ports
# 6434 and 7440 upwards and /tmp/pgb. PGHOST (default 127.0.0.1) is where the
# proxies find Postgres: a directory is its Unix socket.
#
# Placement (PLACEMENT): with the kernel's autogroup scheduling
# (/proc/sys/kernel/sched_autogroup_enabled = 1) every session gets a CPU
# share of its own, so where a proxy runs changes what it measures. Every
# proxy is started the same way:
#   own     (default) each proxy in a session of its own (setsid), as a daemon
#           runs (PgBouncer's -d does the same);
#   shared  every proxy in this script's session, which is pgbench's.
#
# PERF=1 counts each proxy's system calls during each run with perf stat
# (tracepoints; `apt-get install linux-perf`) and prints them per transaction:
# all syscalls, writes (write, writev, sendto, sendmsg), reads (read, readv,
# recvfrom, recvmsg), epoll_wait (and epoll_pwait), futex, nanosleep, signals
# handled (rt_sigreturn: for belay, mostly the Go runtime's preemption
# signals), context switches and CPU µs (perf's task-clock).
set -u
PGP=$1; ROUNDS=$2; shift 2
T=${T:-10}; ARGS=${ARGS:-"-S -M simple -c 100 -j 2"}
PLACEMENT=${PLACEMENT:-own}; PERF=${PERF:-0}; PGH=${PGHOST:-127.0.0.1}
case $PLACEMENT in
  own) detach=setsid ;;
  shared) detach= ;;
  *) echo "PLACEMENT must be own or shared" >&2; exit 2 ;;
esac
D=/tmp/pgb; mkdir -p $D; chown postgres $D
printf '"postgres" ""\n' > $D/userlist.txt
cat > $D/pgbouncer.ini <<I
[databases]
* = host=$PGH port=$PGP
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
# Not -d: PgBouncer stays this script's child (setpriv and setsid exec, so $!
# is PgBouncer), in the same placement as belay.
$detach setpriv --reuid=postgres --regid=postgres --init-groups pgbouncer $D/pgbouncer.ini > $D/pgbouncer.out 2>&1 &
NAMES=(pgbouncer); PORTS=(6434); PIDS=($!)
port=7440
for v in "$@"; do
  IFS='|' read -r name envs flags vbin <<<"$v"
  bin=${vbin:-${BELAY_BIN:-/tmp/belay.bin}}; [[ -z $vbin && $name == *opt* ]] && bin=${BELAY_OPT_BIN:-/tmp/belay.opt}
  server=$PGH:$PGP
  $detach env $envs $bin proxy --listen 127.0.0.1:$port --server $server --pool-size 20 --auth-type trust --log-level warn $flags > $D/$name.log 2>&1 &
  NAMES+=($name); PORTS+=($port); PIDS+=($!); port=$((port+1))
done
sleep 1
for i in ${!NAMES[@]}; do
  [[ -d /proc/${PIDS[$i]} ]] || { echo "${NAMES[$i]} did not start:" >&2; cat $D/${NAMES[$i]}.log $D/pgbouncer.out 2>/dev/null >&2; kill -INT ${PIDS[@]} 2>/dev/null; exit 1; }
done
echo "placement=$PLACEMENT autogroup=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null) args=\"$ARGS\" T=$T rounds=$ROUNDS server=$PGH:$PGP"
for i in ${!NAMES[@]}; do echo "  ${NAMES[$i]}: pid ${PIDS[$i]} session $(ps -o sess= -p ${PIDS[$i]}) (pgbench's: $(ps -o sess= -p $$))"; done
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
EV=raw_syscalls:sys_enter,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_read,syscalls:sys_enter_readv,syscalls:sys_enter_recvfrom,syscalls:sys_enter_recvmsg,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep,syscalls:sys_enter_rt_sigreturn,context-switches,task-clock
# perfrow FILE N: the per-transaction figures of a perf stat -x, output.
perfrow() {
  awk -F, -v n=$2 '
    { v[$3] = $1; if ($3 == "task-clock") cpu = $1 }
    END {
      w = v["syscalls:sys_enter_write"] + v["syscalls:sys_enter_writev"] + v["syscalls:sys_enter_sendto"] + v["syscalls:sys_enter_sendmsg"]
      r = v["syscalls:sys_enter_read"] + v["syscalls:sys_enter_readv"] + v["syscalls:sys_enter_recvfrom"] + v["syscalls:sys_enter_recvmsg"]
      e = v["syscalls:sys_enter_epoll_wait"] + v["syscalls:sys_enter_epoll_pwait"]
      printf "syscalls=%.2f write=%.2f read=%.2f epoll_wait=%.2f futex=%.2f nanosleep=%.3f signals=%.4f cs=%.2f cpu_us=%.1f", \
        v["raw_syscalls:sys_enter"]/n, w/n, r/n, e/n, v["syscalls:sys_enter_futex"]/n, v["syscalls:sys_enter_nanosleep"]/n, v["syscalls:sys_enter_rt_sigreturn"]/n, v["context-switches"]/n, cpu*1000/n
    }' $1
}
OUT=$D/results.txt; : > $OUT
for r in $(seq $ROUNDS); do
  for i in ${!NAMES[@]}; do
    pid=${PIDS[$i]}
    [[ $PERF == 1 ]] && { perf stat -x, -e $EV -p $pid -o $D/perf.out & perfpid=$!; sleep 0.2; }
    s1=$(ticks $pid)
    out=$(pgbench -h 127.0.0.1 -p ${PORTS[$i]} -U postgres $ARGS -T $T pgbench 2>&1)
    s2=$(ticks $pid)
    [[ $PERF == 1 ]] && { kill -INT $perfpid; wait $perfpid; }
    n=$(grep -oP 'actually processed: \K[0-9]+' <<<"$out")
    f=$(grep -oP 'failed transactions: \K[0-9]+' <<<"$out")
    tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$out")
    [[ -z $n || $n == 0 ]] && { echo "round=$r ${NAMES[$i]}: pgbench failed: $out" >&2; continue; }
    line="round=$r ${NAMES[$i]} tps=${tps%.*} failed=$f cpu_ms_per_1000=$(awk -v t=$((s2-s1)) -v n=$n 'BEGIN{printf "%.1f", t*10/n*1000}')"
    [[ $PERF == 1 ]] && line="$line $(perfrow $D/perf.out $n)"
    echo "$line" | tee -a $OUT
  done
done
# Medians over the rounds, and each one's tps over PgBouncer's.
echo "medians over $ROUNDS rounds (min-max):"
for name in ${NAMES[@]}; do
  printf '  %-12s' $name
  for k in tps cpu_ms_per_1000 syscalls write read epoll_wait futex nanosleep signals cs cpu_us; do
    vals=$(grep " $name " $OUT | grep -oP " $k=\K[0-9.]+" | sort -g)
    [[ -z $vals ]] && continue
    printf ' %s=%s' $k "$(awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%g(%g-%g)", m, a[1], a[NR]}' <<<"$vals")"
  done
  echo
done
pgb=$(grep " pgbouncer " $OUT | grep -oP ' tps=\K[0-9]+' | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
for name in ${NAMES[@]:1}; do
  m=$(grep " $name " $OUT | grep -oP ' tps=\K[0-9]+' | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
  awk -v a=$m -v b=$pgb -v n=$name 'BEGIN{ if (b > 0) printf "  %s tps / pgbouncer tps = %.3f\n", n, a/b }'
done
kill -INT ${PIDS[@]}; wait 2>/dev/null
