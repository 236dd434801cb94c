package admin

import (
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
)

// Role is what a console user may do.
type Role uint8

const (
	// RoleStats (stats_users) may run SHOW.
	RoleStats Role = iota + 1
	// RoleAdmin (admin_users) may run everything.
	RoleAdmin
)

// Exec runs one console command and hands its answer (without the
// ReadyForQuery, which the caller appends) to reply: at once for most
// commands, later and on any goroutine for PAUSE and WAIT_CLOSE, never for
// a SHUTDOWN that ends the process first.
func Exec(b Backend, role Role, sql string, reply func(msgs []byte)) {
	cmd, err := Parse(sql)
	if err != nil {
		reply(appendError(nil, err))
		return
	}
	if cmd.Verb != VerbShow && role != RoleAdmin {
		reply(appendError(nil, errorf(sqlstate.InsufficientPrivilege, "admin access needed")))
		return
	}
	done := func(tag string) func(error) {
		return func(err error) {
			if err != nil {
				reply(appendError(nil, err))
				return
			}
			reply(appendComplete(nil, tag))
		}
	}
	switch cmd.Verb {
	case VerbShow:
		msgs, err := show(b, cmd.Arg)
		if err != nil {
			reply(appendError(nil, err))
			return
		}
		reply(msgs)
	case VerbSet:
		done("SET " + cmd.Arg + "=" + cmd.Value)(b.Set(cmd.Arg, cmd.Value))
	case VerbPause:
		b.Pause(cmd.Arg, done("PAUSE"))
	case VerbResume:
		done("RESUME")(b.Resume(cmd.Arg))
	case VerbSuspend:
		done("SUSPEND")(errorf(sqlstate.FeatureNotSupported,
			"SUSPEND is for PgBouncer's online restart (-R), which hands its sockets over; belay restarts with so_reuseport instead (see SHUTDOWN WAIT_FOR_CLIENTS)"))
	case VerbDisable:
		done("DISABLE")(b.Disable(cmd.Arg))
	case VerbEnable:
		done("ENABLE")(b.Enable(cmd.Arg))
	case VerbReconnect:
		done("RECONNECT")(b.Reconnect(cmd.Arg))
	case VerbKill:
		done("KILL")(b.Kill(cmd.Arg))
	case VerbKillClient:
		done("KILL_CLIENT")(b.KillClient(cmd.Arg))
	case VerbWaitClose:
		b.WaitClose(cmd.Arg, done("WAIT_CLOSE"))
	case VerbReload:
		done("RELOAD")(b.Reload())
	case VerbShutdown:
		done("SHUTDOWN")(b.Shutdown(cmd.Arg))
	case VerbSwitchover:
		b.Switchover(cmd.Arg, func(outcome string, err error) {
			if err != nil {
				reply(appendError(nil, err))
				return
			}
			reply(appendComplete(codec.AppendNoticeResponse(nil, codec.ErrorResponse{
				Severity: "NOTICE", Code: sqlstate.SuccessfulCompletion, Message: outcome}), "SWITCHOVER"))
		})
	}
}

// appendError appends err as an ErrorResponse: its own SQLSTATE for an
// *Error, 58000 system_error otherwise.
func appendError(dst []byte, err error) []byte {
	e := &Error{Code: sqlstate.SystemError, Message: err.Error()}
	errors.As(err, &e)
	return codec.AppendErrorResponse(dst, codec.ErrorResponse{Code: e.Code, Message: e.Message})
}

// show answers SHOW subject.
func show(b Backend, subject string) ([]byte, error) {
	if subject == "HELP" {
		return appendComplete(codec.AppendNoticeResponse(nil, codec.ErrorResponse{
			Code: sqlstate.SuccessfulCompletion, Message: "Console usage",
			Detail: help,
		}), "SHOW"), nil
	}
	cols, ok := Columns(subject)
	if !ok {
		switch subject {
		case "FDS", "SOCKETS", "ACTIVE_SOCKETS":
			return nil, errorf(sqlstate.FeatureNotSupported,
				"SHOW "+subject+" is about PgBouncer's socket handover (-R); belay restarts with so_reuseport instead")
		}
		return nil, errorf(sqlstate.ProtocolViolation, "invalid command 'SHOW "+subject+"', use SHOW HELP;")
	}
	t := newTable(nil, cols)
	switch subject {
	case "POOLS":
		for _, p := range b.Pools() {
			t.row(p.Database, p.User, p.ClActive, p.ClWaiting, p.ClActiveCancelReq, p.ClWaitingCancelReq,
				p.SvActive, p.SvActiveCancel, p.SvBeingCanceled, p.SvIdle, p.SvUsed, p.SvTested, p.SvLogin,
				int(p.MaxWait/time.Second), int((p.MaxWait%time.Second)/time.Microsecond), p.Mode,
				p.ClPinned, p.SvOpen, p.FairShare, p.Demand, p.Weight, p.NodeLimit)
		}
	case "STATS":
		for _, s := range b.Stats() {
			t.row(s.Database, s.Total.Xacts, s.Total.Queries, s.Total.Received, s.Total.Sent,
				s.Total.XactTime, s.Total.QueryTime, s.Total.WaitTime,
				s.Avg.Xacts, s.Avg.Queries, s.Avg.Received, s.Avg.Sent, s.Avg.XactTime, s.Avg.QueryTime, s.Avg.WaitTime)
		}
	case "STATS_TOTALS", "STATS_AVERAGES":
		for _, s := range b.Stats() {
			v := s.Total
			if subject == "STATS_AVERAGES" {
				v = s.Avg
			}
			t.row(s.Database, v.Xacts, v.Queries, v.Received, v.Sent, v.XactTime, v.QueryTime, v.WaitTime)
		}
	case "TOTALS":
		var tot, avg DatabaseStats
		for _, s := range b.Stats() {
			tot.Total = tot.Total.Add(s.Total)
			avg.Avg = avg.Avg.Add(s.Avg)
		}
		for _, r := range []struct {
			name string
			v    any
		}{
			{"total_xact_count", tot.Total.Xacts}, {"total_query_count", tot.Total.Queries},
			{"total_client_bytes", tot.Total.Received}, {"total_server_bytes", tot.Total.Sent},
			{"total_xact_time", tot.Total.XactTime}, {"total_query_time", tot.Total.QueryTime},
			{"total_wait_time", tot.Total.WaitTime},
			{"avg_xact_count", avg.Avg.Xacts}, {"avg_query_count", avg.Avg.Queries},
			{"avg_client_bytes", avg.Avg.Received}, {"avg_server_bytes", avg.Avg.Sent},
			{"avg_xact_time", avg.Avg.XactTime}, {"avg_query_time", avg.Avg.QueryTime},
			{"avg_wait_time", avg.Avg.WaitTime},
		} {
			t.row(r.name, r.v)
		}
	case "SERVERS", "CLIENTS":
		conns := b.Clients()
		if subject == "SERVERS" {
			conns = b.Servers()
		}
		for _, c := range conns {
			typ := "C"
			if c.Server {
				typ = "S"
			}
			var link any
			if c.Link != "" {
				link = c.Link
			}
			t.row(typ, c.User, c.Database, c.State, c.Addr, c.Port, c.LocalAddr, c.LocalPort,
				c.ConnectTime, c.RequestTime, int(c.Wait/time.Second), int((c.Wait%time.Second)/time.Microsecond),
				c.CloseNeeded, c.Ptr, link, c.RemotePID, c.TLS, c.ApplicationName,
				c.Pinned, c.PreparedStatements, c.Loop)
		}
	case "DATABASES":
		for _, d := range b.Databases() {
			t.row(d.Name, nullIfEmpty(d.Host), d.Port, d.Database, nullIfEmpty(d.ForceUser), d.PoolSize, d.MinPoolSize,
				d.ReservePool, nullIfEmpty(d.PoolMode), d.MaxConnections, d.CurrentConnections, d.Paused, d.Disabled)
		}
	case "USERS":
		for _, u := range b.Users() {
			t.row(u.Name, nullIfEmpty(u.PoolMode), u.Weight, u.Min, u.Max)
		}
	case "LISTS":
		for _, l := range b.Lists() {
			t.row(l.Name, l.Items)
		}
	case "MEM":
		for _, m := range b.Mem() {
			t.row(m.Name, m.Size, m.Used, m.Free, m.Total)
		}
	case "VERSION":
		t.row(b.Version())
	case "STATE":
		st := b.State()
		t.row("active", yesNo(st.Active))
		t.row("paused", yesNo(st.Paused))
		t.row("suspended", yesNo(st.Suspended))
	case "CONFIG":
		items := b.Config()
		sort.Slice(items, func(i, j int) bool { return items[i].Key < items[j].Key })
		for _, c := range items {
			t.row(c.Key, c.Value, c.Default, yesNo(c.Changeable))
		}
	case "DNS_HOSTS", "DNS_ZONES":
		// belay keeps no DNS cache of its own: the tables are empty.
	case "FAIRNESS":
		for _, f := range b.Fairness() {
			t.row(f.Database, f.User, f.Weight, f.Min, f.Max, f.Demand, f.Share, f.Held, f.Waiting, f.Budget, f.Open, f.Node,
				f.Limit, f.MaxDB, f.LimitReason)
		}
	case "NODES":
		for _, n := range b.Nodes() {
			t.row(n.Shard, n.Node, n.Host, n.Port, n.Role, n.State, n.LagBytes, n.LagMs, n.Term, n.ServersOpen,
				n.Reads, n.Writes, n.InFlight, n.LSN, nullIfEmpty(n.LastError), n.Limit, n.LimitReason)
		}
	case "SHARDS":
		for _, s := range b.Shards() {
			t.row(s.Shard, nullIfEmpty(s.Primary), s.Term, s.Nodes, s.Names)
		}
	case "SHARDED_TABLES":
		for _, s := range b.ShardedTables() {
			t.row(s.Table, s.Kind, nullIfEmpty(s.Key), nullIfEmpty(s.KeyType), s.Shards)
		}
	case "PREPARED_STATEMENTS":
		for _, s := range b.PreparedStatements() {
			t.row(s.Ptr, s.User, s.Database, s.Count, s.Max)
		}
	}
	return t.done("SHOW"), nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

var help = strings.TrimSpace(`
	SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION
	SHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS|LISTS|MEM|STATE|DNS_HOSTS|DNS_ZONES
	SHOW FAIRNESS|PREPARED_STATEMENTS|NODES|SHARDS|SHARDED_TABLES   (belay's own)
	SET key = arg
	RELOAD
	PAUSE [<db>]
	RESUME [<db>]
	DISABLE <db>
	ENABLE <db>
	RECONNECT [<db>]
	KILL <db>
	KILL_CLIENT <ptr>
	WAIT_CLOSE [<db>]
	SHUTDOWN [WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS]
	SWITCHOVER [<node>]   (belay's own: a planned switchover of the primary)`)
