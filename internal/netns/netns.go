package netns

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	// nsPrefix starts the names of the namespaces a Net makes:
	// belay-PID-K-NODE.
	nsPrefix = "belay-"
	// linkPrefix starts the names of its links: blyPIDxK (PID in base
	// 36), then br for the bridge, hI for node I's veth on the bridge's
	// side and nI for the one moved into its namespace.
	linkPrefix = "bly"
	// The nodes' subnets are 10.231.S.0/24, S from 1 to 254.
	subnetA, subnetB = 10, 231
	// firstHost is the last byte of the first node's address.
	firstHost = 10
	// maxNodes keeps the link names within 15 bytes and the addresses
	// within the /24.
	maxNodes = 36
)

// seq counts the Nets this process made (K in the names).
var seq atomic.Int64

// Net is a bridge in this process's namespace and nodes linked to it, each
// in a namespace of its own. Safe for concurrent use.
type Net struct {
	// ID is blyPIDxK, the start of its links' names.
	ID string
	// Subnet is its /24; Gateway, the first address, is this process's
	// address on it (the bridge's).
	Subnet  netip.Prefix
	Gateway netip.Addr
	bridge  string
	nsBase  string // belay-PID-K-

	mu     sync.Mutex // guards the fields below
	nodes  []*Node
	closed bool
}

// Node is one namespace of a Net and its link.
type Node struct {
	Name string     // the caller's (pg0, ...)
	NS   string     // the namespace's name (ip netns)
	Path string     // its file, /run/netns/NS: what setns opens
	Addr netip.Addr // its address on the Net's subnet
	// Host is its veth on the bridge's side (Partition takes it down);
	// inner the other end, in the namespace.
	Host  string
	inner string
}

// Available says whether this process can make network namespaces and
// links: nil, or why not (not root, no ip command, or the kernel refused a
// namespace made and removed to find out).
func Available() error {
	if runtime.GOOS != "linux" {
		return errors.New("netns: network namespaces are Linux only")
	}
	if os.Geteuid() != 0 {
		return errors.New("netns: network namespaces and links need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netns: iproute2's ip is needed: %w", err)
	}
	probe := fmt.Sprintf("%s%d-probe", nsPrefix, os.Getpid())
	if err := ip("netns", "add", probe); err != nil {
		return fmt.Errorf("netns: cannot make a network namespace: %w", err)
	}
	if err := ip("netns", "del", probe); err != nil {
		return fmt.Errorf("netns: cannot remove the network namespace %s it made: %w", probe, err)
	}
	return nil
}

// New makes a Net: a bridge with the first address of a /24 of
// 10.231.0.0/16 that no interface here uses yet. Sweep first to reuse what
// dead processes left.
func New() (*Net, error) {
	unlock, err := lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	used, err := usedSubnets()
	if err != nil {
		return nil, err
	}
	s := 0
	for i := 1; i < 255; i++ {
		if !used[i] {
			s = i
			break
		}
	}
	if s == 0 {
		return nil, fmt.Errorf("netns: every /24 of %d.%d.0.0/16 is in use here", subnetA, subnetB)
	}
	k := seq.Add(1)
	n := &Net{
		ID:      linkPrefix + strconv.FormatInt(int64(os.Getpid()), 36) + "x" + strconv.FormatInt(k, 36),
		Subnet:  netip.PrefixFrom(netip.AddrFrom4([4]byte{subnetA, subnetB, byte(s), 0}), 24),
		Gateway: netip.AddrFrom4([4]byte{subnetA, subnetB, byte(s), 1}),
		nsBase:  fmt.Sprintf("%s%d-%d-", nsPrefix, os.Getpid(), k),
	}
	n.bridge = n.ID + "br"
	if len(n.bridge) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("netns: link name %s too long", n.bridge)
	}
	err = run(
		[]string{"link", "add", n.bridge, "type", "bridge"},
		[]string{"addr", "add", n.Gateway.String() + "/24", "dev", n.bridge},
		[]string{"link", "set", n.bridge, "up"},
	)
	if err != nil {
		_ = ip("link", "del", n.bridge)
		return nil, err
	}
	return n, nil
}

// Add makes the node name: a namespace with its loopback up and a veth
// pair, one end on the bridge, the other in the namespace with the next
// address of the subnet. A name already added returns its node.
func (n *Net) Add(name string) (*Node, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("netns: the net is closed")
	}
	for _, nd := range n.nodes {
		if nd.Name == name {
			return nd, nil
		}
	}
	i := len(n.nodes)
	if i >= maxNodes {
		return nil, fmt.Errorf("netns: at most %d nodes", maxNodes)
	}
	if strings.ContainsAny(name, "/ \t\n") || name == "" {
		return nil, fmt.Errorf("netns: node name %q", name)
	}
	b := n.Subnet.Addr().As4()
	b[3] = byte(firstHost + i)
	nd := &Node{
		Name:  name,
		NS:    n.nsBase + name,
		Addr:  netip.AddrFrom4(b),
		Host:  n.ID + "h" + strconv.FormatInt(int64(i), 36),
		inner: n.ID + "n" + strconv.FormatInt(int64(i), 36),
	}
	nd.Path = filepath.Join("/run/netns", nd.NS)
	err := run(
		[]string{"netns", "add", nd.NS},
		[]string{"link", "add", nd.Host, "type", "veth", "peer", "name", nd.inner},
		[]string{"link", "set", nd.inner, "netns", nd.NS},
		[]string{"link", "set", nd.Host, "master", n.bridge},
		[]string{"link", "set", nd.Host, "up"},
		[]string{"-n", nd.NS, "link", "set", "lo", "up"},
		[]string{"-n", nd.NS, "addr", "add", nd.Addr.String() + "/24", "dev", nd.inner},
		[]string{"-n", nd.NS, "link", "set", nd.inner, "up"},
	)
	if err != nil {
		_ = ip("link", "del", nd.Host)
		_ = ip("netns", "del", nd.NS)
		return nil, err
	}
	n.nodes = append(n.nodes, nd)
	return nd, nil
}

// Node is the node added as name, or nil.
func (n *Net) Node(name string) *Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nd := range n.nodes {
		if nd.Name == name {
			return nd
		}
	}
	return nil
}

// HBA are the pg_hba.conf lines that let every address of the subnet in
// (trust: these are test clusters on a private bridge), replication
// included.
func (n *Net) HBA() []string {
	return []string{
		"host    all          all   " + n.Subnet.String() + "   trust",
		"host    replication  all   " + n.Subnet.String() + "   trust",
	}
}

// Partition cuts node name off: its link is taken down on the bridge's
// side, so that nothing it sends arrives and nothing reaches it, with no
// error on either side.
func (n *Net) Partition(name string) error { return n.setLink(name, "down") }

// Heal brings node name's link back up.
func (n *Net) Heal(name string) error { return n.setLink(name, "up") }

func (n *Net) setLink(name, state string) error {
	nd := n.Node(name)
	if nd == nil {
		return fmt.Errorf("netns: no node %s", name)
	}
	return ip("link", "set", nd.Host, state)
}

// Close removes the Net's veth pairs, namespaces and bridge. Processes
// still inside a namespace keep it alive, but without a link. Idempotent.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var errs []error
	for _, nd := range n.nodes {
		// Removing one end of a veth pair removes the other.
		if err := ip("link", "del", nd.Host); err != nil && linkExists(nd.Host) {
			errs = append(errs, err)
		}
		if err := ip("netns", "del", nd.NS); err != nil && nsExists(nd.NS) {
			errs = append(errs, err)
		}
	}
	if err := ip("link", "del", n.bridge); err != nil && linkExists(n.bridge) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Sweep removes the namespaces and links of this package's names whose
// process no longer runs.
func Sweep() error {
	var errs []error
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("netns: ip netns list: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(f[0], nsPrefix), "-")
		if pid, err := strconv.Atoi(pidStr); err == nil && !alive(pid) {
			if err := ip("netns", "del", f[0]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	links, err := linkNames()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	// The veths first (a bridge goes last).
	for _, bridges := range []bool{false, true} {
		for _, l := range links {
			if !strings.HasPrefix(l, linkPrefix) || strings.HasSuffix(l, "br") != bridges {
				continue
			}
			pid36, _, ok := strings.Cut(strings.TrimPrefix(l, linkPrefix), "x")
			pid, err := strconv.ParseInt(pid36, 36, 64)
			if !ok || err != nil || alive(int(pid)) {
				continue
			}
			if err := ip("link", "del", l); err != nil && linkExists(l) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// alive says whether process pid runs.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ip runs ip with args.
func ip(args ...string) error {
	cmd := exec.Command("ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("netns: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// run runs ip with each list of arguments in turn, up to the first error.
func run(cmds ...[]string) error {
	for _, args := range cmds {
		if err := ip(args...); err != nil {
			return err
		}
	}
	return nil
}

// linkNames are the names of this namespace's links.
func linkNames() ([]string, error) {
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("netns: ip link show: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		// "7: blyabcx1h0@if6: <BROADCAST,..."
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		name, _, _ = strings.Cut(name, "@")
		names = append(names, name)
	}
	return names, nil
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// usedSubnets are the third bytes S of the 10.231.S.x addresses of this
// namespace's interfaces.
func usedSubnets() (map[int]bool, error) {
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("netns: ip addr show: %w", err)
	}
	used := map[int]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "inet" {
				continue
			}
			p, err := netip.ParsePrefix(f[i+1])
			if err != nil || !p.Addr().Is4() {
				continue
			}
			if b := p.Addr().As4(); b[0] == subnetA && b[1] == subnetB {
				used[int(b[2])] = true
			}
		}
	}
	return used, nil
}

// lock takes the file lock under which New picks a subnet.
func lock() (unlock func(), err error) {
	dir := "/run/lock"
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = os.TempDir()
	}
	f, err := os.OpenFile(filepath.Join(dir, "belay-netns.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("netns: locking %s: %w", f.Name(), err)
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
