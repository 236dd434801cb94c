package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
)

// runOrch is `belay orch`: an orchestrator of a cluster in etcd, until
// SIGINT or SIGTERM.
func runOrch(args []string) error {
	fs := newFlagSet("belay orch", "belay orch --etcd ENDPOINTS [flags]",
		"Runs a failover orchestrator of the cluster whose topology etcd holds. Several may run: one leads\n"+
			"(an etcd election), the others take over within the lease if it dies. The leader checks every\n"+
			"node, and when the primary stays unreachable with no standby still streaming from it, promotes\n"+
			"the standby that received the most WAL (after detaching the others from the old primary, with\n"+
			"synchronous replication set on it first), points the others at it and publishes it in etcd at\n"+
			"the next term. An old primary that comes back is logged: rewind it with pg_rewind (belay up does\n"+
			"that itself). It carries out planned switchovers (belay switchover, the console's SWITCHOVER).\n"+
			"It connects to the nodes as a superuser (--user, its password from --passfile).")
	etcd := fs.String("etcd", "", "comma-separated etcd endpoints (required)")
	clusterName := fs.String("cluster", "local", "the cluster's name (its keys are under /belay/NAME/)")
	user := fs.String("user", "postgres", "superuser the orchestrator connects to the nodes as")
	dbname := fs.String("dbname", "postgres", "database it connects to")
	passfile := fs.String("passfile", "", "a .pgpass file with the user's password")
	repl := fs.String("replication-conninfo", "user=postgres", "connection keys (user, password, sslmode) a standby is pointed at a new primary with when its own are not known; host, port and application_name are added")
	id := fs.String("id", "", "this orchestrator's name in the election (default: host:pid)")
	interval := fs.Duration("interval", 200*time.Millisecond, "how often the leader checks every node")
	timeout := fs.Duration("check-timeout", 400*time.Millisecond, "how long a node's check may take")
	deadAfter := fs.Duration("dead-after", 600*time.Millisecond, "how long the primary must stay unreachable, no standby streaming from it, before a failover")
	drain := fs.Duration("switchover-drain", 2*time.Second, "a planned switchover lets the transactions running on the old primary finish for this long (then ends them: 40001)")
	catchUp := fs.Duration("switchover-catchup", 5*time.Second, "a planned switchover waits this long for its target to replay the old primary's WAL (else it is aborted)")
	quorum := fs.Int("sync-quorum", 1, "synchronous replication quorum set on a new primary: ANY N of its standbys")
	poolers := fs.Bool("require-poolers", false, "the nodes are served through belay poolers (belay gateway): a primary whose pooler dies is switched over to a standby that has one")
	resolveGrace := fs.Duration("resolve-grace", 15*time.Second, "a transaction a gateway left prepared on a shard with no decision recorded (the gateway died between the phases of its commit) is rolled back once prepared this long")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *etcd == "" {
		return errors.New("--etcd is required")
	}
	level, err := parseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *id == "" {
		host, _ := os.Hostname()
		*id = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := newOrchestrator(splitList(*etcd), *clusterName, ha.OrchOptions{
		ID: *id, Dial: healthDial(*user, *dbname, *passfile), DialDB: dialDB(*user, *passfile), Interval: *interval, Timeout: *timeout,
		DeadAfter: *deadAfter, SyncQuorum: *quorum, Replication: *repl, Logger: logger, RequirePoolers: *poolers,
		SwitchoverDrain: *drain, SwitchoverCatchUp: *catchUp, ResolveGrace: *resolveGrace,
	})
	if err != nil {
		return err
	}
	logger.Info("belay orch campaigning", "id", *id, "cluster", *clusterName, "etcd", *etcd)
	return o.run(ctx)
}

// orchestrator is an ha.Orchestrator with its etcd client.
type orchestrator struct {
	o   *ha.Orchestrator
	cli interface{ Close() error }
}

// newOrchestrator connects to etcd and makes an orchestrator of cluster
// (o's Store and Client are filled in).
func newOrchestrator(endpoints []string, cluster string, o ha.OrchOptions) (*orchestrator, error) {
	cli, err := etcdlocal.NewClient(endpoints)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(endpoints, ","), err)
	}
	st, err := ha.NewStore(cli, cluster)
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	o.Store, o.Client = st, cli
	return &orchestrator{o: ha.NewOrchestrator(o), cli: cli}, nil
}

// run orchestrates until ctx ends, then closes the etcd client.
func (r *orchestrator) run(ctx context.Context) error {
	defer r.cli.Close()
	return r.o.Run(ctx)
}
