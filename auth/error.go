package auth

import "github.com/belaydb/belay/codec/sqlstate"

// Error is an authentication error to report to a client: a SQLSTATE, the
// message as PostgreSQL words it (errmsg) and, optionally, its errdetail.
type Error struct {
	Code    sqlstate.Code
	Message string
	Detail  string // errdetail; may be empty
}

func (e *Error) Error() string {
	s := e.Message
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s + " (SQLSTATE " + string(e.Code) + ")"
}

// PasswordFailed is the error PostgreSQL reports for a wrong password, an
// unknown user or a failed SCRAM proof, with the user's name in it:
// 28P01 `password authentication failed for user "name"`.
func PasswordFailed(user string) *Error {
	return &Error{Code: sqlstate.InvalidPassword, Message: `password authentication failed for user "` + user + `"`}
}

func malformed(detail string) *Error {
	return &Error{Code: sqlstate.ProtocolViolation, Message: "malformed SCRAM message", Detail: detail}
}
