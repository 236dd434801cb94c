package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Gateways. Every `belay gateway` of a cluster registers under a peer id
// of its own (GatewayKey), taken in etcd, which it puts in the cancel keys
// it gives its clients; a gateway that receives a CancelRequest for a key
// another issued forwards it to that one's address (loop's peers), so a
// cancel works whichever gateway a load balancer sends it to.

// GatewayKey is the etcd key of the gateway with peer id id in cluster.
func GatewayKey(cluster string, id int) string {
	return Prefix(cluster) + "gateways/" + strconv.Itoa(id)
}

// GatewayRecord is the value of /belay/C/gateways/ID, written under a
// lease by the gateway.
type GatewayRecord struct {
	Addr string `json:"addr"` // where other gateways forward cancel requests
}

// MaxPeerID is the largest peer id: a cancel key's secret carries it in
// its top 16 bits, sign bit clear.
const MaxPeerID = 32767

// RegisterGateway takes the lowest free peer id in the cluster and
// registers rec under it, kept as RegisterPooler keeps a pooler's (a lease
// of ttl seconds; stop deletes it).
func (s *Store) RegisterGateway(ctx context.Context, rec GatewayRecord, ttl int, logger *slog.Logger) (id int, stop func(), err error) {
	if rec.Addr == "" {
		return 0, nil, errors.New("ha: a gateway needs an address")
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return 0, nil, err
	}
	taken, err := s.gatewayIDs(ctx)
	if err != nil {
		return 0, nil, err
	}
	for id = 1; id <= MaxPeerID; id++ {
		if taken[id] {
			continue
		}
		stop, err = s.keep(ctx, GatewayKey(s.cluster, id), v, ttl, true, logger)
		if errors.Is(err, errTaken) {
			continue // another gateway took it since
		}
		if err != nil {
			return 0, nil, fmt.Errorf("ha: registering a gateway: %w", err)
		}
		return id, stop, nil
	}
	return 0, nil, fmt.Errorf("ha: cluster %s has %d gateways: no peer id left", s.cluster, MaxPeerID)
}

// gatewayIDs are the peer ids registered now.
func (s *Store) gatewayIDs(ctx context.Context) (map[int]bool, error) {
	m, _, err := s.gateways(ctx)
	if err != nil {
		return nil, err
	}
	ids := make(map[int]bool, len(m))
	for id := range m {
		ids[id] = true
	}
	return ids, nil
}

// gateways reads the registered gateways' addresses by peer id, and the
// revision read.
func (s *Store) gateways(ctx context.Context) (map[int]string, int64, error) {
	prefix := Prefix(s.cluster) + "gateways/"
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	m := make(map[int]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		putGateway(m, prefix, kv.Key, kv.Value)
	}
	return m, resp.Header.Revision, nil
}

// putGateway notes the registration key = value in m (ignored if it does
// not decode).
func putGateway(m map[int]string, prefix string, key, value []byte) {
	id, err := strconv.Atoi(strings.TrimPrefix(string(key), prefix))
	var r GatewayRecord
	if err == nil && json.Unmarshal(value, &r) == nil && r.Addr != "" {
		m[id] = r.Addr
	}
}

// GatewayPeers follows the cluster's registered gateways (Addr). Safe for
// concurrent use.
type GatewayPeers struct {
	cur    atomic.Pointer[map[int]string]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// WatchGateways reads the registered gateways and follows their changes
// until Stop.
func (s *Store) WatchGateways(ctx context.Context, logger *slog.Logger) (*GatewayPeers, error) {
	m, rev, err := s.gateways(ctx)
	if err != nil {
		return nil, err
	}
	g := &GatewayPeers{}
	g.cur.Store(&m)
	wctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		prefix := Prefix(s.cluster) + "gateways/"
		for wctx.Err() == nil {
			for resp := range s.cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
				if resp.Err() != nil {
					break
				}
				next := make(map[int]string)
				for k, v := range *g.cur.Load() {
					next[k] = v
				}
				for _, ev := range resp.Events {
					if ev.Type == clientv3.EventTypeDelete {
						if id, err := strconv.Atoi(strings.TrimPrefix(string(ev.Kv.Key), prefix)); err == nil {
							delete(next, id)
						}
						continue
					}
					putGateway(next, prefix, ev.Kv.Key, ev.Kv.Value)
				}
				g.cur.Store(&next)
				rev = resp.Header.Revision
			}
			if wctx.Err() != nil {
				return
			}
			// The watch broke (compaction, no leader): read anew.
			if m, r, err := s.gateways(wctx); err == nil {
				g.cur.Store(&m)
				rev = r
			} else {
				logger.Warn("reading the gateways", "err", err)
			}
			select {
			case <-wctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return g, nil
}

// Addr is the address of the gateway with peer id id.
func (g *GatewayPeers) Addr(id int) (string, bool) {
	a, ok := (*g.cur.Load())[id]
	return a, ok
}

// Stop ends the watch and waits for it.
func (g *GatewayPeers) Stop() { g.cancel(); g.wg.Wait() }
