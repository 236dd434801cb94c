package loop

import (
	"context"
	"crypto/subtle"
	"errors"
	"math"
	"sort"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/gnetx"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

type sessState uint8

const (
	sStartup sessState = iota // reading the startup packet (and TLS negotiation)
	sTLS                      // TLS handshake under way off the loop (the client is parked)
	sLookup                   // waiting for auth_query to find the user's secret
	sAuth                     // password exchange with the client
	sLogin                    // waiting for a server to learn the parameters the client gets
	sReady                    // serving queries
	sConsole                  // an admin console client (console.go)
	sClosing                  // closed or about to be
)

// session is one client connection. It belongs to its event loop: every
// method runs there, and so nothing in it is locked. It implements
// poolcore.Client.
type session struct {
	p     *Proxy
	c     gnet.Conn // nil while parked
	in    gnetx.Input
	loop  *poolcore.Loop
	pool  *poolcore.Pool
	stats *poolcore.LoopStats // pool's counters on loop; set with pool

	state sessState
	counted,
	sslAsked, gssAsked bool

	key         poolcore.Key
	sig         string        // the SQL that applies its session settings: the signature servers are matched on
	startSig    string        // sig of its startup parameters alone (the key of the pool's cached ParameterStatus)
	start       []param       // its startup parameters
	st          *sessionState // what it set beyond them; nil until it does
	ps          *stmtState    // its prepared statements; nil until it has one
	r           replies       // the answers its server owes, in order
	hs          *handshake    // until the client is logged in; nil afterwards
	idleTx      *idleTx       // with IdleTransactionTimeout, from the first idle moment in a transaction
	pid, secret uint32
	con         *consoleState // an admin console client; nil for everyone else
	lastActive  int64         // when it last sent something (Proxy.coarseNow), for client_idle_timeout
	refused     bool          // connected after a shutdown began (gnet's listeners): answered 57P03

	server  *poolcore.Server
	waiting bool
	// Sequences (seq.go): the server where its last transaction that may
	// have advanced a sequence ran, that server's SeqMark then, whether the
	// current transaction may have, and the server it waits for (nil: any).
	seq        *poolcore.Server
	seqMark    uint64
	seqTouched bool
	waitSeq    *poolcore.Server
	cl         *clusterState      // serving a cluster (cluster.go); nil for one server
	heldLogin  func() gnet.Action // its login waits for a new primary (holdLogin)
	spread     *spread            // a statement under way on every shard (spread.go)
	parts      *txParts           // its transaction's parts set aside on other shards (xshard.go)
	txBegin    string             // the BEGIN belay deferred of its transaction (shards.go), "" for none
	heldBack   bool               // input is held back until its server answers (xshard.go)
	t          tracker
	checkState bool     // it may have changed its settings or released a pin: ask the server before letting it go
	pinForever bool     // pinned by something nothing undoes (LOAD)
	resetting  bool     // a RESET under way: hold the ParameterStatus of startup parameters (state.go)
	fns        []string // user functions its plans called whose volatility this loop's cache does not know
	cliRemain  int      // bytes of a CopyData body still to stream to the server
	srvRemain  int      // bytes of a server message body still to stream to the client
	srvDrop    int      // bytes of a server message belay drops (the answer to its own)
	// When the query and the transaction under way began (nanotime; 0:
	// none): the first message forwarded after a ReadyForQuery starts both.
	qStart, xStart int64
	qCancelled     int64 // qStart of the query query_timeout cancelled
	syncRepCut     bool  // that cancel cut a commit's wait for synchronous replication (syncrep.go)

	parkedFD  int  // the client's socket while parked, else -1
	parking   bool // the next OnClose is a park
	pollArmed bool
	inCB      bool // inside a gnet callback of the client's own connection
	done      bool // closed() ran
}

// handshake is what a session needs only until it is logged in; an idle
// client holds none of it.
type handshake struct {
	login    startup       // the StartupMessage, kept until authentication ends
	preamble []byte        // sent before AuthenticationOk: NegotiateProtocolVersion, SASLFinal
	ax       *authExchange // the password exchange under way
}

// idleTx is the idle-in-transaction clock of a session.
type idleTx struct {
	timer *time.Timer
	since time.Time // when the client went idle in its transaction; zero when it is not
}

func newSession(p *Proxy, c gnet.Conn, l *poolcore.Loop) *session {
	s := &session{p: p, c: c, loop: l, t: newTracker(), parkedFD: -1}
	s.r.undo = s
	now := time.Now().UnixNano()
	p.logins[l.Index()][s] = now // sweepLogins enforces ClientLoginTimeout
	p.sessions[l.Index()][s] = now
	s.lastActive = now
	s.refused = p.refuseNew.Load()
	p.conns.Add(1)
	return s
}

// handshake is s.hs, allocated on first use: a trust login never needs it.
func (s *session) handshake() *handshake {
	if s.hs == nil {
		s.hs = &handshake{}
	}
	return s.hs
}

// loggedIn drops what only the login needed.
func (s *session) loggedIn() {
	s.hs = nil
	delete(s.p.logins[s.loop.Index()], s)
}

// onTraffic handles bytes from the client.
func (s *session) onTraffic(c gnet.Conn) gnet.Action {
	s.lastActive = s.p.coarseNow.Load()
	a := s.traffic(c)
	if err := s.in.Err(); err != nil && a == gnet.None {
		s.p.log.Debug("client TLS error", "remote", c.RemoteAddr(), "err", err)
		s.state = sClosing
		return gnet.Close
	}
	return a
}

func (s *session) traffic(c gnet.Conn) gnet.Action {
	switch s.state {
	case sStartup:
		return s.startupTraffic(c)
	case sReady:
		return s.clientData(c)
	case sConsole:
		return s.consoleTraffic(c)
	case sAuth:
		return s.authTraffic(c)
	case sLogin, sLookup:
		// Clients wait for ReadyForQuery before they send; megabytes before
		// the login completes are an attack, not a pipeline.
		if s.in.Buffered(c) > s.p.cfg.MaxBufferedBytes {
			return s.fatal(fatalf(sqlstate.ProtocolViolation, "too much data sent before the login completed"))
		}
		return gnet.None
	}
	_, _ = c.Discard(-1)
	return gnet.None
}

func (s *session) startupTraffic(c gnet.Conn) gnet.Action {
	for s.state == sStartup {
		data := s.in.Bytes(c)
		if len(data) > 0 && data[0] == tlsRecordHandshake && s.p.tls != nil && s.in.TLS() == nil && !s.sslAsked {
			return s.startTLS(c, false) // PostgreSQL 17's direct TLS: a ClientHello first
		}
		st := parseStartup(data)
		switch st.kind {
		case startupNeedMore:
			return gnet.None
		case startupReject:
			s.p.log.Debug("startup rejected", "remote", c.RemoteAddr(), "err", st.err.Message)
			return s.fatal(st.err)
		case startupSSL, startupGSS:
			if (st.kind == startupSSL && s.sslAsked) || (st.kind == startupGSS && s.gssAsked) {
				return s.fatal(fatalf(sqlstate.ProtocolViolation, "duplicate SSL/GSS negotiation request"))
			}
			s.sslAsked = s.sslAsked || st.kind == startupSSL
			s.gssAsked = s.gssAsked || st.kind == startupGSS
			s.in.Consume(c, st.n)
			if st.kind == startupSSL && s.p.tls != nil && s.in.TLS() == nil {
				if s.in.Buffered(c) > 0 {
					// Bytes the client sent before it saw 'S' would be taken
					// as if they came over TLS (CVE-2021-23214).
					return s.fatal(fatalf(sqlstate.ProtocolViolation, "received unencrypted data after SSL request"))
				}
				return s.startTLS(c, true)
			}
			_, _ = s.write([]byte{'N'})
		case startupCancel:
			s.in.Consume(c, st.n)
			s.p.cancel(st.cancelPID, st.cancelKey)
			return gnet.Close
		case startupLogin:
			s.in.Consume(c, st.n)
			return s.startupMessage(st)
		}
	}
	return gnet.None
}

// authenticated continues the login once the client has proved who it is:
// cred says how belay logs in to Postgres as that user.
func (s *session) authenticated(st *startup, cred poolcore.Credentials) gnet.Action {
	if IsConsoleDB(st.database) {
		return s.consoleLogin(st)
	}
	if s.p.isDisabled(st.database) {
		return s.fatal(fatalf(sqlstate.ObjectNotInPrerequisiteState, "database %q is disabled (DISABLE on the admin console)", st.database))
	}
	if e := s.p.fencedLogin(); e != nil {
		return s.fatal(*e) // fence.go
	}
	s.key = poolcore.Key{Database: st.database, User: st.user}
	s.start = st.params
	s.sig = startupSQL(st.params)
	s.startSig = s.sig
	if s.holdLogin(st, cred) {
		return gnet.None
	}
	pool, err := s.homePool(cred)
	if err != nil {
		return s.fatal(fatalf(sqlstate.ConnectionFailure, "%v", err))
	}
	s.pool = pool
	s.stats = pool.LoopStats(s.loop)
	s.pid, s.secret = s.p.register(s)
	if msgs, ok := pool.CachedParams(s.startSig); ok {
		s.welcome(msgs)
		return s.clientData(s.c)
	}
	// The first client with these parameters: a server tells what they are.
	s.state = sLogin
	if sc := pool.Acquire(s.loop, s, s.sig); sc != nil {
		s.ServerReady(sc)
	} else {
		s.waiting = true
	}
	return gnet.None
}

// welcome ends the startup phase: AuthenticationOk (trust), the parameters,
// the belay-issued BackendKeyData and ReadyForQuery.
func (s *session) welcome(params []byte) {
	s.p.metrics.logins.Inc()
	b := s.loop.Scratch()
	if s.hs != nil {
		b = append(b, s.hs.preamble...)
	}
	b = codec.AppendAuthenticationOk(b)
	b = append(b, params...)
	b = codec.AppendBackendKeyData(b, s.pid, s.secret)
	b = codec.AppendReadyForQuery(b, 'I')
	_, _ = s.write(b)
	s.loop.KeepScratch(b)
	s.state = sReady
	s.loggedIn()
}

// paramMessages encodes what Postgres sent in ParameterStatus, sorted.
func paramMessages(params map[string]string) []byte {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	var b []byte
	for _, k := range names {
		b = codec.AppendParameterStatus(b, k, params[k])
	}
	return b
}

// ServerReady is poolcore's hand-off of a server to this client.
func (s *session) ServerReady(sc *poolcore.Server) {
	s.waiting, s.waitSeq = false, nil
	if s.state == sClosing {
		s.giveBack(sc)
		return
	}
	if s.state == sReady && s.c != nil && s.in.Buffered(s.c) == 0 && !s.t.pinned && s.t.idle() {
		// Nothing to send any more: its wait was cancelled while the
		// server was on its way (a server_check_query in flight).
		s.giveBack(sc)
		s.unitDone()
		return
	}
	s.server = sc
	if sc.AppliedSig != s.sig {
		sc.Exec(applySQL(sc.AppliedSig, s.sig), s.applied)
		return
	}
	if s.state == sLogin {
		s.applied(sc, nil)
		return
	}
	s.resumeWork()
}

// applied continues once the client's startup parameters are set on sc.
func (s *session) applied(sc *poolcore.Server, perr *poolcore.PgError) {
	if s.state == sClosing || s.server != sc {
		s.giveBack(sc)
		return
	}
	if perr != nil {
		if s.state == sReady && s.dropReserved(perr) {
			sc.Exec(applySQL(sc.AppliedSig, s.sig), s.applied)
			return
		}
		// The parameters are invalid (Postgres would refuse the startup).
		sc.Dirty = true
		s.server = nil
		s.pool.Release(sc)
		s.kill(fatalFromServer(perr))
		return
	}
	sc.AppliedSig = s.sig
	if s.state == sLogin {
		msgs := paramMessages(sc.Params)
		s.pool.StoreParams(s.startSig, msgs)
		s.server = nil
		s.pool.Release(sc)
		s.welcome(msgs)
	}
	s.resumeWork()
}

// resumeWork processes client input that waited for a server or a login.
func (s *session) resumeWork() {
	if s.state != sReady {
		return
	}
	if s.c == nil {
		s.unparkClient()
		return
	}
	if s.in.Buffered(s.c) > 0 {
		if s.clientData(s.c) == gnet.Close {
			s.closeClient()
		}
	}
}

// ServerFailed: no server could be had for this client.
func (s *session) ServerFailed(err error) {
	s.waiting = false
	if errors.Is(err, poolcore.ErrServerGone) {
		// The server holding its sequence state closed: any server does.
		s.waitSeq, s.seq = nil, nil
		s.resumeWork()
		return
	}
	if s.rerouteAfter(err) || s.holdAfter(err) {
		return
	}
	if errors.Is(err, poolcore.ErrQueryWaitTimeout) {
		e := fatalf(sqlstate.ProtocolViolation, "query_wait_timeout") // PgBouncer's words and code
		e.Detail = err.Error()
		s.kill(e)
		return
	}
	var pe *poolcore.PgError
	if errors.As(err, &pe) {
		s.kill(fatalFromServer(pe))
		return
	}
	// 08001: nothing of the client's was sent (a gateway in front routes
	// it again: neverSent).
	s.kill(fatalf(sqlstate.SQLClientUnableToEstablishSQLConnection, "belay could not connect to the server: %v", err))
}

// ServerLost: the server this client held closed or broke.
func (s *session) ServerLost(sc *poolcore.Server, err error) {
	if s.server != sc {
		return
	}
	s.server = nil
	// The parts set aside on other shards go with the transaction.
	s.dropParts()
	if s.cl != nil && s.serverGone(sc, err) { // a failover (failover.go)
		return
	}
	s.srvRemain, s.cliRemain, s.srvDrop = 0, 0, 0
	s.r.reset()
	s.kill(codec.ErrorResponse{Severity: "FATAL", Code: sqlstate.ConnectionFailure,
		Message: "server closed the connection unexpectedly", Detail: err.Error()})
}

// boundWaiting keeps a client that sends while it waits (for a login or a
// server) from growing belay's memory: past the bound it is parked.
func (s *session) boundWaiting(c gnet.Conn) gnet.Action {
	if s.in.Buffered(c) > s.p.cfg.MaxBufferedBytes {
		return s.parkClient(c)
	}
	return gnet.None
}

// clientData forwards the client's messages to its server, taking one from the
// pool when it has none.
func (s *session) clientData(c gnet.Conn) gnet.Action {
	for {
		if s.state != sReady {
			return gnet.None
		}
		if s.server != nil {
			if s.server.Conn() == nil || s.server.Busy() || s.cl != nil && s.cl.lsnOwed {
				// Parked, or belay's own query first; or its WAL position
				// asked after the client's last write (askLSN), after which
				// the next unit is routed anew.
				return s.boundWaiting(c)
			}
			if s.cl != nil && s.cl.verify != 0 {
				if !s.cl.verifying {
					s.verifyReplay(s.server) // read-your-writes on a replica (cluster.go)
				}
				return s.boundWaiting(c)
			}
			if s.seq != nil && s.seqMove(c) {
				if s.waiting {
					return s.boundWaiting(c)
				}
				if s.server.AppliedSig != s.sig {
					s.server.Exec(applySQL(s.server.AppliedSig, s.sig), s.applied)
					return gnet.None
				}
				continue
			}
			limit := 0
			if s.cl != nil {
				if s.beginDeferred() {
					return gnet.None // the transaction's BEGIN first (shards.go)
				}
				var act gnet.Action
				var next routeNext
				if limit, act, next = s.crossing(c); next == routeStop {
					return act // another shard's unit (xshard.go)
				} else if next == routeAgain {
					continue
				}
			}
			return s.forward(c, limit)
		}
		if sp := s.spread; sp != nil && sp.copy != nil {
			return sp.copy.clientData(c) // a COPY's rows, split between shards (copysplit.go)
		}
		if s.waiting || s.spread != nil {
			return s.boundWaiting(c) // queued already, or a statement under way on every shard: what it sends meanwhile waits
		}
		data := s.in.Bytes(c)
		if len(data) == 0 {
			return gnet.None
		}
		typ, bodyLen, act, ok := s.header(data)
		if !ok {
			return act
		}
		switch typ {
		case codec.MsgTerminate:
			return gnet.Close
		case codec.MsgCopyData, codec.MsgCopyDone, codec.MsgCopyFail, codec.MsgFlush:
			// Copy messages after a COPY failed, or a Flush with nothing
			// pending: Postgres ignores them, so they need no server.
			if len(data) < 5+bodyLen {
				return s.boundWaiting(c)
			}
			s.in.Consume(c, 5+bodyLen)
			continue
		}
		if s.cl != nil && !s.t.pinned {
			act, next := s.routeCluster(c, data) // or held, or answered by belay (failover.go)
			if next == routeStop {
				return act
			} else if next == routeAgain {
				continue
			}
		}
		if typ == codec.MsgParse && s.cl == nil && !s.t.pinned && s.answerPrepare(c, data, bodyLen) {
			continue // a PQprepare of a statement known to parse: no server (parsed.go)
		}
		if !s.pinForever && s.p.live.Load().session {
			// pool_mode = session: the first server is the client's until
			// it disconnects, then reset (DISCARD ALL) for the next.
			s.pin()
			s.pinForever = true
		}
		if sc := s.acquire(); sc != nil {
			s.server = sc
			if sc.AppliedSig != s.sig {
				sc.Exec(applySQL(sc.AppliedSig, s.sig), s.applied)
				return gnet.None
			}
			continue
		}
		s.waiting = true
		return s.boundWaiting(c)
	}
}

// header reads and checks the next frontend message header; a bad one
// closes the client with a FATAL error.
func (s *session) header(data []byte) (typ byte, bodyLen int, act gnet.Action, ok bool) {
	typ, bodyLen, bad, ok := s.checkHeader(data)
	if bad != nil {
		return 0, 0, s.fatal(*bad), false
	}
	return typ, bodyLen, gnet.None, ok
}

// checkHeader reads the next frontend message header: ok false with bad nil
// means it is not all in yet; bad is the FATAL error a bad one deserves.
func (s *session) checkHeader(data []byte) (typ byte, bodyLen int, bad *codec.ErrorResponse, ok bool) {
	typ, bodyLen, err := codec.PeekHeader(data, codec.MaxProtocolMessage)
	switch {
	case err == codec.ErrShortBuffer:
		return 0, 0, nil, false
	case err != nil:
		e := fatalf(sqlstate.ProtocolViolation, "invalid message length")
		return 0, 0, &e, false
	}
	switch typ {
	case codec.MsgQuery, codec.MsgParse, codec.MsgBind, codec.MsgDescribe, codec.MsgExecute, codec.MsgClose,
		codec.MsgSync, codec.MsgFlush, codec.MsgTerminate, codec.MsgFunctionCall, codec.MsgCopyDone, codec.MsgCopyFail:
		if bodyLen > s.p.cfg.MaxMessageSize {
			e := fatalf(sqlstate.ProgramLimitExceeded, "message of %d bytes exceeds the maximum of %d", bodyLen, s.p.cfg.MaxMessageSize)
			return 0, 0, &e, false
		}
	case codec.MsgCopyData:
	default:
		e := fatalf(sqlstate.ProtocolViolation, "invalid frontend message type %d", typ)
		return 0, 0, &e, false
	}
	return typ, bodyLen, nil, true
}

// forward writes the client's whole messages (and CopyData as it streams in)
// to its server in one write, up to limit (0: all). The bytes are views
// into the loop's buffer, except where a prepared statement's name is
// mapped (stmts.go).
func (s *session) forward(c gnet.Conn, limit int) gnet.Action {
	sc := s.server
	data := s.in.Bytes(c)
	if limit > 0 && limit < len(data) {
		data = data[:limit]
	}
	w := rewriter{data: data, sc: sc, s: s}
	off := 0
	var act gnet.Action
	// A bad message closes the client, but only once what came before it is
	// written: the error would be encoded in the loop's scratch buffer,
	// which w.out may be.
	var bad *codec.ErrorResponse
	var last byte // the type of the last whole message forwarded
	for off < len(data) {
		if s.cliRemain > 0 {
			k := min(s.cliRemain, len(data)-off)
			off += k
			s.cliRemain -= k
			continue
		}
		typ, bodyLen, e, ok := s.checkHeader(data[off:])
		if !ok {
			bad = e
			break
		}
		if typ == codec.MsgTerminate {
			act = gnet.Close
			break
		}
		if typ == codec.MsgCopyData {
			off += 5
			s.cliRemain = bodyLen
			continue
		}
		if len(data)-off < 5+bodyLen {
			break
		}
		end := off + 5 + bodyLen
		if s.r.skipping && typ != codec.MsgSync {
			// After an error, the server skips everything up to the Sync:
			// nothing to map, nothing to follow, nothing owed (replies).
			if typ != codec.MsgQuery && typ != codec.MsgFunctionCall {
				s.t.client(typ) // the batch stays open until the Sync
			}
			off = end
			continue
		}
		body := data[off+5 : end]
		invalid := ""
		owed := true // the server answers it (not skipped after an error)
		switch typ {
		case codec.MsgQuery:
			q, err := codec.QueryText(body)
			if err != nil {
				invalid = "Query"
				break
			}
			owed = s.query(&w, off, end, q)
		case codec.MsgParse:
			m, err := codec.ParseParse(body)
			if err != nil {
				invalid = "Parse"
				break
			}
			w.parse(off, end, m)
		case codec.MsgBind:
			m, err := codec.ParseBind(body)
			if err != nil {
				invalid = "Bind"
				break
			}
			w.bind(off, end, m)
		case codec.MsgDescribe:
			kind, name, err := codec.ParseDescribe(body)
			if err != nil {
				invalid = "Describe"
				break
			}
			w.describe(off, end, kind, name)
		case codec.MsgClose:
			kind, name, err := codec.ParseClose(body)
			if err != nil {
				invalid = "Close"
				break
			}
			w.close(off, end, kind, name)
		case codec.MsgExecute:
			s.r.push(s.execute(body))
		case codec.MsgSync:
			s.r.push(reply{kind: rSync})
		case codec.MsgFunctionCall:
			owed = s.r.push(reply{kind: rQuery})
		}
		if invalid != "" {
			e := fatalf(sqlstate.ProtocolViolation, "invalid %s message", invalid)
			bad = &e
			break
		}
		if owed {
			s.t.client(typ)
		}
		last = typ
		off = end
	}
	if off > 0 {
		if s.idleTx != nil {
			s.idleTx.since = time.Time{}
		}
		if s.qStart == 0 {
			s.qStart = nanotime()
			if s.xStart == 0 {
				s.xStart = s.qStart
			}
		}
		s.stats.Received(off)
		if s.cl != nil {
			if s.cl.armed || s.cl.unsent {
				s.cl.keep(data[:off], s.p.cfg.MaxBufferedBytes)
			}
			if s.cl.txWrite && !s.cl.unitTx && (last == codec.MsgSync || last == codec.MsgQuery) {
				w.askLSN(off) // read-your-writes, pipelined after an autocommit write (cluster.go)
			}
		}
		out := w.bytes(off)
		_, err := sc.Write(out)
		if w.out != nil {
			s.loop.KeepScratch(w.out)
		}
		if err != nil {
			s.in.Consume(c, off)
			return gnet.Close
		}
	}
	s.in.Consume(c, off)
	s.writeSynth()
	if bad != nil {
		return s.fatal(*bad)
	}
	if act != gnet.None {
		return act
	}
	if sc.Conn().OutboundBuffered() > s.p.cfg.MaxBufferedBytes {
		// Postgres reads slower than the client sends (a big COPY): stop
		// reading the client until it catches up.
		return s.parkClient(c)
	}
	return gnet.None
}

// query handles a Query message at data[off:end]: its plan's effects, and
// the names of prepared statements it uses. It returns false when the server
// will skip it (an extended-protocol error before it, and no Sync yet).
func (s *session) query(w *rewriter, off, end int, q []byte) bool {
	plan := s.plan(q)
	s.noteFunctions(plan)
	if s.cl != nil {
		s.noteQueryUnit(plan, q) // noteUnit, and which transaction control it sends (failover.go)
	}
	e := reply{kind: rQuery}
	injected := w.guardSequences(off, plan.Effects, true)
	if plan.Effects&(sqlStmtEffects|planner.EffPreparedView) != 0 {
		e = w.sqlQuery(off, end, q, injected)
	} else if injected {
		w.ownSync()
	}
	if plan.Effects&planner.EffGUC != 0 {
		s.noteCustom(q)
	}
	s.noteEffects(plan.Effects)
	if s.ps != nil {
		s.ps.hasUnnamed = false // a simple Query destroys the unnamed statement
	}
	w.sc.Unnamed = nil
	return s.r.push(e)
}

// writeSynth sends the client the answers belay gives in the server's stead
// that are due now.
func (s *session) writeSynth() {
	if s.srvRemain > 0 || s.srvDrop > 0 || s.c == nil {
		return
	}
	var b []byte
	for typ := s.r.synth(); typ != 0; typ = s.r.synth() {
		b = append(b, typ, 0, 0, 0, 4)
	}
	if b != nil {
		s.stats.Sent(len(b))
		_, _ = s.write(b)
	}
}

// queryDone counts the query that a ReadyForQuery with status ends, and
// the transaction if status is idle, in the pool's totals. With more
// queries in flight, the next one's time starts now. One clock read.
func (s *session) queryDone(status byte) {
	if s.qStart == 0 {
		return
	}
	now := nanotime()
	s.stats.Query(time.Duration(now - s.qStart))
	next := int64(0)
	if s.t.pending > 0 {
		next = now
	}
	s.qStart = next
	if status == codec.TxIdle && s.xStart != 0 {
		s.stats.Xact(time.Duration(now - s.xStart))
		s.xStart = next
	}
}

// epoch is the origin of nanotime.
var epoch = time.Now()

// nanotime reads the monotonic clock, in nanoseconds since epoch, never 0.
func nanotime() int64 { return int64(time.Since(epoch)) + 1 }

// plan is the plan of sql from this loop's cache.
func (s *session) plan(sql []byte) *planner.Plan { return s.p.plans[s.loop.Index()].Plan(sql) }

// ServerTraffic forwards the server's output to the client, streaming large
// messages, and releases the server at the ReadyForQuery that ends the client's
// transaction. Answers to belay's own messages are dropped and answers it
// owes in the server's stead are slipped in (replies).
func (s *session) ServerTraffic(sc *poolcore.Server, c gnet.Conn) gnet.Action {
	if s.c == nil {
		// The client is parked: its output waits, and it comes back now.
		s.unparkClient()
		return gnet.None
	}
	in := sc.Input()
	data := in.Bytes(c)
	if err := in.Err(); err != nil {
		// A bad TLS record, or Postgres's close_notify: the server is gone.
		s.ServerLost(sc, err)
		sc.Close()
		return gnet.None
	}
	off, seg := 0, 0 // data[seg:off] is forwarded but not yet written
	// Bytes are counted before they are written: whoever sees them
	// arrive sees them counted.
	flush := func() {
		if off > seg {
			s.stats.Sent(off - seg)
			_, _ = s.write(data[seg:off])
		}
		seg = off
	}
	idle := false
	for off < len(data) {
		if s.srvRemain > 0 {
			k := min(s.srvRemain, len(data)-off)
			off += k
			s.srvRemain -= k
			continue
		}
		if s.srvDrop > 0 {
			flush()
			k := min(s.srvDrop, len(data)-off)
			off += k
			seg = off
			s.srvDrop -= k
			continue
		}
		if s.r.synthDue() {
			flush()
			s.writeSynth()
			continue
		}
		typ, bodyLen, err := codec.PeekHeader(data[off:], codec.MaxProtocolMessage)
		if err == codec.ErrShortBuffer {
			break
		}
		lsnRow := typ == codec.MsgDataRow && s.r.lsnDue() // the answer to askLSN
		// after query_timeout's cancel: a cut wait for synchronous replication? (syncrep.go)
		cut := s.qCancelled != 0 && s.qCancelled == s.qStart && (typ == codec.MsgNoticeResponse || typ == codec.MsgCommandComplete)
		whole := typ == codec.MsgReadyForQuery || typ == codec.MsgParameterStatus || typ == codec.MsgErrorResponse || lsnRow || cut
		if err == nil && whole && len(data)-off < 5+bodyLen {
			break // small; wait for all of it
		}
		var fwd bool
		var fix *errFix
		if err == nil {
			if typ == codec.MsgErrorResponse {
				body := data[off+5 : off+5+bodyLen]
				if why := s.nodeGoing(body, seg == off); why != nil {
					// The node is going away, or never got the unit: the
					// client learns what became of its work, or the unit
					// is sent again and the client sees none of this
					// (failover.go).
					if why != errNeverSent && !s.cl.armed {
						flush()
					}
					in.Consume(c, len(data))
					s.nodeLost(sc, why)
					return gnet.None
				}
				s.noteStale(body)
			} else if typ == codec.MsgParseComplete {
				s.noteParsed() // parsed.go
			}
			fwd, fix, err = s.r.answer(typ)
		}
		if err != nil {
			flush()
			in.Consume(c, off)
			s.p.log.Warn("server out of step with its client", "pool", s.key, "err", err)
			s.server = nil
			s.kill(fatalf(sqlstate.ProtocolViolation, "invalid message from server"))
			sc.Close()
			return gnet.None
		}
		if !fwd {
			if typ == codec.MsgReadyForQuery {
				s.t.server(typ, data[off+5])
			}
			if lsnRow {
				s.noteLSN(data[off+5 : off+5+bodyLen])
			}
			if typ == codec.MsgReadyForQuery && s.t.idle() && s.r.empty() {
				// belay's own question was the last thing the server
				// owed (askLSN): the client is idle on it now.
				flush()
				sc.TxStatus, _ = codec.ReadyForQueryStatus(data[off+5 : off+5+bodyLen])
				off += 5 + bodyLen
				seg, idle = off, true
				break
			}
			s.srvDrop = 5 + bodyLen
			continue
		}
		if fix != nil {
			flush()
			b := fixError(s.loop.Scratch(), data[off+5:off+5+bodyLen], fix)
			s.stats.Sent(len(b))
			_, _ = s.write(b)
			s.loop.KeepScratch(b)
			off += 5 + bodyLen
			seg = off
			continue
		}
		if !whole {
			s.t.server(typ, 0)
			off += 5
			s.srvRemain = bodyLen
			continue
		}
		body := data[off+5 : off+5+bodyLen]
		switch typ {
		case codec.MsgParameterStatus:
			if name, _, err := codec.ParseParameterStatus(body); err == nil && s.holdStatus(name, sc) {
				flush()
				seg = off + 5 + bodyLen
			}
			sc.NoteParameterStatus(body)
			off += 5 + bodyLen
			continue
		case codec.MsgErrorResponse:
			off += 5 + bodyLen
			s.t.server(typ, 0)
			continue
		case codec.MsgNoticeResponse, codec.MsgCommandComplete:
			s.t.server(typ, 0)
			if b, ok := s.cutSyncRep(typ, body); ok {
				flush()
				s.writeOwn(b)
				seg = off + 5 + bodyLen
			}
			off += 5 + bodyLen
			continue
		}
		if s.syncRepCut {
			flush()
			s.writeOwn(s.syncRepError()) // syncrep.go: the cut wait was the Sync's commit
		}
		status, _ := codec.ReadyForQueryStatus(body)
		sc.TxStatus = status
		s.t.server(typ, status)
		s.queryDone(status)
		if s.cl != nil && s.t.pending == 0 {
			s.cl.pendTx, s.cl.pendEnd, s.cl.pendUnsure = false, false, false
		}
		if s.t.idle() && s.r.empty() {
			idle = true
			if s.resetting && s.checkState {
				// The ReadyForQuery waits for the startup parameters
				// a RESET took away to be restored (reportHeld).
				flush()
				if s.st == nil {
					s.st = &sessionState{}
				}
				s.st.heldRFQ = status
				seg = off + 5 + bodyLen
			}
			off += 5 + bodyLen
			break
		}
		off += 5 + bodyLen
	}
	flush()
	in.Consume(c, off)
	s.writeSynth()
	if idle {
		// askLSN's answer is in: what the client sent meanwhile goes on
		// (routed anew once the server is released).
		owed := s.cl != nil && s.cl.lsnOwed
		if owed {
			s.cl.lsnOwed = false
		}
		switch {
		case len(s.fns) > 0:
			s.learnFunctions(sc, s.settle)
			return gnet.None
		case s.checkState || s.needLSN():
			s.settle(sc)
			return gnet.None
		case s.t.releasable():
			s.heldBack = false
			s.release(sc)
			if s.in.Buffered(s.c) > 0 { // pipelined input waits for a server
				if s.clientData(s.c) == gnet.Close {
					s.closeClient()
				}
			}
			s.closeIfDrained() // at once, before it starts another transaction
			return gnet.None
		}
		s.closeIfDrained() // pinned, between transactions
		if s.done {
			return gnet.None
		}
		if owed {
			s.resumeWork()
		}
	}
	if s.heldBack && !s.t.busy() && s.r.empty() && s.server == sc {
		// What the client sent for after this answer goes on now
		// (crossing, xshard.go).
		s.heldBack = false
		if s.resumeWork(); s.done || s.c == nil {
			return gnet.None
		}
	}
	if s.p.live.Load().idleTx > 0 && sc.TxStatus != codec.TxIdle && !s.t.busy() {
		s.armIdleTx()
	}
	if s.c.OutboundBuffered() > s.p.cfg.MaxBufferedBytes {
		return s.parkServer(sc, c)
	}
	return gnet.None
}

// armIdleTx starts the idle-in-transaction clock: the client has its
// transaction's results and holds the server. Anything it sends stops the
// clock (forward).
func (s *session) armIdleTx() {
	if s.idleTx == nil {
		s.idleTx = &idleTx{since: time.Now()}
		s.idleTx.timer = time.AfterFunc(s.p.live.Load().idleTx, s.idleTxFired)
		return
	}
	s.idleTx.since = time.Now()
	s.idleTx.timer.Reset(s.p.live.Load().idleTx)
}

// idleTxFired runs on the timer's goroutine and checks on the loop.
func (s *session) idleTxFired() {
	_ = s.loop.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if s.done || s.idleTx.since.IsZero() || s.server == nil || s.t.busy() {
			return nil
		}
		if left := s.p.live.Load().idleTx - time.Since(s.idleTx.since); left > 0 {
			s.idleTx.timer.Reset(left)
			return nil
		}
		// Postgres's words for idle_in_transaction_session_timeout; closed()
		// rolls the transaction back and returns the server to the pool.
		s.kill(fatalf(sqlstate.IdleInTransactionSessionTimeout, "terminating connection due to idle-in-transaction timeout"))
		return nil
	}))
}

// giveBack returns a server the session no longer wants.
func (s *session) giveBack(sc *poolcore.Server) {
	if s.server == sc {
		s.server = nil
	}
	s.pool.Release(sc)
}

// fatal writes a FATAL error to the client and returns the action that
// closes it; for use in the client's own callbacks.
func (s *session) fatal(e codec.ErrorResponse) gnet.Action {
	s.state = sClosing
	if s.c == nil {
		return gnet.Close
	}
	s.writeError(e)
	return s.lingerClose()
}

// write sends b to the client (through TLS when it has it). On the loop.
func (s *session) write(b []byte) (int, error) {
	if s.cl != nil {
		s.cl.armed, s.cl.unsent = false, false // the client saw an answer: its unit can no longer be sent again
	}
	return s.in.Write(s.c, b)
}

// writeError sends e to the client.
func (s *session) writeError(e codec.ErrorResponse) {
	b := codec.AppendErrorResponse(s.loop.Scratch(), e)
	_, _ = s.write(b)
	s.loop.KeepScratch(b)
}

// lingerDuration bounds a lingering close.
const lingerDuration = time.Second

// lingerClose ends a connection whose client may still be sending (the
// message belay refused may be megabytes long). Closing with unread input
// makes the kernel send RST, which can destroy the error before the client
// reads it; so belay shuts down its side once the error is out, discards what
// still comes, and closes at the client's EOF or after lingerDuration.
func (s *session) lingerClose() gnet.Action {
	c := s.c
	if c.OutboundBuffered() > 0 {
		return gnet.Close // gnet flushes what it can on close
	}
	if err := unix.Shutdown(c.Fd(), unix.SHUT_WR); err != nil {
		return gnet.Close
	}
	_, _ = c.Discard(-1)
	el := s.loop.EventLoop()
	time.AfterFunc(lingerDuration, func() {
		_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			if s.c == c {
				_ = el.Close(c)
			}
			return nil
		}))
	})
	return gnet.None
}

// kill is fatal from outside the client's callbacks.
func (s *session) kill(e codec.ErrorResponse) {
	if s.c != nil {
		s.writeError(e)
	}
	s.closeClient()
}

func (s *session) closeClient() {
	s.state = sClosing
	if s.c != nil {
		_ = s.c.Close() // asynchronous: OnClose follows on this loop
		return
	}
	if s.parkedFD >= 0 {
		gnetx.CloseParked(s.parkedFD)
		s.parkedFD = -1
	}
	s.closed()
}

// onClose is gnet's OnClose for the client connection.
func (s *session) onClose() {
	if s.parking {
		s.parking = false
		s.c = nil
		return
	}
	s.c = nil
	s.closed()
}

// closed releases what the client held. A server in the middle of its work is
// drained (pending replies discarded, a running query cancelled, an open
// transaction rolled back) and returns to the pool; only a server that got a
// partial message is closed.
func (s *session) closed() {
	if s.done {
		return
	}
	s.done = true
	s.state = sClosing
	s.loggedIn()
	delete(s.p.sessions[s.loop.Index()], s)
	if s.p.conns.Add(-1) == 0 && s.p.level.Load() != levelNone {
		s.p.kick() // the last client of a shutdown
	}
	if s.idleTx != nil {
		s.idleTx.timer.Stop()
	}
	if s.counted {
		s.counted = false
		s.p.clients.Add(-1)
		s.p.unregister(s.pid)
	}
	if s.cl != nil || s.heldLogin != nil {
		s.leaveCluster()
	} else if s.pool != nil {
		s.pool.Leave(s.loop)
	}
	s.stopWaiting()
	if s.t.pinned {
		s.t.pinned = false
		s.p.pins.Add(-1)
		s.stats.Pinned(-1)
		if s.server != nil {
			s.server.Dirty = true
		}
	}
	s.dropParts()
	if sp := s.spread; sp != nil && sp.copy != nil {
		sp.copy.clientGone()
	}
	ownOwed := s.r.ownSyncs() // before the reset: the drain below waits for them
	sc := s.server
	if sc != nil {
		s.unsettle(sc)
	}
	s.r.reset()
	if sc == nil {
		return
	}
	s.server = nil
	if s.seqTouched {
		sc.SeqMark++ // what it advanced is there for nobody
	}
	if sc.Unnamed == s {
		sc.Unnamed = nil
	}
	if sc.Busy() {
		return // belay's own query: its callback finds the client gone and gives the server back
	}
	if s.cliRemain > maxPad || sc.Conn() == nil {
		if s.cliRemain > 0 {
			sc.Torn()
		}
		sc.Close() // it got a large part of a message, or is parked: Close ends it as politely as it can
		return
	}
	pending := s.t.pending + ownOwed
	var b []byte
	if s.cliRemain > 0 {
		// The client left in the middle of a CopyData: end the message
		// (whatever it holds, the COPY fails next).
		b = append(b, make([]byte, s.cliRemain)...)
		s.cliRemain = 0
	}
	if s.t.copyIn {
		b = codec.AppendCopyFail(b, "client disconnected")
	}
	if s.t.openBatch {
		b = codec.AppendSync(b)
		pending++
	}
	if len(b) > 0 {
		_, _ = sc.Write(b)
	}
	sc.Drain(pending, s.srvRemain)
	s.srvRemain = 0
}

// maxPad is the most of a CopyData message belay completes with zeros for a
// client that left in its middle, so as to end the COPY politely.
const maxPad = 1 << 20

// cancelQuery is a CancelRequest with this client's key, on the loop. A
// query running on a server is cancelled there (poolcore makes sure the
// cancel cannot outlive the query and reach the server's next client); a
// query still waiting for a server is dropped and answered as Postgres
// answers a cancelled one; an idle client has nothing to cancel.
func (s *session) cancelQuery(secret []byte) {
	if len(secret) != 4 || subtle.ConstantTimeCompare(secret, be32(s.secret)) != 1 {
		return
	}
	switch {
	case s.server != nil && s.t.busy():
		s.server.Cancel()
	case (s.waiting || s.cl != nil && s.cl.held) && s.state == sReady && s.c != nil:
		s.cancelWaiting() // waiting for a server, or held for a failover
	}
}

// cancelWaiting drops the first whole unit of work (a Query, or extended
// messages through Sync) of a client waiting for a server, and answers it
// with Postgres's cancel error.
func (s *session) cancelWaiting() {
	if !s.answerUnit(s.c, &errCanceled, "", codec.TxIdle) {
		return // not a whole unit yet: nothing has been asked
	}
	if s.in.Buffered(s.c) == 0 {
		s.stopWaiting()
	}
}

var errCanceled = codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.QueryCanceled,
	Message: "canceling statement due to user request"}

func be32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// --- backpressure -----------------------------------------------------------

// parkServer stops reading the server while the client's output is over the
// bound. From the server's callback c.
func (s *session) parkServer(sc *poolcore.Server, c gnet.Conn) gnet.Action {
	s.armPoll()
	if sc.Conn().OutboundBuffered() > 0 {
		return gnet.None // gnet would drop unsent bytes on close: retry later
	}
	closeIt, err := sc.Park(c)
	if err != nil {
		s.p.log.Warn("cannot park server", "err", err)
		return gnet.None
	}
	s.p.parks.Add(1)
	if closeIt {
		return gnet.Close
	}
	return gnet.None
}

// parkClient stops reading the client. From the client's callback c.
func (s *session) parkClient(c gnet.Conn) gnet.Action {
	s.armPoll()
	if c.OutboundBuffered() > 0 {
		if s.in.Buffered(c) > 4*s.p.cfg.MaxBufferedBytes {
			// It neither reads its results nor stops sending.
			s.p.log.Warn("closing a client that sends without reading", "remote", c.RemoteAddr())
			return gnet.Close
		}
		return gnet.None
	}
	fd, err := gnetx.Park(c)
	if err != nil {
		return gnet.None
	}
	s.in.Save(c)
	s.parkedFD = fd
	s.parking = true
	s.p.parks.Add(1)
	if s.inCB {
		return gnet.Close
	}
	_ = c.EventLoop().Close(c) // OnClose runs now and sees the park
	return gnet.None
}

func (s *session) unparkClient() {
	if s.parkedFD < 0 || s.c != nil || s.parking {
		return
	}
	fd := s.parkedFD
	s.parkedFD = -1
	if err := gnetx.Resume(s.loop.EventLoop(), fd, s); err != nil {
		s.p.log.Warn("cannot resume client", "err", err)
		s.closed()
	}
}

// reopened is OnOpen of a resumed client connection.
func (s *session) reopened(c gnet.Conn) gnet.Action {
	s.c = c
	if s.state == sClosing {
		return gnet.Close
	}
	if sc := s.server; sc != nil && sc.Conn() != nil && sc.Input().Buffered(sc.Conn()) > 0 {
		if s.ServerTraffic(sc, sc.Conn()) == gnet.Close {
			_ = sc.Conn().EventLoop().Close(sc.Conn())
		}
	}
	return s.onTraffic(c)
}

// armPoll checks parked connections again shortly: gnet tells nobody when an
// outbound buffer drains.
func (s *session) armPoll() {
	if s.pollArmed {
		return
	}
	s.pollArmed = true
	el := s.loop.EventLoop()
	time.AfterFunc(time.Millisecond, func() {
		_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			s.pollArmed = false
			s.poll()
			return nil
		}))
	})
}

// serverOutbound is the most bytes a server of the client's has yet to
// take: its own (a parked one counts as full), or a COPY's legs'.
func (s *session) serverOutbound() int {
	if sp := s.spread; sp != nil && sp.copy != nil {
		return sp.copy.outbound()
	}
	switch sc := s.server; {
	case sc == nil:
		return 0
	case sc.Conn() == nil:
		return math.MaxInt
	default:
		return sc.Conn().OutboundBuffered()
	}
}

func (s *session) poll() {
	if s.state == sClosing {
		return
	}
	low := s.p.cfg.MaxBufferedBytes / 4
	again := false
	if sc := s.server; sc != nil && sc.Parked() {
		if s.c != nil && s.c.OutboundBuffered() <= low {
			if err := sc.Unpark(); err != nil {
				return
			}
		} else {
			again = true
		}
	}
	if s.c == nil && s.parkedFD >= 0 {
		if s.serverOutbound() <= low {
			s.unparkClient()
		} else {
			again = true
		}
	}
	if s.c != nil && s.server != nil && s.server.Conn() != nil && !s.server.Parked() &&
		s.c.OutboundBuffered() > s.p.cfg.MaxBufferedBytes {
		// A park that had to wait for the server's outbound buffer to empty.
		if a := s.parkServer(s.server, nil); a == gnet.Close {
			_ = s.server.Conn().EventLoop().Close(s.server.Conn())
		}
		again = true
	}
	if again {
		s.armPoll()
	}
}
