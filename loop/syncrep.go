package loop

import (
	"bytes"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
)

// query_timeout and synchronous replication (issue H, item 5). A cancel
// that reaches a backend waiting for its commit to be replicated
// (synchronous_commit with synchronous_standby_names) does not undo the
// commit: Postgres warns "canceling wait for synchronous replication due
// to user request", the transaction "has already committed locally, but
// might not have been replicated to the standby", and reports the
// statement complete. After a failover that commit may be gone, so a
// success would be a lie. When the query belay's own query_timeout
// cancelled gets that warning, belay drops it and answers the statement's
// CommandComplete with ERROR 08007 (transaction_resolution_unknown)
// instead: the commit is visible on the primary but not known durable.
// The warning is recognized by its routine (SyncRepWaitForLSN), which
// Postgres does not translate. A cancel of the client's own
// (CancelRequest) is passed on as Postgres answers it.

// cutSyncRep looks at a NoticeResponse or CommandComplete of a query
// query_timeout cancelled: it returns what the client gets instead (nil:
// nothing), and false when the message goes on as it is. On the loop.
func (s *session) cutSyncRep(typ byte, body []byte) ([]byte, bool) {
	switch typ {
	case codec.MsgNoticeResponse:
		f, err := codec.ParseErrorFields(body)
		if err == nil && bytes.Equal(f.Routine, []byte("SyncRepWaitForLSN")) && bytes.Equal(f.SeverityNonLocalized, []byte("WARNING")) {
			s.syncRepCut = true
			return nil, true
		}
	case codec.MsgCommandComplete:
		if s.syncRepCut {
			return s.syncRepError(), true
		}
	}
	return nil, false
}

// syncRepError is the 08007 a commit whose wait query_timeout cut gets:
// in the place of its CommandComplete (a simple Query commits before
// it), or before the ReadyForQuery (an extended batch commits at its
// Sync, after the Execute's CommandComplete).
func (s *session) syncRepError() []byte {
	s.syncRepCut = false
	s.p.log.Warn("query_timeout cut a commit's wait for synchronous replication: answered 08007", "user", s.key.User, "database", s.key.Database)
	return codec.AppendErrorResponse(s.loop.Scratch(), codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.TransactionResolutionUnknown,
		Message: "query_timeout cancelled the wait for synchronous replication: the transaction committed on the primary but is not known to be replicated",
		Detail:  "belay's query_timeout cancelled the statement while its commit waited for a synchronous standby."})
}

// writeOwn sends the client b, an answer of belay's own from the loop's
// scratch buffer.
func (s *session) writeOwn(b []byte) {
	if len(b) == 0 {
		return
	}
	s.stats.Sent(len(b))
	_, _ = s.write(b)
	s.loop.KeepScratch(b)
}
