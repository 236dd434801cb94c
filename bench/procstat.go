package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicks = 100

// ProcStat is what the harness reads of a process in /proc.
type ProcStat struct {
	UTimeTicks, STimeTicks uint64 // user and system CPU time, in clock ticks
	// CUTimeTicks and CSTimeTicks are those of its children it has waited
	// for (0 when the line stops before them).
	CUTimeTicks, CSTimeTicks uint64
	PPid                     int // its parent
}

// CPUSeconds is utime+stime in seconds.
func (s ProcStat) CPUSeconds() float64 {
	return float64(s.UTimeTicks+s.STimeTicks) / clockTicks
}

// ParseProcStat parses the contents of /proc/PID/stat. The command name (field
// 2) is in parentheses and may itself hold spaces and parentheses, so fields
// are counted from the last ')'.
func ParseProcStat(b []byte) (ProcStat, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ProcStat{}, fmt.Errorf("bench: /proc stat: no ')' in %q", trunc(s, 80))
	}
	f := strings.Fields(s[i+1:])
	// After the name: state(3) ppid(4) ... utime(14) stime(15): indexes 11, 12 here.
	if len(f) < 13 {
		return ProcStat{}, fmt.Errorf("bench: /proc stat: only %d fields after the name", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return ProcStat{}, fmt.Errorf("bench: /proc stat: bad utime/stime %q %q", f[11], f[12])
	}
	ps := ProcStat{UTimeTicks: u, STimeTicks: st}
	ps.PPid, _ = strconv.Atoi(f[1])
	if len(f) >= 15 { // cutime(16) cstime(17)
		ps.CUTimeTicks, _ = strconv.ParseUint(f[13], 10, 64)
		ps.CSTimeTicks, _ = strconv.ParseUint(f[14], 10, 64)
	}
	return ps, nil
}

// ParseStatm returns the resident set size in bytes from /proc/PID/statm
// (its second field, in pages).
func ParseStatm(b []byte, pageSize int) (int64, error) {
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("bench: /proc statm: %q", trunc(string(b), 80))
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bench: /proc statm: %w", err)
	}
	return pages * int64(pageSize), nil
}

// readProcStat reads /proc/PID/stat.
func readProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	return ParseProcStat(b)
}

// readRSS reads the resident set size of pid, in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, err
	}
	return ParseStatm(b, os.Getpagesize())
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
