package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/jackc/pgx/v5"
)

// The split shape of belay up (issue I): each tier a process of its own,
// started as its own command line, so that ps shows the architecture: a
// `belay pooler` beside each PostgreSQL node, `belay gateway`s in front
// (the first on --port), a `belay orch` when there are replicas or
// shards. belay up supervises them: one that dies is started again, as
// Kubernetes would.
// With --shards, the same over every shard: a pooler beside each node of
// each shard, gateways that route by key, one orchestrator for all shards
// (failovers, and the resolution of two-phase commits left in doubt).
// It also rewinds an old primary that runs beside a new one (the
// orchestrator it starts has no data directory to do it with).

// child is one process belay up runs and supervises.
type child struct {
	name string
	args []string
	addr string // where it listens ("": nowhere)
	log  string // its output, appended

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process exited
}

// split is the processes of belay up's split shape.
type split struct {
	bin      string
	logDir   string
	gateways []*child
	poolers  []*child
	orch     *child // nil without replicas or shards

	mu       sync.Mutex
	stopping bool
	wg       sync.WaitGroup // the supervisors
}

// start starts ch's process.
func (s *split) start(ch *child) error {
	f, err := os.OpenFile(ch.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, ch.args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Should belay up be killed (SIGKILL: no Ctrl-C to stop them), its
	// tiers die with it rather than run on as orphans.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("starting %s: %w", ch.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = f.Close(); close(done) }()
	ch.mu.Lock()
	ch.cmd, ch.done = cmd, done
	ch.mu.Unlock()
	return nil
}

// supervise starts ch again each time it dies, until stop.
func (s *split) supervise(ch *child) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		backoff := 200 * time.Millisecond
		for {
			ch.mu.Lock()
			done := ch.done
			ch.mu.Unlock()
			started := time.Now()
			<-done
			s.mu.Lock()
			stopping := s.stopping
			s.mu.Unlock()
			if stopping {
				return
			}
			if time.Since(started) > 10*time.Second {
				backoff = 200 * time.Millisecond
			}
			fmt.Fprintf(os.Stderr, "belay up: %s exited unexpectedly; starting it again in %v (log: %s)\n", ch.name, backoff, ch.log)
			time.Sleep(backoff)
			backoff = min(2*backoff, 5*time.Second)
			s.mu.Lock()
			stopping = s.stopping
			s.mu.Unlock()
			if stopping {
				return
			}
			if err := s.start(ch); err != nil {
				fmt.Fprintf(os.Stderr, "belay up: %v\n", err)
				return
			}
		}
	}()
}

// signal sends sig to ch's process, if it runs.
func (ch *child) signal(sig os.Signal) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.cmd != nil && ch.cmd.Process != nil {
		_ = ch.cmd.Process.Signal(sig)
	}
}

// exited is closed when ch's current process has exited (at once if none
// was started).
func (ch *child) exited() <-chan struct{} {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.done == nil {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return ch.done
}

// startSplit starts the poolers, the gateways and (with replicas) the
// orchestrator, and waits until the first gateway takes logins.
func (c *cluster) startSplit(ctx context.Context, port, gateways, poolSize int, logLevel string) error {
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	s := &split{bin: bin, logDir: filepath.Join(c.root, "log")}
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		return err
	}
	c.split = s
	cl := &c.info
	common := []string{"--etcd", strings.Join(cl.Endpoints, ","), "--cluster", cl.Name, "--log-level", logLevel}
	tier := []string{"--auth-type", "trust", "--admin-users", cl.Superuser, "--health-user", cl.Superuser,
		"--pool-size", strconv.Itoa(poolSize)}
	for _, n := range cl.Nodes {
		addr, err := freeAddr(0)
		if err != nil {
			return err
		}
		ch := &child{name: "the pooler of " + n.Name, addr: addr, log: filepath.Join(s.logDir, "pooler-"+n.Name+".log"),
			args: append(append([]string{"pooler", "--listen", addr, "--server", localServer(n), "--node", n.Name}, common...), tier...)}
		s.poolers = append(s.poolers, ch)
	}
	sockDir := upSocketDir(c.root)
	for i := range gateways {
		want := 0
		if i == 0 {
			want = port
		}
		addr, err := freeAddr(want)
		if err != nil {
			return err
		}
		args := append(append([]string{"gateway", "--listen", addr}, common...), tier...)
		if i == 0 && sockDir != "" {
			args = append(args, "--unix-socket-dir", sockDir)
		}
		s.gateways = append(s.gateways, &child{name: fmt.Sprintf("gateway %d", i+1), args: args, addr: addr,
			log: filepath.Join(s.logDir, fmt.Sprintf("gateway-%d.log", i+1))})
	}
	if c.replicas > 0 || cl.Shards > 1 { // failovers; with shards, two-phase commits to resolve
		s.orch = &child{name: "the orchestrator", log: filepath.Join(s.logDir, "orch.log"),
			args: append([]string{"orch", "--id", fmt.Sprintf("belay-up:%d", os.Getpid()), "--user", cl.Superuser,
				"--require-poolers"}, common...)}
	}
	fmt.Fprintf(os.Stderr, "belay up: starting %d poolers, %d gateways%s as processes of their own (logs in %s) ...\n",
		len(s.poolers), len(s.gateways), map[bool]string{true: " and the orchestrator", false: ""}[s.orch != nil], s.logDir)
	// Poolers first: the gateways find them registered.
	for _, ch := range s.poolers {
		if err := s.start(ch); err != nil {
			return err
		}
	}
	for _, ch := range s.poolers {
		if err := waitTier(ctx, ch); err != nil {
			return err
		}
	}
	for _, ch := range append(s.gateways, s.orch) {
		if ch == nil {
			continue
		}
		if err := s.start(ch); err != nil {
			return err
		}
	}
	for _, ch := range s.gateways {
		if err := waitTier(ctx, ch); err != nil {
			return err
		}
	}
	for _, ch := range append(append(s.poolers, s.gateways...), s.orch) {
		if ch != nil {
			s.supervise(ch)
		}
	}
	if s.orch != nil {
		c.stopOrch = func() { s.stopChildren([]*child{s.orch}, syscall.SIGTERM, 10*time.Second) }
	}
	return nil
}

// gatewayAddr is the first gateway's address.
func (s *split) gatewayAddr() string { return s.gateways[0].addr }

// waitTier waits (30 s at most) until ch's process accepts connections,
// or exits.
func waitTier(ctx context.Context, ch *child) error {
	addr := ch.addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ch.exited():
			return fmt.Errorf("%s exited at start; its log: %s", ch.name, ch.log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s after 30 s; its log: %s", ch.name, addr, ch.log)
		}
	}
}

// stopChildren sends each of list sig and waits, up to wait, for them to
// exit; those still running then are killed.
func (s *split) stopChildren(list []*child, sig os.Signal, wait time.Duration) {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	deadline := time.After(wait)
	for _, ch := range list {
		ch.signal(sig)
	}
	for _, ch := range list {
		select {
		case <-ch.exited():
		case <-deadline:
			ch.signal(syscall.SIGKILL)
			<-ch.exited()
		}
	}
}

// stopFront stops the gateways as belay proxy stops on SIGINT (each
// client closed once between transactions), all at once on another
// signal or after stopWait; then the orchestrator and the poolers.
func (c *cluster) stopFront(sig <-chan os.Signal, stopWait time.Duration, now bool) {
	s := c.split
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	first := os.Signal(syscall.SIGINT)
	if now {
		first = syscall.SIGKILL
	}
	for _, g := range s.gateways {
		g.signal(first)
	}
	t := time.NewTimer(stopWait)
	defer t.Stop()
	for _, g := range s.gateways {
		select {
		case <-g.exited():
			continue
		case <-sig:
		case <-t.C:
		}
		for _, g := range s.gateways {
			g.signal(syscall.SIGINT) // a second SIGINT closes every client now
		}
		s.stopChildren(s.gateways, syscall.SIGINT, 5*time.Second)
		break
	}
	if s.orch != nil {
		s.stopChildren([]*child{s.orch}, syscall.SIGTERM, 10*time.Second)
	}
	s.stopChildren(s.poolers, syscall.SIGINT, 5*time.Second)
	s.wg.Wait()
}

// rewindStale rewinds, as a replica of the primary the topology names,
// every node of belay up's that runs as a primary beside it (ha.MustFence,
// a sure verdict: a switchover away from a primary whose pooler died
// leaves one; a primary that died is rejoined by run), checking each
// second until ctx ends.
func (c *cluster) rewindStale(ctx context.Context) {
	st, done, err := c.store()
	if err != nil {
		fmt.Fprintf(os.Stderr, "belay up: %v: an old primary beside a new one is not rewound\n", err)
		return
	}
	defer done()
	dial := healthDial(c.info.Superuser, "postgres", "")
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		top, err := st.Load(ctx)
		if err != nil {
			continue
		}
		for _, n := range c.info.Nodes {
			if c.isRejoining(n.Name) {
				continue
			}
			inRecovery, tli, err := askRunning(ctx, dial, n.Addr)
			if err != nil {
				continue // down: run rejoins a primary that died
			}
			// Only a sure verdict: a node promoted by a failover not yet
			// published runs as a primary beside a named one too, and
			// pg_rewind needs the named primary anyway.
			if stale, sure, _ := staleVerdict(ctx, dial, top, n.Name, inRecovery, tli); stale && sure {
				primary := top.Shard(n.Shard).Primary
				if err := c.rejoin(ctx, n.Name, primary); err != nil && ctx.Err() == nil {
					fmt.Fprintf(os.Stderr, "belay up: %s did not rejoin: %v\n", n.Name, err)
				}
			}
		}
	}
}

// askRunning asks the node at addr whether it is in recovery and, if not,
// its timeline.
func askRunning(ctx context.Context, dial func(context.Context, string) (*pgx.Conn, error), addr string) (bool, uint32, error) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := dial(qctx, addr)
	if err != nil {
		return false, 0, err
	}
	defer conn.Close(context.Background())
	return ha.AskRunning(qctx, conn)
}

// staleVerdict is ha.MustFence's verdict on node, running as its answers
// say: when it runs as a primary beside the one top names, that primary is
// asked its timeline (0, and an unsure verdict, when it cannot be).
func staleVerdict(ctx context.Context, dial func(context.Context, string) (*pgx.Conn, error), top *ha.Topology,
	node string, inRecovery bool, tli uint32) (fence, sure bool, why string) {
	fence, _, why = ha.MustFence(top, node, inRecovery, tli, 0)
	if !fence {
		return false, false, ""
	}
	var ptli uint32
	if n := top.Node(top.Shard(top.Node(node).Shard).Primary); n != nil {
		if in, t, err := askRunning(ctx, dial, n.Addr); err == nil && !in {
			ptli = t
		}
	}
	return ha.MustFence(top, node, inRecovery, tli, ptli)
}

// freeAddr is 127.0.0.1:port if port is free, else a free port's address
// (port 0: any).
func freeAddr(port int) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if port == 0 {
			return "", err
		}
		fmt.Fprintf(os.Stderr, "belay up: port %d is busy (%v); using another\n", port, err)
		return freeAddr(0)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr, nil
}

// localServer is how node n's pooler reaches it: over its Unix socket,
// DIR/sock:PORT (no TCP stack between them: issue P), when the node has
// one; else at its address.
func localServer(n nodeInfo) string {
	_, port, err := net.SplitHostPort(n.Addr)
	if err != nil {
		return n.Addr
	}
	sock := filepath.Join(n.Dir, "sock")
	if _, err := os.Stat(filepath.Join(sock, ".s.PGSQL."+port)); err != nil {
		return n.Addr
	}
	return sock + ":" + port
}

// upSocketDir is root/sock, made, for the first gateway's Unix socket; ""
// when that path is too long for one.
func upSocketDir(root string) string {
	dir := filepath.Join(root, "sock")
	if len(dir)+len("/.s.PGSQL.65535") > 103 {
		fmt.Fprintf(os.Stderr, "belay up: %s is too long a path for a Unix socket; TCP only\n", dir)
		return ""
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	return dir
}
