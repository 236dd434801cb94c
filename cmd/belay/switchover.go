package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
)

// runSwitchover is `belay switchover`: it asks the leading orchestrator
// for a planned switchover and waits for its outcome.
func runSwitchover(args []string) error {
	fs := newFlagSet("belay switchover", "belay switchover --etcd ENDPOINTS [flags] [NODE]",
		"Switches a shard's primary over to NODE (default: the standby that replayed most), through the\n"+
			"leading orchestrator (belay orch, or belay up's): the proxies hold new work for the primary, the\n"+
			"transactions running on it finish (for --drain of the orchestrator, 2 s), the old primary is\n"+
			"fenced, NODE replays everything it has, is promoted and published; the held work goes to it.\n"+
			"Clients see a pause. The old primary rejoins as a standby where the orchestrator can rewind it\n"+
			"(belay up); elsewhere it stays fenced for an operator. Exits 1 if the switchover failed (the\n"+
			"old primary is then published again).")
	etcd := fs.String("etcd", "", "comma-separated etcd endpoints (required)")
	clusterName := fs.String("cluster", "local", "the cluster's name (its keys are under /belay/NAME/)")
	shard := fs.String("shard", "", "the shard (default: the cluster's only one)")
	wait := fs.Duration("timeout", time.Minute, "how long to wait for the outcome")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("unexpected arguments %q", fs.Args()[1:])
	}
	st, done, err := openStore(*etcd, *clusterName)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), *wait)
	defer cancel()
	outcome, err := switchover(ctx, st, *shard, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stdout, outcome)
	return nil
}

// switchover asks for a switchover of shard ("": the only one) to node
// ("": the orchestrator's choice) and waits for its outcome, told in a
// sentence; a switchover that failed is an error.
func switchover(ctx context.Context, st *ha.Store, shard, node string) (string, error) {
	shard, req, err := st.RequestSwitchover(ctx, shard, node)
	if err != nil {
		return "", err
	}
	leader, err := ha.Leader(ctx, st.Client(), st.Cluster())
	if err == nil && leader == "" {
		fmt.Fprintln(os.Stderr, "belay switchover: no orchestrator leads the cluster now: the request waits for one")
	}
	res, err := st.WaitSwitchover(ctx, shard, req.ID)
	if err != nil {
		return "", err
	}
	if res.State != ha.SwitchSucceeded {
		return "", fmt.Errorf("switchover of shard %s from %s to %s failed: %s", shard, orDash(res.From), orDash(res.To), res.Reason)
	}
	return fmt.Sprintf("switchover of shard %s: %s -> %s at term %d; the primary's work was held %v",
		shard, res.From, res.To, res.Term, time.Duration(res.HeldMs)*time.Millisecond), nil
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// openStore connects to the etcd endpoints (comma-separated; required)
// and returns the store of cluster there, and how to close it.
func openStore(etcd, cluster string) (*ha.Store, func(), error) {
	if etcd == "" {
		return nil, nil, errors.New("--etcd is required")
	}
	cli, err := etcdlocal.NewClient(splitList(etcd))
	if err != nil {
		return nil, nil, fmt.Errorf("etcd %s: %w", etcd, err)
	}
	st, err := ha.NewStore(cli, cluster)
	if err != nil {
		_ = cli.Close()
		return nil, nil, err
	}
	return st, func() { _ = cli.Close() }, nil
}
