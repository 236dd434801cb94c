package planner

import "strings"

// Class is what kind of statement a plan holds; see Plan.Class for how the
// classes of several statements combine.
type Class uint8

const (
	// ClassUnknown: did not parse. The proxy forwards it and Postgres reports
	// the error.
	ClassUnknown Class = iota
	// ClassRead: SELECT, VALUES, TABLE, SHOW, EXPLAIN (without ANALYZE of a
	// write) with nothing that writes.
	ClassRead
	// ClassWrite: INSERT, UPDATE, DELETE, MERGE, SELECT ... FOR UPDATE/SHARE,
	// a data-modifying CTE, SELECT INTO, CALL, DO, a call of a function known
	// to write (nextval, setval, pg_advisory_*, set_config, lo_*, pg_notify,
	// txid_current, ...).
	ClassWrite
	// ClassTxControl: BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK,
	// SAVEPOINT, RELEASE, ROLLBACK TO, PREPARE TRANSACTION, COMMIT PREPARED,
	// ROLLBACK PREPARED.
	ClassTxControl
	// ClassSession: SET, RESET, PREPARE, EXECUTE, DEALLOCATE, LISTEN,
	// UNLISTEN, NOTIFY, DISCARD, LOAD, DECLARE, CLOSE, FETCH, MOVE.
	ClassSession
	// ClassUtility: DDL, VACUUM, ANALYZE, COPY, GRANT, CHECKPOINT and
	// everything else.
	ClassUtility
)

var classNames = [...]string{"Unknown", "Read", "Write", "TxControl", "Session", "Utility"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "Class(?)"
}

// rank orders classes by strength: Write > Utility > Session > TxControl > Read.
func (c Class) rank() int {
	switch c {
	case ClassRead:
		return 1
	case ClassTxControl:
		return 2
	case ClassSession:
		return 3
	case ClassUtility:
		return 4
	case ClassWrite:
		return 5
	}
	return 0
}

// Effect is a bit set of what a statement does beyond its own transaction.
type Effect uint32

const (
	// EffGUC: may change a session GUC: SET/RESET (not SET LOCAL, not SET
	// TRANSACTION), SET SESSION CHARACTERISTICS, RESET ALL, DISCARD ALL, a
	// call of set_config whose third argument is not the constant true.
	EffGUC Effect = 1 << iota
	// EffPrepare: SQL PREPARE (Stmt.Name).
	EffPrepare
	// EffExecute: SQL EXECUTE (Stmt.Name) at top level.
	EffExecute
	// EffDeallocate: DEALLOCATE [PREPARE] name (Stmt.Name).
	EffDeallocate
	// EffDeallocateAll: DEALLOCATE [PREPARE] ALL.
	EffDeallocateAll
	// EffDiscardAll: DISCARD ALL.
	EffDiscardAll
	// EffListen: LISTEN.
	EffListen
	// EffTemp: creates or uses temporary objects: CREATE TEMP/TEMPORARY ...,
	// SELECT INTO TEMP, CREATE TEMP TABLE AS, any pg_temp.x reference.
	EffTemp
	// EffHoldCursor: DECLARE ... WITH HOLD.
	EffHoldCursor
	// EffAdvisoryLock: a session-level advisory lock call: pg_advisory_lock,
	// pg_advisory_lock_shared, pg_try_advisory_lock,
	// pg_try_advisory_lock_shared (not the _xact_ ones).
	EffAdvisoryLock
	// EffRole: SET ROLE x / SET SESSION AUTHORIZATION x (not LOCAL; not
	// NONE/DEFAULT).
	EffRole
	// EffLoad: LOAD.
	EffLoad
	// EffMayRelease: may release pinned state: UNLISTEN, DISCARD (any),
	// CLOSE, pg_advisory_unlock*, RESET ROLE, SET ROLE NONE, RESET SESSION
	// AUTHORIZATION, SET SESSION AUTHORIZATION DEFAULT, RESET ALL, DROP (any).
	EffMayRelease
	// EffReset: puts settings back to their defaults: RESET x, SET x TO
	// DEFAULT, RESET ALL, DISCARD ALL (the defaults a client's own startup
	// parameters set, which a proxy must restore itself).
	EffReset
	// EffFunctionDDL: creates, changes or drops functions (CREATE/ALTER/DROP
	// FUNCTION, PROCEDURE, ROUTINE, AGGREGATE, their renames and moves,
	// extensions, DROP SCHEMA): what a cache knows of functions' volatility
	// may no longer hold (Cache.InvalidateFunctions).
	EffFunctionDDL
	// EffPreparedView: reads the view pg_prepared_statements, whose rows
	// are the session's prepared statements (Plan.PreparedViews).
	EffPreparedView
	// EffCurrval: reads the session's sequence state: currval, lastval.
	EffCurrval
	// EffNextval: calls nextval or setval, which currval and lastval then
	// report.
	EffNextval
	// EffMayAdvance: may call nextval or setval in the session: explicitly
	// (EffNextval), or, conservatively, through column defaults and
	// triggers (any write, COPY, DDL, a text that did not parse), CALL, DO,
	// EXECUTE, or a user function.
	EffMayAdvance
	// EffDiscardSeq: forgets what currval and lastval report: DISCARD
	// SEQUENCES, DISCARD ALL.
	EffDiscardSeq
	// EffReadOnlyTx: begins a transaction that is read only: BEGIN READ
	// ONLY, START TRANSACTION READ ONLY (a replica can run it whole).
	EffReadOnlyTx

	effLast = EffReadOnlyTx
)

// EffPin is state that cannot follow a client to another server.
const EffPin = EffListen | EffTemp | EffHoldCursor | EffAdvisoryLock | EffRole | EffLoad

// Bits of the lexical scanner SessionEffects, the fallback of Parse for text
// pg_query cannot parse (fromLegacy maps them to Eff bits). They live at the
// top of the word so that they never collide with the Eff bits above; Parse
// never returns them.
const (
	// EffectSession: the statement leaves state on the server session
	// (SET, PREPARE, LISTEN, temp objects, held cursors, session locks, ...).
	EffectSession Effect = 1 << 30
	// EffectReset: the statement resets the session (DISCARD, RESET ALL).
	EffectReset Effect = 1 << 31
)

var effNames = [...]string{"GUC", "Prepare", "Execute", "Deallocate", "DeallocateAll", "DiscardAll",
	"Listen", "Temp", "HoldCursor", "AdvisoryLock", "Role", "Load", "MayRelease", "Reset", "FunctionDDL",
	"PreparedView", "Currval", "Nextval", "MayAdvance", "DiscardSeq", "ReadOnlyTx"}

// String lists the set bits, e.g. "GUC|Temp"; "0" for none.
func (e Effect) String() string {
	if e == 0 {
		return "0"
	}
	var b strings.Builder
	add := func(s string) {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString(s)
	}
	for i, n := range effNames {
		if e&(1<<i) != 0 {
			add(n)
		}
	}
	if e&EffectSession != 0 {
		add("legacySession")
	}
	if e&EffectReset != 0 {
		add("legacyReset")
	}
	return b.String()
}

// fromLegacy maps the lexical scanner's bits conservatively onto Eff bits:
// anything session-ish may pin and may change a GUC; a reset may release.
func fromLegacy(e Effect) Effect {
	var out Effect
	if e&EffectSession != 0 {
		out |= EffPin | EffGUC
	}
	if e&EffectReset != 0 {
		out |= EffMayRelease
	}
	return out
}

// Volatility is what the server says of a function (pg_proc.provolatile).
type Volatility uint8

const (
	VolatilityUnknown   Volatility = iota // not known yet: a plan calling it is not ReplicaOK
	VolatilityImmutable                   // 'i'
	VolatilityStable                      // 's'
	VolatilityVolatile                    // 'v': may write, so not ReplicaOK
)
