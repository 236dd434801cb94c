// Package sqlstate holds the SQLSTATE error codes of PostgreSQL, generated
// from Postgres's errcodes.txt (see gen.go for its origin and the naming
// rules), so that errors sent to clients carry a real code and callers compare
// codes rather than match message strings.
//
// It is pure data: no I/O, no goroutines, safe for concurrent use. It never
// imports anything of belay.
package sqlstate

//go:generate go run gen.go

// Code is a five-character SQLSTATE, such as "08P01".
type Code string

// Name returns the condition name of c as Postgres's documentation and
// PL/pgSQL spell it, such as "protocol_violation", or "" if c is not a code
// this package knows.
func (c Code) Name() string { return name(c) }

// Class returns the class of c: its first two characters, such as "08" for
// ProtocolViolation ("08P01"). It returns "" if c is not five characters long.
// Code(c.Class() + "000") is the generic code of the class.
func (c Code) Class() string {
	if len(c) != 5 {
		return ""
	}
	return string(c[:2])
}

// String returns the code itself.
func (c Code) String() string { return string(c) }
