package flamegraphs

import (
	"sort"
	"strings"
)

// Share is a part of the total: a function, a category, a system call.
type Share struct {
	Name  string
	Value int64
	Frac  float64 // of the profile's total
}

// Summary says where the time of a profile goes.
type Summary struct {
	Total int64
	// Categories by the leaf frame (self time): belay, gnet, system calls,
	// Go runtime (split into GC/allocation and the rest), other.
	Categories []Share
	// Syscalls: self time in system calls by the outermost system-call
	// wrapper (e.g. golang.org/x/sys/unix.Write).
	Syscalls []Share
	// TopFlat: functions by self time.
	TopFlat []Share
	// TopCumBelay: belay's and gnet's functions by cumulative time (self +
	// callees; each stack counted once per function).
	TopCumBelay []Share
}

// isGC reports whether a stack is garbage collection or allocation work.
func isGC(frames []string) bool {
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f, "runtime.gcBgMarkWorker"), strings.HasPrefix(f, "runtime.gcDrain"),
			strings.HasPrefix(f, "runtime.mallocgc"), strings.HasPrefix(f, "runtime.gcAssist"),
			strings.HasPrefix(f, "runtime.bgsweep"), strings.HasPrefix(f, "runtime.bgscavenge"),
			strings.HasPrefix(f, "runtime.markroot"), strings.HasPrefix(f, "runtime.scanobject"):
			return true
		}
	}
	return false
}

// Summarize computes a Summary; n bounds the lists of functions.
func Summarize(stacks []Stack, n int) Summary {
	var s Summary
	cats := map[string]int64{}
	sys := map[string]int64{}
	flat := map[string]int64{}
	cum := map[string]int64{}
	for _, st := range stacks {
		s.Total += st.Value
		if len(st.Frames) == 0 {
			continue
		}
		leaf := st.Frames[len(st.Frames)-1]
		flat[leaf] += st.Value
		c := classify(leaf)
		name := c.String()
		if c == catRuntime {
			if isGC(st.Frames) {
				name = "Go runtime: GC and allocation"
			} else {
				name = "Go runtime: scheduler, timers, other"
			}
		}
		cats[name] += st.Value
		if c == catSyscall {
			// the outermost frame of the run of syscall wrappers at the leaf
			i := len(st.Frames) - 1
			for i > 0 && IsSyscall(st.Frames[i-1]) {
				i--
			}
			sys[st.Frames[i]] += st.Value
		}
		seen := map[string]bool{}
		for _, f := range st.Frames {
			if seen[f] {
				continue
			}
			seen[f] = true
			if k := classify(f); k == catBelay || k == catGnet {
				cum[f] += st.Value
			}
		}
	}
	s.Categories = shares(cats, s.Total, 0)
	s.Syscalls = shares(sys, s.Total, n)
	s.TopFlat = shares(flat, s.Total, n)
	s.TopCumBelay = shares(cum, s.Total, n)
	return s
}

func shares(m map[string]int64, total int64, n int) []Share {
	out := make([]Share, 0, len(m))
	for k, v := range m {
		f := 0.0
		if total > 0 {
			f = float64(v) / float64(total)
		}
		out = append(out, Share{Name: k, Value: v, Frac: f})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Value != out[j].Value {
			return out[i].Value > out[j].Value
		}
		return out[i].Name < out[j].Name
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}
