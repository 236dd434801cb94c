package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// cgroupVersion is which cgroup interface limits CPU here.
type cgroupVersion int

const (
	cgroupNone cgroupVersion = iota
	cgroupV1                 // the cpu controller's own hierarchy: cpu.cfs_quota_us, cpu.cfs_period_us
	cgroupV2                 // the unified hierarchy: cpu.max
)

func (v cgroupVersion) String() string {
	switch v {
	case cgroupV1:
		return "cgroup v1"
	case cgroupV2:
		return "cgroup v2"
	}
	return "none"
}

// cpuHierarchy is where CPU limits can be set: the version and the mount
// point of the hierarchy that has the cpu controller.
type cpuHierarchy struct {
	Version cgroupVersion
	Mount   string
}

// findCPUHierarchy reads /proc/self/mountinfo (its text) for the hierarchy
// with the cpu controller: cgroup v2 when the unified hierarchy has it (its
// cgroup.controllers, read through controllers, lists cpu), else a cgroup
// v1 mount with the cpu option. why says what is missing when there is none.
func findCPUHierarchy(mountinfo string, controllers func(mount string) (string, error)) (h cpuHierarchy, why string) {
	var v1, v2 []string
	for _, line := range strings.Split(mountinfo, "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 {
			continue
		}
		mount := unescapeMount(f[4])
		switch g[0] {
		case "cgroup2":
			v2 = append(v2, mount)
		case "cgroup":
			if len(g) >= 3 && hasOption(g[2], "cpu") {
				v1 = append(v1, mount)
			}
		}
	}
	for _, m := range v2 {
		if c, err := controllers(m); err == nil && hasWord(c, "cpu") {
			return cpuHierarchy{cgroupV2, m}, ""
		}
	}
	if len(v1) > 0 {
		return cpuHierarchy{cgroupV1, v1[0]}, ""
	}
	if len(v2) > 0 {
		return cpuHierarchy{}, fmt.Sprintf("cgroup v2 is mounted at %s but its cgroup.controllers lacks cpu, and no cgroup v1 hierarchy has the cpu controller", strings.Join(v2, ", "))
	}
	return cpuHierarchy{}, "no cgroup file system is mounted (neither cgroup v2 nor cgroup v1's cpu controller)"
}

// hasOption reports whether the comma-separated options opts include o.
func hasOption(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

func hasWord(s, w string) bool {
	for _, x := range strings.Fields(s) {
		if x == w {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cpuPeriodUs is the CFS period of the node cgroups: the kernel's default.
const cpuPeriodUs = 100_000

// cpuQuotaUs is the CFS quota that gives cores of CPU time per period of
// periodUs microseconds: 0.4 core of a 100 ms period is 40,000 µs. The
// kernel takes at least 1,000 µs.
func cpuQuotaUs(cores float64, periodUs int64) (int64, error) {
	if cores <= 0 || math.IsNaN(cores) || math.IsInf(cores, 0) {
		return 0, fmt.Errorf("bench: a CPU limit of %g cores: want more than 0", cores)
	}
	q := int64(math.Round(cores * float64(periodUs)))
	if q < 1000 {
		return 0, fmt.Errorf("bench: a CPU limit of %g cores is %d µs per %d µs period: the kernel wants at least 1000 µs", cores, q, periodUs)
	}
	return q, nil
}

// cgroupSetting is one file of a cgroup and the value written to it.
type cgroupSetting struct{ File, Value string }

// cpuLimitSettings are the files that limit a cgroup to quotaUs per
// periodUs, in the order they are written; quotaUs < 0 means no limit.
// v1: cpu.cfs_period_us then cpu.cfs_quota_us ("-1" for none); v2:
// cpu.max, "QUOTA PERIOD" ("max PERIOD" for none).
func cpuLimitSettings(v cgroupVersion, quotaUs, periodUs int64) []cgroupSetting {
	q := strconv.FormatInt(quotaUs, 10)
	if v == cgroupV2 {
		if quotaUs < 0 {
			q = "max"
		}
		return []cgroupSetting{{"cpu.max", q + " " + strconv.FormatInt(periodUs, 10)}}
	}
	if quotaUs < 0 {
		q = "-1"
	}
	return []cgroupSetting{{"cpu.cfs_period_us", strconv.FormatInt(periodUs, 10)}, {"cpu.cfs_quota_us", q}}
}

// cgroupPrefix starts the name of the cgroup each bench run makes under
// the hierarchy's root: belay-bench-<PID>, and belay-bench-<PID>-<N> for
// the run's N-th set of node cgroups after the first.
const cgroupPrefix = "belay-bench-"

// cgroupSets counts the sets of node cgroups this process has made, so
// that each gets a base of its own: the read-scaling, sharded and
// quota-halved scenarios of one run each make one, and each removes its
// own when its environment is closed.
var cgroupSets atomic.Int32

// baseCgroupName is the name of this process's n-th (1-based) base cgroup.
func baseCgroupName(pid int, n int32) string {
	if n <= 1 {
		return fmt.Sprintf("%s%d", cgroupPrefix, pid)
	}
	return fmt.Sprintf("%s%d-%d", cgroupPrefix, pid, n)
}

// nodeCgroups are one cgroup per PostgreSQL node, children of one cgroup
// of this run (belay-bench-<PID>[-N], which has no limit of its own). Not
// safe for concurrent use.
type nodeCgroups struct {
	h     cpuHierarchy
	base  string            // the run's cgroup
	nodes map[string]string // node name → its cgroup directory
	names []string          // in the order made
}

// newNodeCgroups makes a cgroup for each node (with no limit yet) under
// a cgroup of this run, after removing those of earlier runs whose process
// is gone. The error says why CPU limits cannot be had here.
func newNodeCgroups(names []string) (*nodeCgroups, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("bench: reading /proc/self/mountinfo: %w", err)
	}
	h, why := findCPUHierarchy(string(mi), func(m string) (string, error) {
		b, err := os.ReadFile(filepath.Join(m, "cgroup.controllers"))
		return string(b), err
	})
	if h.Version == cgroupNone {
		return nil, errors.New("bench: no CPU limits here: " + why)
	}
	removeStaleCgroups(h.Mount)
	c := &nodeCgroups{h: h, base: filepath.Join(h.Mount, baseCgroupName(os.Getpid(), cgroupSets.Add(1))), nodes: map[string]string{}}
	if err := os.Mkdir(c.base, 0o755); err != nil {
		return nil, fmt.Errorf("bench: making cgroup %s (%s): %w", c.base, h.Version, err)
	}
	if err := os.WriteFile(filepath.Join(c.base, weightFile(h.Version)), []byte(baseWeight(h.Version)), 0o644); err != nil {
		c.remove()
		return nil, fmt.Errorf("bench: weighting cgroup %s: %w", c.base, err)
	}
	if h.Version == cgroupV2 {
		// Children get the cpu controller only where their parents hand it down.
		for _, d := range []string{h.Mount, c.base} {
			if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
				c.remove()
				return nil, fmt.Errorf("bench: enabling the cpu controller below %s (cgroup v2): %w", d, err)
			}
		}
	}
	for _, n := range names {
		d := filepath.Join(c.base, n)
		if err := os.Mkdir(d, 0o755); err != nil {
			c.remove()
			return nil, fmt.Errorf("bench: making cgroup %s: %w", d, err)
		}
		c.nodes[n], c.names = d, append(c.names, n)
		if err := c.limit(n, -1); err != nil {
			c.remove()
			return nil, err
		}
	}
	return c, nil
}

// The run's cgroup holds every node, and competes for the CPU as one
// entity beside each process outside it (pgbench's threads, the proxies,
// whatever else runs here): with the default weight, the nodes together
// would get as much CPU as any one of those processes when the machine is
// busy, far less than their quotas. Its weight is the largest the kernel
// takes (cgroup v1 cpu.shares 262144, v2 cpu.weight 10000): the nodes get
// their quotas first and never more, which is what a machine of their own
// would give them.
func weightFile(v cgroupVersion) string {
	if v == cgroupV2 {
		return "cpu.weight"
	}
	return "cpu.shares"
}

func baseWeight(v cgroupVersion) string {
	if v == cgroupV2 {
		return "10000"
	}
	return "262144"
}

// dir is node's cgroup directory.
func (c *nodeCgroups) dir(node string) string { return c.nodes[node] }

// limit sets node's CPU quota: quotaUs per cpuPeriodUs, or none for < 0.
func (c *nodeCgroups) limit(node string, quotaUs int64) error {
	return c.limitPeriod(node, quotaUs, cpuPeriodUs)
}

// limitPeriod sets node's CPU quota: quotaUs per periodUs, or none for < 0.
func (c *nodeCgroups) limitPeriod(node string, quotaUs, periodUs int64) error {
	for _, s := range cpuLimitSettings(c.h.Version, quotaUs, periodUs) {
		p := filepath.Join(c.nodes[node], s.File)
		if err := os.WriteFile(p, []byte(s.Value), 0o644); err != nil {
			return fmt.Errorf("bench: writing %q to %s: %w", s.Value, p, err)
		}
	}
	return nil
}

// cpuStat is what a node's cgroup says of its CPU: the CFS periods in which
// it could run, and in how many it was throttled (used up its quota).
type cpuStat struct {
	Periods, Throttled int64
	// UsageUs is the CPU time its processes used (cgroup v2's usage_usec;
	// v1's cpu controller does not count it: HasUsage is false).
	UsageUs  int64
	HasUsage bool
}

// stat reads node's cpu.stat (nr_periods and nr_throttled, the same names
// in v1 and v2; usage_usec in v2).
func (c *nodeCgroups) stat(node string) (cpuStat, error) {
	b, err := os.ReadFile(filepath.Join(c.nodes[node], "cpu.stat"))
	if err != nil {
		return cpuStat{}, err
	}
	return parseCPUStat(string(b)), nil
}

// parseCPUStat reads nr_periods, nr_throttled and usage_usec of a cpu.stat file.
func parseCPUStat(s string) cpuStat {
	var st cpuStat
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "nr_periods":
			st.Periods = n
		case "nr_throttled":
			st.Throttled = n
		case "usage_usec":
			st.UsageUs, st.HasUsage = n, true
		}
	}
	return st
}

// remove removes the node cgroups and the run's, once the processes in
// them are gone (it waits up to 10 s for those of a node just stopped);
// processes still there then are moved to the hierarchy's root first.
func (c *nodeCgroups) remove() error {
	var errs []error
	for i := len(c.names) - 1; i >= 0; i-- {
		errs = append(errs, removeCgroup(c.nodes[c.names[i]], c.h.Mount))
	}
	errs = append(errs, removeCgroup(c.base, c.h.Mount))
	return errors.Join(errs...)
}

// removeCgroup removes the cgroup dir (no children left), moving what
// still runs in it after a while to the cgroup at root.
func removeCgroup(dir, root string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			if moveAll(dir, root) == nil {
				if err = syscall.Rmdir(dir); err == nil {
					return nil
				}
			}
			return fmt.Errorf("bench: removing cgroup %s: %w", dir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// moveAll moves every process of cgroup dir to the cgroup at root.
func moveAll(dir, root string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return err
	}
	for _, pid := range strings.Fields(string(b)) {
		if err := os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(pid), 0o644); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
	}
	return nil
}

var staleCgroup = regexp.MustCompile(`^` + cgroupPrefix + `([0-9]+)(-[0-9]+)?$`)

// removeStaleCgroups removes the cgroups of earlier runs (belay-bench-PID
// and belay-bench-PID-N under mount) whose process is gone, as a run
// killed before its cleanup leaves them.
func removeStaleCgroups(mount string) {
	ents, err := os.ReadDir(mount)
	if err != nil {
		return
	}
	for _, e := range ents {
		m := staleCgroup.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		base := filepath.Join(mount, e.Name())
		subs, _ := os.ReadDir(base)
		for _, s := range subs {
			if s.IsDir() {
				_ = syscall.Rmdir(filepath.Join(base, s.Name()))
			}
		}
		_ = syscall.Rmdir(base)
	}
}
