package loop

import (
	"fmt"
	"sort"
	"strings"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
)

type startupKind uint8

const (
	startupNeedMore startupKind = iota // not a whole packet yet
	startupSSL                         // SSLRequest: answer 'N' (TLS comes with issue B)
	startupGSS                         // GSSENCRequest: answer 'N'
	startupCancel                      // CancelRequest
	startupLogin                       // StartupMessage
	startupReject                      // answer err and close
)

// startup is what one startup-phase packet asks for. Pure data.
type startup struct {
	kind startupKind
	n    int // bytes the packet occupies
	err  codec.ErrorResponse

	// StartupMessage
	user, database string
	params         []param // other parameters, sorted by name, names lower-cased
	minor          uint32  // requested protocol minor version
	unrecognized   []string

	// CancelRequest
	cancelPID uint32
	cancelKey []byte
}

type param struct{ name, value string }

func reject(code sqlstate.Code, format string, args ...any) startup {
	return startup{kind: startupReject, err: fatalf(code, format, args...)}
}

// parseStartup decodes the packet at the start of b, as Postgres's
// ProcessStartupPacket does, with Postgres's own errors and SQLSTATEs.
func parseStartup(b []byte) startup {
	code, body, n, err := codec.ReadStartupPacket(b)
	switch {
	case err == codec.ErrShortBuffer:
		return startup{kind: startupNeedMore}
	case err != nil:
		return reject(sqlstate.ProtocolViolation, "invalid length of startup packet")
	}
	switch code {
	case codec.SSLRequestCode:
		return startup{kind: startupSSL, n: n}
	case codec.GSSENCRequestCode:
		return startup{kind: startupGSS, n: n}
	case codec.CancelRequestCode:
		pid, key, err := codec.ParseCancelRequest(body)
		if err != nil {
			return reject(sqlstate.ProtocolViolation, "invalid length of startup packet")
		}
		return startup{kind: startupCancel, n: n, cancelPID: pid, cancelKey: key}
	}
	major, minor := code>>16, code&0xffff
	if major != 3 {
		return reject(sqlstate.FeatureNotSupported,
			"unsupported frontend protocol %d.%d: server supports 3.0 to 3.0", major, minor)
	}
	s := startup{kind: startupLogin, n: n, minor: minor}
	var bad error
	perr := codec.StartupParams(body, func(k, v []byte) {
		key := string(k)
		switch {
		case key == "user":
			s.user = string(v)
		case key == "database":
			s.database = string(v)
		case strings.HasPrefix(key, "_pq_."):
			s.unrecognized = append(s.unrecognized, key)
		case key == "replication":
			switch strings.ToLower(string(v)) {
			case "false", "off", "no", "0":
			default:
				bad = errReplication
			}
		case key == "options":
			opts, err := parseOptions(string(v))
			if err != nil {
				bad = err
			}
			s.params = append(s.params, opts...)
		default:
			s.params = append(s.params, param{strings.ToLower(key), string(v)})
		}
	})
	switch {
	case perr != nil:
		return reject(sqlstate.ProtocolViolation, "invalid startup packet layout: expected terminator as last byte")
	case bad == errReplication:
		return reject(sqlstate.FeatureNotSupported, "belay does not proxy replication connections")
	case bad != nil:
		return reject(sqlstate.FeatureNotSupported, "%v", bad)
	case s.user == "":
		return reject(sqlstate.InvalidAuthorizationSpecification, "no PostgreSQL user name specified in startup packet")
	}
	if s.database == "" {
		s.database = s.user
	}
	// Later values win, as in Postgres; then a stable order.
	sort.SliceStable(s.params, func(i, j int) bool { return s.params[i].name < s.params[j].name })
	out := s.params[:0]
	for i, p := range s.params {
		if i+1 < len(s.params) && s.params[i+1].name == p.name {
			continue
		}
		out = append(out, p)
	}
	s.params = out
	return s
}

var errReplication = fmt.Errorf("replication")

// parseOptions reads the "options" startup parameter: -c name=value and
// --name=value, separated by spaces (backslash escapes a space).
func parseOptions(s string) ([]param, error) {
	var words []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == ' ' || c == '\t' || c == '\n':
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	var out []param
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-c" && i+1 < len(words):
			i++
			w = words[i]
		case strings.HasPrefix(w, "-c"):
			w = w[2:]
		case strings.HasPrefix(w, "--"):
			w = w[2:]
		default:
			return nil, fmt.Errorf("unsupported startup option %q (belay accepts -c name=value and --name=value)", w)
		}
		name, value, ok := strings.Cut(w, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("invalid startup option %q", w)
		}
		out = append(out, param{strings.ToLower(strings.ReplaceAll(name, "-", "_")), value})
	}
	return out, nil
}

// startupSQL is settingsSQL of a client's startup parameters.
func startupSQL(params []param) string {
	set := make([]setting, len(params))
	for i, p := range params {
		set[i] = setting{p.name, p.value}
	}
	return settingsSQL(sortSettings(set))
}

// applySQL moves a server from the state of signature from to that of to.
func applySQL(from, to string) string {
	if from == "" {
		return to
	}
	return "RESET ALL;" + to
}
