package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LogStats is what ParsePgbenchLog reads from pgbench's per-transaction logs (-l).
type LogStats struct {
	Latencies []float64 // µs, one per completed transaction, in file order
	Failed    int64     // lines whose time column is "failed"
	Skipped   int64     // lines whose time column is "skipped" (--latency-limit)
	// Ends are when the transactions of Latencies completed, µs since the
	// Unix epoch (pgbench's time_epoch and time_us), in the same order.
	Ends []int64
}

// ParsePgbenchLog reads one per-transaction log of pgbench and appends to st.
// A line is "client_id transaction_no time script_no time_epoch time_us
// [schedule_lag [retries]]"; time, the third column, is the latency in µs,
// or "failed" / "skipped"; time_epoch and time_us say when the transaction
// completed.
func ParsePgbenchLog(r io.Reader, st *LogStats) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 {
			continue
		}
		if len(f) < 6 {
			return fmt.Errorf("bench: pgbench log line %d: %d fields, want 6 or more: %q", line, len(f), trunc(sc.Text(), 80))
		}
		switch string(f[2]) {
		case "failed":
			st.Failed++
		case "skipped":
			st.Skipped++
		default:
			v, err := strconv.ParseFloat(string(f[2]), 64)
			if err != nil {
				return fmt.Errorf("bench: pgbench log line %d: latency %q: %w", line, f[2], err)
			}
			sec, err1 := strconv.ParseInt(string(f[4]), 10, 64)
			us, err2 := strconv.ParseInt(string(f[5]), 10, 64)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("bench: pgbench log line %d: time stamp %q %q", line, f[4], f[5])
			}
			st.Latencies = append(st.Latencies, v)
			st.Ends = append(st.Ends, sec*1_000_000+us)
		}
	}
	return sc.Err()
}

// Percentile returns the p-quantile (0 < p <= 1) of sorted values by the
// nearest-rank method; 0 for no values.
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	k := int(float64(n)*p+0.999999999) - 1 // ceil(n·p) - 1
	if k < 0 {
		k = 0
	}
	if k >= n {
		k = n - 1
	}
	return sorted[k]
}

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// PgbenchSummary is what ParsePgbenchOutput reads from pgbench's output.
type PgbenchSummary struct {
	TPS        float64  // "tps = X (...)"; 0 when absent
	Processed  int64    // "number of transactions actually processed: N"
	Failed     int64    // "number of failed transactions: N (x%)"
	Retried    int64    // "number of transactions retried: N (x%)" (--max-tries)
	Aborted    int      // "client N aborted ..." lines
	ConnFails  int      // connection failures reported
	Errors     []string // distinct error messages, client numbers removed, first few
	Incomplete bool     // "Run was aborted; the above results are incomplete."
}

var (
	reTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	reProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	reFailed    = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
	reRetried   = regexp.MustCompile(`(?m)^number of transactions retried: ([0-9]+)`)
	reClient    = regexp.MustCompile(`client [0-9]+ `)
)

const maxErrors = 4

// ParsePgbenchOutput parses pgbench's stdout and stderr (any order, either may
// be empty).
func ParsePgbenchOutput(stdout, stderr string) PgbenchSummary {
	var s PgbenchSummary
	all := stdout + "\n" + stderr
	if m := reTPS.FindStringSubmatch(all); m != nil {
		s.TPS, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reProcessed.FindStringSubmatch(all); m != nil {
		s.Processed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reFailed.FindStringSubmatch(all); m != nil {
		s.Failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reRetried.FindStringSubmatch(all); m != nil {
		s.Retried, _ = strconv.ParseInt(m[1], 10, 64)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(all, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		msg := ""
		switch {
		case strings.Contains(l, "Run was aborted"):
			s.Incomplete = true
			continue
		case strings.Contains(l, " aborted in command") || strings.Contains(l, " aborted while"):
			s.Aborted++
			msg = l
		case strings.Contains(l, "connection to server") || strings.Contains(l, "could not connect"):
			s.ConnFails++
			msg = l
		case strings.HasPrefix(l, "pgbench: error:") || strings.HasPrefix(l, "ERROR:") || strings.HasPrefix(l, "FATAL:"):
			msg = l
		default:
			continue
		}
		msg = strings.TrimPrefix(msg, "pgbench: error: ")
		msg = reClient.ReplaceAllString(msg, "client ")
		msg = strings.Join(strings.Fields(msg), " ")
		if !seen[msg] && len(s.Errors) < maxErrors {
			seen[msg] = true
			s.Errors = append(s.Errors, msg)
		}
	}
	return s
}

// pgbenchSpec is one timed pgbench run, possibly split over several processes.
type pgbenchSpec struct {
	Host      string
	Port      int
	DB, User  string
	Args      []string // workload flags: -S, -M mode, -C, ...
	Clients   int
	Jobs      int // threads per process
	Duration  time.Duration
	LogPrefix string // per-transaction logs go to LogPrefix.<n>.<pid>[.<thread>]
	// MaxClientsPerProc splits Clients over several pgbench processes.
	MaxClientsPerProc int
	// SSLMode is libpq's sslmode for pgbench ("disable" when empty).
	SSLMode string
	// Ports, when set, is pgbench's -p instead of Port: "P1,P2,P3" beside a
	// Host of as many hosts (libpq's multi-host form).
	Ports string
	// Spread, when set, spreads the clients over these ports of Host (a
	// pgbench process per port at least, turn by turn): clients of one
	// user over several gateways.
	Spread []int
	// Env is more of pgbench's environment (PGTARGETSESSIONATTRS=...).
	Env []string
	// OutFile, when set, receives each process's stdout and stderr.
	OutFile string
}

// pgbenchRun is the combined result of the processes of one pgbenchSpec.
type pgbenchRun struct {
	Summary PgbenchSummary // TPS summed, counts summed, errors merged
	Log     LogStats
	Wall    time.Duration
	Killed  bool // a process outlived its deadline and was killed
}

// runPgbench runs spec to completion (or its deadline) and parses output and
// logs. Runs of specs with different LogPrefixes may go on concurrently.
func runPgbench(ctx context.Context, pgbenchBin string, spec pgbenchSpec) (pgbenchRun, error) {
	var run pgbenchRun
	procs := 1
	if spec.MaxClientsPerProc > 0 && spec.Clients > spec.MaxClientsPerProc {
		procs = (spec.Clients + spec.MaxClientsPerProc - 1) / spec.MaxClientsPerProc
	}
	if n := len(spec.Spread); n > 0 {
		procs = (max(procs, n) + n - 1) / n * n // a multiple: each port gets as many processes
	}
	// Generous deadline: the run, connecting every client, and a stuck tail.
	deadline := spec.Duration + 15*time.Second + time.Duration(spec.Clients)*10*time.Millisecond
	rctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()

	type out struct {
		stdout, stderr string
		err            error
	}
	outs := make([]out, procs)
	var wg sync.WaitGroup
	start := time.Now()
	for p := 0; p < procs; p++ {
		clients := spec.Clients / procs
		if p < spec.Clients%procs {
			clients++
		}
		jobs := spec.Jobs
		if jobs < 1 {
			jobs = 1
		}
		if jobs > clients {
			jobs = clients
		}
		port := strconv.Itoa(spec.Port)
		if spec.Ports != "" {
			port = spec.Ports
		}
		if len(spec.Spread) > 0 {
			port = strconv.Itoa(spec.Spread[p%len(spec.Spread)])
		}
		args := []string{"-n", "-h", spec.Host, "-p", port, "-U", spec.User,
			"-c", strconv.Itoa(clients), "-j", strconv.Itoa(jobs),
			"-T", strconv.Itoa(int((spec.Duration + time.Second/2) / time.Second)),
		}
		if spec.LogPrefix != "" {
			args = append(args, "-l", "--log-prefix="+fmt.Sprintf("%s.%d", spec.LogPrefix, p))
		}
		args = append(args, spec.Args...)
		args = append(args, spec.DB)
		cmd := exec.CommandContext(rctx, pgbenchBin, args...)
		sslmode := spec.SSLMode
		if sslmode == "" {
			sslmode = "disable"
		}
		cmd.Env = append(append(clientEnv(), "PGCONNECT_TIMEOUT=30", "PGSSLMODE="+sslmode), spec.Env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		cmd.WaitDelay = 5 * time.Second
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Start(); err != nil {
			cancel()
			wg.Wait()
			return run, fmt.Errorf("bench: starting pgbench: %w", err)
		}
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			err := cmd.Wait()
			outs[p] = out{so.String(), se.String(), err}
		}(p)
	}
	wg.Wait()
	run.Wall = time.Since(start)
	if rctx.Err() != nil && ctx.Err() == nil {
		run.Killed = true
	}
	if ctx.Err() != nil {
		return run, ctx.Err()
	}
	if spec.OutFile != "" {
		var all strings.Builder
		for i, o := range outs {
			fmt.Fprintf(&all, "--- pgbench %d: %v\n%s\n--- stderr\n%s\n", i, o.err, o.stdout, o.stderr)
		}
		_ = os.WriteFile(spec.OutFile, []byte(all.String()), 0o644)
	}
	seen := map[string]bool{}
	for _, o := range outs {
		s := ParsePgbenchOutput(o.stdout, o.stderr)
		run.Summary.TPS += s.TPS
		run.Summary.Processed += s.Processed
		run.Summary.Failed += s.Failed
		run.Summary.Retried += s.Retried
		run.Summary.Aborted += s.Aborted
		run.Summary.ConnFails += s.ConnFails
		run.Summary.Incomplete = run.Summary.Incomplete || s.Incomplete
		for _, e := range s.Errors {
			if !seen[e] && len(run.Summary.Errors) < maxErrors {
				seen[e] = true
				run.Summary.Errors = append(run.Summary.Errors, e)
			}
		}
		var ee *exec.ExitError
		if o.err != nil && !errors.As(o.err, &ee) {
			return run, fmt.Errorf("bench: pgbench: %w", o.err)
		}
		if o.err != nil && s.TPS == 0 && len(s.Errors) == 0 {
			msg := "pgbench " + o.err.Error() + ": " + trunc(strings.TrimSpace(o.stderr), 300)
			if !seen[msg] && len(run.Summary.Errors) < maxErrors {
				seen[msg] = true
				run.Summary.Errors = append(run.Summary.Errors, msg)
			}
		}
	}
	if run.Killed {
		run.Summary.Errors = append([]string{fmt.Sprintf("pgbench hung: it had not finished %s after it started and was killed; its figures are lost",
			deadline.Round(time.Second))}, run.Summary.Errors...)
	}
	if spec.LogPrefix != "" {
		files, _ := filepath.Glob(spec.LogPrefix + ".*")
		sort.Strings(files)
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				return run, err
			}
			err = ParsePgbenchLog(fh, &run.Log)
			fh.Close()
			if err != nil {
				return run, fmt.Errorf("%s: %w", f, err)
			}
			_ = os.Remove(f)
		}
	}
	return run, nil
}

// clientEnv is this process's environment without libpq variables that
// would change where pgbench and psql connect.
func clientEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// scriptArgs are pgbench's flags to run the script at path at scale (its
// :scale, given with -D), then args.
func scriptArgs(path string, scale int, args ...string) []string {
	return append([]string{"-f", path, "-D", "scale=" + strconv.Itoa(scale)}, args...)
}
