package etcdlocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Options describe the etcd Start brings up.
type Options struct {
	// Dir holds etcd's data, its ports and its log; created if missing.
	// Required. Data found there is reused.
	Dir string
	// NoFsync turns fsync off: for tests only, a crash loses data.
	NoFsync bool
	// LogLevel is etcd's log level (debug, info, warn, error); "" means info.
	LogLevel string
}

// Server is a running etcd started by Start.
type Server struct {
	Dir        string
	ClientPort int // on 127.0.0.1; clients connect here
	PeerPort   int // on 127.0.0.1; raft's port, unused by a single member but required
	LogPath    string

	e        *embed.Etcd
	stopOnce sync.Once
}

const maxPortAttempts = 5

// Start starts etcd in o.Dir on the ports it had the last time (o.Dir/ports)
// when they are free, else on free ones, which are kept for the next time.
// It returns once etcd serves clients; without a deadline on ctx it waits
// for at most a minute.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("etcdlocal: Options.Dir is required")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("etcdlocal: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	keptClient, keptPeer := readPorts(filepath.Join(dir, "ports"))
	var lastErr error
	for attempt := 1; attempt <= maxPortAttempts; attempt++ {
		cp, pp := keptClient, keptPeer
		if attempt > 1 || !portFree(cp) || !portFree(pp) || cp == pp {
			if cp, pp, err = freePorts(); err != nil {
				return nil, err
			}
		}
		s, err := start(ctx, dir, o, cp, pp)
		if err == nil {
			if cp != keptClient || pp != keptPeer {
				if err := os.WriteFile(filepath.Join(dir, "ports"), fmt.Appendf(nil, "%d %d\n", cp, pp), 0o644); err != nil {
					s.Stop()
					return nil, fmt.Errorf("etcdlocal: keeping the ports: %w", err)
				}
			}
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, syscall.EADDRINUSE) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, dir string, o Options, clientPort, peerPort int) (*Server, error) {
	s := &Server{Dir: dir, ClientPort: clientPort, PeerPort: peerPort, LogPath: filepath.Join(dir, "etcd.log")}
	cfg := embed.NewConfig()
	cfg.Name = "belay"
	cfg.Dir = filepath.Join(dir, "data")
	curl := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
	purl := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{curl}, []url.URL{curl}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{purl}, []url.URL{purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = o.NoFsync
	cfg.LogOutputs = []string{s.LogPath}
	cfg.LogLevel = o.LogLevel
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	cfg.EnableGRPCGateway = false
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcdlocal: starting etcd in %s: %w", dir, err)
	}
	s.e = e
	select {
	case <-e.Server.ReadyNotify():
		return s, nil
	case err := <-e.Err():
		s.Stop()
		return nil, fmt.Errorf("etcdlocal: etcd in %s failed while starting: %w (log: %s)", dir, err, s.LogPath)
	case <-ctx.Done():
		s.Stop()
		return nil, fmt.Errorf("etcdlocal: etcd in %s not ready: %w (log: %s)", dir, ctx.Err(), s.LogPath)
	}
}

// Endpoint is the client URL, "http://127.0.0.1:PORT".
func (s *Server) Endpoint() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.ClientPort))
}

// Client returns a new client of this server, which the caller closes.
func (s *Server) Client() (*clientv3.Client, error) {
	return NewClient([]string{s.Endpoint()})
}

// NewClient returns a client of the etcd at endpoints (URLs or host:port),
// with the timeouts belay uses on loopback; the caller closes it.
func NewClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(), // the client's retries are not news
	})
}

// Err receives etcd's fatal errors while it runs.
func (s *Server) Err() <-chan error { return s.e.Err() }

// Stop stops etcd and waits for it. Idempotent.
func (s *Server) Stop() {
	s.stopOnce.Do(func() { s.e.Close() })
}

func readPorts(path string) (client, peer int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	client, _ = strconv.Atoi(f[0])
	peer, _ = strconv.Atoi(f[1])
	return client, peer
}

// freePorts picks two distinct free ports on 127.0.0.1.
func freePorts() (int, int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("etcdlocal: finding a free port: %w", err)
		}
		ls = append(ls, l)
	}
	return ls[0].Addr().(*net.TCPAddr).Port, ls[1].Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) bool {
	if port <= 0 {
		return false
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
