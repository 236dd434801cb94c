package admin

import (
	"time"

	"github.com/belaydb/belay/poolcore"
)

// Backend is what the console shows and controls: the proxy. Its methods
// are safe for concurrent use; Exec calls them on the console client's
// event loop, so they must not block (Pause and WaitClose report through
// done instead of waiting).
type Backend interface {
	Version() string
	Pools() []Pool
	Stats() []DatabaseStats
	Clients() []Conn
	Servers() []Conn
	Databases() []Database
	Users() []User
	Lists() []ListItem
	Mem() []MemRow
	State() State
	Config() []ConfigItem
	Fairness() []Fair
	PreparedStatements() []ServerStatements
	Nodes() []Node
	Shards() []Shard
	ShardedTables() []ShardedTable

	// Pause stops giving servers to clients of db ("" for all) and closes
	// every server once released; done runs once they are all closed, on
	// any goroutine.
	Pause(db string, done func(error))
	Resume(db string) error
	Disable(db string) error
	Enable(db string) error
	// Reconnect closes the servers of db ("" for all) as they are released.
	Reconnect(db string) error
	Kill(db string) error
	KillClient(id string) error
	// WaitClose reports through done once the servers Reconnect marked are closed.
	WaitClose(db string, done func(error))
	Reload() error
	// Shutdown starts a shutdown: mode is "", "WAIT_FOR_SERVERS" or "WAIT_FOR_CLIENTS".
	Shutdown(mode string) error
	Set(key, value string) error
	// Switchover asks for a planned switchover of the served shard's
	// primary to node ("": the orchestrator chooses) and reports through
	// done, on any goroutine, once it is over: its outcome in a sentence,
	// or why it failed.
	Switchover(node string, done func(outcome string, err error))
}

// Pool is a row of SHOW POOLS.
type Pool struct {
	Database, User                                                      string
	ClActive, ClWaiting, ClActiveCancelReq, ClWaitingCancelReq          int
	SvActive, SvActiveCancel, SvBeingCanceled, SvIdle, SvUsed, SvTested int
	SvLogin                                                             int
	MaxWait                                                             time.Duration
	Mode                                                                string
	ClPinned, SvOpen, FairShare, Demand, Weight                         int
	// NodeLimit is the adaptive limit of the pool's node on queries
	// running at once (its max_db_connections when the limit is off or
	// fixed; 0: none).
	NodeLimit int
}

// DatabaseStats are a database's counters (its pools' summed) and their
// averages over the last stats period (see Averager).
type DatabaseStats struct {
	Database   string
	Total, Avg poolcore.Totals
}

// Conn is a row of SHOW CLIENTS or SHOW SERVERS.
type Conn struct {
	Server                   bool
	User, Database, State    string
	Addr                     string
	Port                     int
	LocalAddr                string
	LocalPort                int
	ConnectTime, RequestTime time.Time
	Wait                     time.Duration
	CloseNeeded              bool
	Ptr, Link                string
	RemotePID                int
	TLS, ApplicationName     string
	Pinned                   bool
	PreparedStatements, Loop int
}

// Database is a row of SHOW DATABASES.
type Database struct {
	Name, Host                         string
	Port                               int
	Database, ForceUser                string
	PoolSize, MinPoolSize, ReservePool int
	PoolMode                           string
	MaxConnections, CurrentConnections int
	Paused, Disabled                   bool
}

// User is a row of SHOW USERS.
type User struct {
	Name, PoolMode   string
	Weight, Min, Max int
}

// ListItem is a row of SHOW LISTS.
type ListItem struct {
	Name  string
	Items int
}

// MemRow is a row of SHOW MEM.
type MemRow struct {
	Name                    string
	Size, Used, Free, Total int64
}

// State is SHOW STATE.
type State struct{ Active, Paused, Suspended bool }

// ConfigItem is a row of SHOW CONFIG.
type ConfigItem struct {
	Key, Value, Default string
	Changeable          bool
}

// Fair is a row of SHOW FAIRNESS: a pool as a user of its node's budget.
type Fair struct {
	Database, User               string
	Weight, Min, Max             int
	Demand, Share, Held, Waiting int
	Budget, Open                 int
	Node                         string // "" for the one server of a proxy without a cluster
	// Limit is the node's adaptive limit on queries running at once, under
	// the ceiling max_db_connections (MaxDB); LimitReason says why it is
	// what it is ("fixed" when the limit is off). Budget, what the shares
	// are cut from, is Limit plus the servers held that run nothing.
	Limit, MaxDB int
	LimitReason  string
}

// Node is a row of SHOW NODES: a Postgres node as this proxy sees it.
type Node struct {
	Shard, Node, Host string
	Port              int
	Role, State       string // primary|replica; up|down (its health checks) or disabled
	LagBytes, LagMs   int64  // a replica's lag behind its primary
	Term              int64  // the shard's term
	ServersOpen       int    // server connections of this proxy to it
	Reads, Writes     int64  // units of work routed to it as reads, as writes
	InFlight          int    // units of work on it now
	LSN               string // a primary's WAL position, a replica's replay position
	LastError         string // why its last health check failed
	// Limit is this proxy's adaptive limit on queries running at once on
	// the node (its max_db_connections when off; 0: none), LimitReason
	// why ("fixed" when off).
	Limit       int
	LimitReason string
}

// Shard is a row of SHOW SHARDS: a shard of the topology as this proxy
// last read it.
type Shard struct {
	Shard, Primary string // Primary "" while a failover holds the shard's work
	Term           int64
	Nodes          int    // nodes registered in the shard
	Names          string // their names, comma-separated
}

// ShardedTable is a row of SHOW SHARDED_TABLES: a table of the sharding
// schema.
type ShardedTable struct {
	Table, Kind  string // schema.name; sharded|reference
	Key, KeyType string // a sharded table's key column and its type
	Shards       int    // the shard count its rows are spread over (1 copy each for a reference table)
}

// ServerStatements is a row of SHOW PREPARED_STATEMENTS.
type ServerStatements struct {
	Ptr, User, Database string
	Count, Max          int
}
