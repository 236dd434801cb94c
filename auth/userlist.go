package auth

import (
	"fmt"
	"io"
	"strings"
)

const (
	// MaxUserlistSize bounds the auth_file ParseUserlist reads.
	MaxUserlistSize = 64 << 20
	// pgbouncerMaxUsername and pgbouncerMaxPassword are PgBouncer's
	// MAX_USERNAME and MAX_PASSWORD: a quoted field (escapes included) must be
	// shorter.
	pgbouncerMaxUsername = 128
	pgbouncerMaxPassword = 2048
)

// ParseUserlist parses a PgBouncer auth_file ("userlist.txt") as PgBouncer's
// load_auth_file does:
//
//	"user" "secret" anything else on the line is ignored
//
// Whitespace (blank lines included) is skipped; a line starting with ';' is a
// comment. Inside a field "" is an escaped quote. Like PgBouncer, the parser
// works on the whole file, not line by line: anything (newlines included)
// between the user's closing quote and the secret's opening quote is
// skipped, and a quoted field may span lines; the file ends at its first NUL
// byte. A later entry for the same user replaces an earlier one. Each
// secret is classified by ParseSecret.
//
// Where PgBouncer logs "broken auth file" (a line that starts with neither a
// quote nor ';', a missing quote) or "username/password too long in auth
// file" (a quoted field of 128/2048 bytes or more) and stops reading, keeping
// the users read so far, ParseUserlist returns those users together with an
// error naming the line; the caller decides whether to use them (PgBouncer
// does). A read error returns nil and the error.
func ParseUserlist(r io.Reader) (map[string]Secret, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxUserlistSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxUserlistSize {
		return nil, fmt.Errorf("auth file: larger than %d bytes", MaxUserlistSize)
	}
	buf := string(data)
	if i := strings.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	users := make(map[string]Secret)
	line := func(p int) int { return 1 + strings.Count(buf[:p], "\n") }
	broken := func(p int, what string) (map[string]Secret, error) {
		return users, fmt.Errorf("auth file line %d: %s", line(p), what)
	}
	// quoted reads the field whose opening quote is at buf[open]: its raw
	// text and the position after its closing quote, or what is wrong.
	quoted := func(open int, unterminated, tooLong string, max int) (field string, next int, err string) {
		start := open + 1
		end := findQuote(buf, start, false)
		switch {
		case end >= len(buf):
			return "", 0, "broken auth file (" + unterminated + ")"
		case end-start >= max:
			return "", 0, tooLong
		}
		return buf[start:end], end + 1, ""
	}
	p := 0
	for p < len(buf) {
		for p < len(buf) && isCSpace(buf[p]) {
			p++
		}
		if p >= len(buf) {
			break
		}
		if buf[p] == ';' {
			for p < len(buf) && buf[p] != '\n' {
				p++
			}
			continue
		}
		if buf[p] != '"' {
			return broken(p, "broken auth file (a line must start with a double quote or ';')")
		}
		user, next, err := quoted(p, "unterminated user name", "username too long in auth file", pgbouncerMaxUsername)
		if err != "" {
			return broken(p, err)
		}
		p = findQuote(buf, next, true)
		if p >= len(buf) {
			return broken(next, "broken auth file (no password field)")
		}
		pw, next, err := quoted(p, "unterminated password", "password too long in auth file", pgbouncerMaxPassword)
		if err != "" {
			return broken(p, err)
		}
		p = next
		users[unquote(user)] = ParseSecret(unquote(pw))
		for p < len(buf) && buf[p] != '\n' {
			p++
		}
	}
	return users, nil
}

// findQuote is PgBouncer's find_quote: the position of the next '"' from p,
// skipping escaped ("") ones unless start; len(s) if there is none.
func findQuote(s string, p int, start bool) int {
	for {
		for p < len(s) && s[p] != '"' {
			p++
		}
		if p+1 < len(s) && s[p] == '"' && s[p+1] == '"' && !start {
			p += 2
			continue
		}
		return p
	}
}

// unquote is PgBouncer's copy_quoted: a '"' is dropped and the byte after
// it copied (so "" becomes ").
func unquote(s string) string {
	if strings.IndexByte(s, '"') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			i++
			if i >= len(s) {
				break
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}
