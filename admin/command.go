package admin

import (
	"strings"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/config"
)

// Verb is what a console command does.
type Verb uint8

const (
	VerbShow Verb = iota + 1
	VerbSet
	VerbPause
	VerbResume
	VerbSuspend
	VerbDisable
	VerbEnable
	VerbReconnect
	VerbKill
	VerbKillClient
	VerbWaitClose
	VerbReload
	VerbShutdown
	VerbSwitchover
)

// verbs maps the first word of a command to its verb.
var verbs = map[string]Verb{
	"SHOW": VerbShow, "SET": VerbSet, "PAUSE": VerbPause, "RESUME": VerbResume,
	"SUSPEND": VerbSuspend, "DISABLE": VerbDisable, "ENABLE": VerbEnable,
	"RECONNECT": VerbReconnect, "KILL": VerbKill, "KILL_CLIENT": VerbKillClient,
	"WAIT_CLOSE": VerbWaitClose, "RELOAD": VerbReload, "SHUTDOWN": VerbShutdown,
	"SWITCHOVER": VerbSwitchover,
}

// argRule is how many arguments a verb takes: none, an optional one, or
// exactly one.
type argRule uint8

const (
	argNone argRule = iota
	argOptional
	argOne
)

var argRules = map[Verb]argRule{
	VerbShow: argOne, VerbPause: argOptional, VerbResume: argOptional, VerbSuspend: argNone,
	VerbDisable: argOne, VerbEnable: argOne, VerbReconnect: argOptional, VerbKill: argOne,
	VerbKillClient: argOne, VerbWaitClose: argOptional, VerbReload: argNone, VerbShutdown: argOptional,
	VerbSwitchover: argOptional,
}

// Command is a parsed console command.
type Command struct {
	Verb Verb
	// Arg is SHOW's subject (upper case), the database of PAUSE, KILL, ...
	// (as written, or unquoted), SHUTDOWN's mode (upper case), or SET's key
	// (lower case). Empty when an optional argument is absent.
	Arg string
	// Value is SET's value, unquoted.
	Value string
	// Text is the command as the client sent it, trimmed, for messages.
	Text string
}

// Error is a console error with its SQLSTATE.
type Error struct {
	Code    sqlstate.Code
	Message string
}

func (e *Error) Error() string { return e.Message }

func errorf(code sqlstate.Code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Parse reads one console command. Keywords are case-insensitive; a
// database name may be double-quoted; trailing semicolons and spaces are
// ignored. Anything else is PgBouncer's "invalid command" (08P01).
func Parse(sql string) (Command, error) {
	text := strings.TrimSpace(sql)
	for strings.HasSuffix(text, ";") {
		text = strings.TrimSpace(strings.TrimSuffix(text, ";"))
	}
	invalid := errorf(sqlstate.ProtocolViolation, "invalid command '"+text+"', use SHOW HELP;")
	words, ok := splitWords(text)
	if !ok || len(words) == 0 {
		return Command{}, invalid
	}
	verb, known := verbs[strings.ToUpper(words[0])]
	if !known {
		return Command{}, invalid
	}
	cmd := Command{Verb: verb, Text: text}
	if verb == VerbSet {
		return parseSet(cmd, text[len(words[0]):], invalid)
	}
	args := words[1:]
	switch rule := argRules[verb]; {
	case len(args) > 1,
		rule == argNone && len(args) > 0,
		rule == argOne && len(args) == 0:
		return Command{}, invalid
	}
	if len(args) == 1 {
		cmd.Arg = args[0]
	}
	switch verb {
	case VerbShow:
		cmd.Arg = strings.ToUpper(cmd.Arg)
	case VerbShutdown:
		cmd.Arg = strings.ToUpper(cmd.Arg)
		if cmd.Arg != "" && cmd.Arg != "WAIT_FOR_CLIENTS" && cmd.Arg != "WAIT_FOR_SERVERS" {
			return Command{}, invalid
		}
	}
	return cmd, nil
}

// parseSet reads "key = value" (or "key to value"); the value may be
// single-quoted with ” for a quote.
func parseSet(cmd Command, rest string, invalid error) (Command, error) {
	rest = strings.TrimSpace(rest)
	i := strings.IndexAny(rest, "= \t")
	if i <= 0 {
		return Command{}, invalid
	}
	cmd.Arg = strings.ToLower(rest[:i])
	rest = strings.TrimSpace(rest[i:])
	switch {
	case strings.HasPrefix(rest, "="):
		rest = strings.TrimSpace(rest[1:])
	case len(rest) > 3 && strings.EqualFold(rest[:3], "to "):
		rest = strings.TrimSpace(rest[3:])
	default:
		return Command{}, invalid
	}
	if strings.HasPrefix(rest, "'") {
		if len(rest) < 2 || !strings.HasSuffix(rest, "'") {
			return Command{}, invalid
		}
		inner := rest[1 : len(rest)-1]
		if strings.Contains(strings.ReplaceAll(inner, "''", ""), "'") {
			return Command{}, invalid
		}
		cmd.Value = strings.ReplaceAll(inner, "''", "'")
		return cmd, nil
	}
	if rest == "" || strings.ContainsAny(rest, " \t'") {
		return Command{}, invalid
	}
	cmd.Value = rest
	return cmd, nil
}

// splitWords splits on blanks, keeping a double-quoted word whole (and
// unquoted, with "" for a quote).
func splitWords(s string) ([]string, bool) {
	var out []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"':
			word, n, ok := config.Unquote(s[i:])
			if !ok || word == "" {
				return nil, false
			}
			out = append(out, word)
			i += n
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r\"", rune(s[j])) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out, true
}
