package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/shard"
)

const shardSynopsis = `belay shard --etcd ENDPOINTS [--cluster NAME] COMMAND [ARGS]

Commands:
  init N                   make the cluster sharded over N shards (shard k is the topology's shard "k")
  table NAME KEY TYPE      shard table NAME by its column KEY, of TYPE integer, text or uuid
  reference NAME           make NAME a reference table, copied to every shard
  drop NAME                take NAME out of the schema
  show                     print the schema`

// runShard is `belay shard`: it reads and changes the cluster's sharding
// schema in etcd (issue J). Gateways and proxies follow it as they follow
// the topology.
func runShard(args []string) error {
	fs := newFlagSet("belay shard", shardSynopsis,
		"Manages the sharding schema of a cluster in etcd: which tables are sharded, by which key column,\n"+
			"and which are reference tables. A row of a sharded table lives on the shard its key hashes to with\n"+
			"PostgreSQL's own partition hash: shard k of N holds what the partition FOR VALUES WITH (MODULUS N,\n"+
			"REMAINDER k) of a table PARTITION BY HASH (KEY) would. Names are SQL: unquoted parts are folded to\n"+
			"lower case, \"quoted\" ones kept; an unqualified name is in schema public.")
	etcd := fs.String("etcd", "", "comma-separated etcd endpoints (required)")
	clusterName := fs.String("cluster", "local", "the cluster's name (its keys are under /belay/NAME/)")
	wait := fs.Duration("timeout", 10*time.Second, "how long to wait for etcd")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage{errors.New("a command is required")}
	}
	st, done, err := openStore(*etcd, *clusterName)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), *wait)
	defer cancel()
	return shardCommand(ctx, st, fs.Args(), os.Stdout)
}

// shardCommand runs one `belay shard` command on the cluster of st; what it
// prints goes to out.
func shardCommand(ctx context.Context, st *ha.Store, args []string, out io.Writer) error {
	if args[0] == "show" {
		if len(args) != 1 {
			return fmt.Errorf("show takes no arguments")
		}
		sc, _, err := st.Sharding(ctx)
		if err != nil {
			return err
		}
		printSchema(out, st.Cluster(), sc)
		return nil
	}
	sc, err := st.UpdateSharding(ctx, func(cur *shard.Schema) (*shard.Schema, error) {
		return changeSchema(cur, args)
	})
	if err != nil {
		return err
	}
	printSchema(out, st.Cluster(), sc)
	return nil
}

// changeSchema is the schema after the command args (init, table,
// reference, drop) on cur (nil: none yet). Pure.
func changeSchema(cur *shard.Schema, args []string) (*shard.Schema, error) {
	want := map[string]int{"init": 2, "table": 4, "reference": 2, "drop": 2}
	n, ok := want[args[0]]
	if !ok {
		return nil, fmt.Errorf("unknown command %q (init, table, reference, drop, show)", args[0])
	}
	if len(args) != n {
		return nil, fmt.Errorf("%s takes %d argument(s), got %d", args[0], n-1, len(args)-1)
	}
	if args[0] == "init" {
		k, err := strconv.Atoi(args[1])
		if err != nil {
			return nil, fmt.Errorf("init: %q is not a number of shards", args[1])
		}
		switch {
		case cur == nil:
			return shard.New(k)
		case cur.Shards() == k:
			return cur, nil
		}
		return nil, fmt.Errorf("the cluster is already sharded over %d shards: changing the number of shards (resharding) is not supported", cur.Shards())
	}
	if cur == nil {
		return nil, errors.New("the cluster is not sharded: run `belay shard init N` first")
	}
	name, err := shard.ParseTableName(args[1])
	if err != nil {
		return nil, err
	}
	switch args[0] {
	case "table":
		t, err := shard.ParseKeyType(args[3])
		if err != nil {
			return nil, err
		}
		key, err := shard.ParseTableName(args[2]) // a column name folds as a table name does
		if err != nil || key.Schema != shard.DefaultSchema {
			return nil, fmt.Errorf("%q is not a column name", args[2])
		}
		return cur.With(shard.ShardedTable(name, key.Name, t))
	case "reference":
		return cur.With(shard.ReferenceTable(name))
	}
	return cur.Without(name)
}

// printSchema prints sc (nil: not sharded) as a table.
func printSchema(out io.Writer, cluster string, sc *shard.Schema) {
	if sc == nil {
		fmt.Fprintf(out, "cluster %s is not sharded\n", cluster)
		return
	}
	fmt.Fprintf(out, "cluster %s: %d shard(s)\n", cluster, sc.Shards())
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TABLE\tKIND\tKEY\tTYPE")
	for _, t := range sc.Tables() {
		key, typ := "-", "-"
		if t.Kind == shard.Sharded {
			key, typ = t.Key, t.KeyType.String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Name, t.Kind, key, typ)
	}
	_ = w.Flush()
}
