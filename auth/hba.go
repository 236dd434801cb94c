package auth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/belaydb/belay/internal/config"
)

// HBAConn describes a connection for HBA.Method.
type HBAConn struct {
	Local    bool       // a Unix-domain socket
	TLS      bool       // TLS is in use (hostssl / hostnossl)
	Addr     netip.Addr // the client's address (ignored when Local); IPv4-mapped IPv6 matches IPv4 rules
	Database string
	User     string
}

// HBA is a parsed pg_hba.conf in PgBouncer's subset (auth_hba_file). It is
// immutable and safe for concurrent use.
type HBA struct {
	rules []hbaRule
}

type connType uint8

const (
	typeLocal connType = iota
	typeHost
	typeHostSSL
	typeHostNoSSL
)

type hbaNames struct {
	all, sameUser bool
	names         map[string]struct{}
}

func (n *hbaNames) match(name, pair string) bool {
	if n.all || n.sameUser && name == pair {
		return true
	}
	_, ok := n.names[name]
	return ok
}

type hbaRule struct {
	typ    connType
	db     hbaNames
	user   hbaNames
	is4    bool
	addr   [16]byte // already masked
	mask   [16]byte
	method string
	line   int
}

// The methods ParseHBA accepts (PgBouncer's auth_type values that work per
// rule, plus peer and reject), as Method returns them.
var hbaMethods = map[string]bool{
	"trust": true, "reject": true, "md5": true, "password": true,
	"scram-sha-256": true, "cert": true, "peer": true,
}

const (
	maxHBAInclude = 16      // nesting of @file includes
	maxHBALine    = 1 << 20 // bytes in one line
	maxHBASize    = 64 << 20
)

// LoadHBA reads and parses the HBA file at path; @file includes are
// resolved relative to its directory.
func LoadHBA(path string) (*HBA, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := ParseHBA(f, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// ParseHBA parses a pg_hba.conf in the subset PgBouncer supports for
// auth_hba_file:
//
//	local      DATABASE USER         METHOD [OPTIONS]
//	host       DATABASE USER ADDRESS METHOD [OPTIONS]
//	hostssl    DATABASE USER ADDRESS METHOD [OPTIONS]
//	hostnossl  DATABASE USER ADDRESS METHOD [OPTIONS]
//
// DATABASE and USER are comma-separated lists of names, quoted ("a""b") or
// not, "all", "@file" (names read from file, relative to dir, or to the
// including file's directory when nested; '#' comments and several lines
// allowed, names separated by commas or whitespace), and for DATABASE "sameuser" (database name equal to the user
// name). Quoted "all" or "sameuser" are plain names. ADDRESS is an IPv4 or
// IPv6 address with /bits or followed by a separate mask. METHOD is one of
// trust, reject, md5, password, scram-sha-256, cert, peer. '#' starts a
// comment.
//
// Differences from PgBouncer, all of them failing closed or louder:
//   - A line PgBouncer cannot parse is logged and skipped there; here it is
//     an error naming the line, and nothing is returned (a skipped "reject"
//     line would let in whom it was written to keep out). So are +group,
//     samerole, samegroup and replication, which PgBouncer does not
//     support, and host names, samehost and samenet.
//   - Options after the method (map=..., clientcert=...) are ignored where
//     PgBouncer rejects the line. Ignoring map= makes peer and cert stricter
//     (the OS or certificate user must equal the database user), never
//     looser.
//   - An address with bits set outside its mask (10.1.2.3/8) is masked, as
//     PostgreSQL does (PgBouncer warns and the rule then never matches).
//   - "sameuser" is a keyword only in the DATABASE column (PgBouncer also
//     takes it, and samerole etc., as keywords in the USER column).
//
// As in PgBouncer, peer is not refused on host lines nor cert on host lines
// without TLS: the caller must fail such a login (peer needs a Unix socket,
// cert a client certificate).
func ParseHBA(r io.Reader, dir string) (*HBA, error) {
	h := &HBA{}
	err := scanLines(r, func(n int, line string) error {
		rule, ok, err := parseHBALine(line, dir)
		if err != nil {
			return fmt.Errorf("hba line %d: %w", n, err)
		}
		if ok {
			rule.line = n
			h.rules = append(h.rules, rule)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

func scanLines(r io.Reader, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(io.LimitReader(r, maxHBASize))
	sc.Buffer(make([]byte, 0, 4096), maxHBALine)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Text()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", n+1, err)
	}
	return nil
}

// Method returns the method of the first rule that matches c; ok=false when
// none does (PgBouncer then rejects the login).
func (h *HBA) Method(c HBAConn) (method string, ok bool) {
	if h == nil {
		return "", false
	}
	addr := c.Addr.Unmap()
	for i := range h.rules {
		r := &h.rules[i]
		if c.Local != (r.typ == typeLocal) {
			continue
		}
		if !c.Local {
			if r.typ == typeHostSSL && !c.TLS || r.typ == typeHostNoSSL && c.TLS {
				continue
			}
			if !addr.IsValid() || addr.Is4() != r.is4 {
				continue
			}
			a := addr.As16()
			match := true
			for j := range a {
				if a[j]&r.mask[j] != r.addr[j] {
					match = false
					break
				}
			}
			if !match {
				continue
			}
		}
		if !r.db.match(c.Database, c.User) || !r.user.match(c.User, c.Database) {
			continue
		}
		return r.method, true
	}
	return "", false
}

// Tokens.

type tokKind uint8

const (
	tokIdent tokKind = iota
	tokString
	tokComma
)

type token struct {
	kind tokKind
	s    string
}

// tokenize splits a line as PgBouncer's next_token does: whitespace
// separates, ',' is a token, '#' ends the line, "..." is a quoted string
// with "" for a quote, anything else an identifier up to whitespace, ',',
// '#' or '"'.
func tokenize(line string) ([]token, error) {
	var toks []token
	p := 0
	for {
		for p < len(line) && isCSpace(line[p]) {
			p++
		}
		if p >= len(line) || line[p] == '#' || line[p] == 0 {
			return toks, nil
		}
		switch c := line[p]; c {
		case ',':
			toks = append(toks, token{kind: tokComma})
			p++
		case '"':
			word, n, ok := config.Unquote(line[p:])
			if !ok {
				return nil, errors.New("unterminated quoted string")
			}
			toks = append(toks, token{kind: tokString, s: word})
			p += n
		default:
			q := p + 1
			for q < len(line) && line[q] != ',' && line[q] != '#' && line[q] != '"' && line[q] != 0 && !isCSpace(line[q]) {
				q++
			}
			toks = append(toks, token{kind: tokIdent, s: line[p:q]})
			p = q
		}
	}
}

func parseHBALine(line, dir string) (hbaRule, bool, error) {
	toks, err := tokenize(line)
	if err != nil {
		return hbaRule{}, false, err
	}
	if len(toks) == 0 {
		return hbaRule{}, false, nil
	}
	var r hbaRule
	if toks[0].kind != tokIdent {
		return r, false, errors.New("unknown connection type")
	}
	switch toks[0].s {
	case "local":
		r.typ = typeLocal
	case "host":
		r.typ = typeHost
	case "hostssl":
		r.typ = typeHostSSL
	case "hostnossl":
		r.typ = typeHostNoSSL
	default:
		return r, false, fmt.Errorf("unknown connection type %q", toks[0].s)
	}
	rest := toks[1:]
	if rest, err = parseNames(&r.db, rest, true, dir, 0); err != nil {
		return r, false, fmt.Errorf("database field: %w", err)
	}
	if rest, err = parseNames(&r.user, rest, false, dir, 0); err != nil {
		return r, false, fmt.Errorf("user field: %w", err)
	}
	if r.typ != typeLocal {
		if len(rest) == 0 || rest[0].kind != tokIdent {
			return r, false, errors.New("did not find address")
		}
		addrStr := rest[0].s
		rest = rest[1:]
		var bits string
		hasBits := false
		if i := strings.IndexByte(addrStr, '/'); i >= 0 {
			addrStr, bits, hasBits = addrStr[:i], addrStr[i+1:], true
		}
		addr, err := parseIP(addrStr)
		if err != nil {
			return r, false, fmt.Errorf("failed to parse address %q", addrStr)
		}
		r.is4 = addr.Is4()
		if hasBits {
			n, err := strconv.ParseUint(bits, 10, 8)
			if err != nil || n > uint64(addr.BitLen()) {
				return r, false, fmt.Errorf("invalid mask %q", bits)
			}
			r.mask = prefixMask(addr.BitLen(), int(n))
		} else {
			if len(rest) == 0 || rest[0].kind != tokIdent {
				return r, false, errors.New("did not find mask")
			}
			mask, err := parseIP(rest[0].s)
			if err != nil || mask.Is4() != r.is4 {
				return r, false, fmt.Errorf("failed to parse mask %q", rest[0].s)
			}
			rest = rest[1:]
			r.mask = mask.As16()
			if r.is4 { // As16 of an IPv4 address is ::ffff:a.b.c.d; compare the v4 part only
				for j := 0; j < 12; j++ {
					r.mask[j] = 0
				}
			}
		}
		a := addr.As16()
		for j := range a {
			r.addr[j] = a[j] & r.mask[j]
		}
	}
	if len(rest) == 0 || rest[0].kind != tokIdent || !hbaMethods[rest[0].s] {
		if len(rest) == 0 {
			return r, false, errors.New("missing authentication method")
		}
		return r, false, fmt.Errorf("unsupported method %q", rest[0].s)
	}
	r.method = rest[0].s
	// Options after the method are ignored (see ParseHBA).
	return r, true, nil
}

// prefixMask returns the mask of a /bits prefix of an address of bitLen bits,
// in As16 layout (an IPv4 mask in the last 4 bytes).
func prefixMask(bitLen, bits int) (m [16]byte) {
	off := 0
	if bitLen == 32 {
		off = 12
	}
	for i := 0; i < bits; i++ {
		m[off+i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// parseIP accepts what inet_pton accepts: dotted-quad IPv4 or IPv6 without
// a zone.
func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, errors.New("zones are not supported")
	}
	return a, nil
}

// parseNames reads a comma-separated name list from toks and returns the
// tokens after it.
func parseNames(n *hbaNames, toks []token, isDB bool, dir string, depth int) ([]token, error) {
	for {
		if len(toks) == 0 {
			return nil, errors.New("missing name")
		}
		t := toks[0]
		switch {
		case t.kind == tokIdent && t.s == "all":
			n.all = true
		case t.kind == tokIdent && isDB && t.s == "sameuser":
			n.sameUser = true
		case t.kind == tokIdent && isDB && (t.s == "samerole" || t.s == "samegroup" || t.s == "replication"):
			return nil, fmt.Errorf("%s is not supported", t.s)
		case t.kind == tokIdent && strings.HasPrefix(t.s, "+"):
			return nil, fmt.Errorf("group names (%s) are not supported", t.s)
		case t.kind == tokIdent && strings.HasPrefix(t.s, "@"):
			if err := includeNames(n, t.s[1:], isDB, dir, depth+1); err != nil {
				return nil, err
			}
		case t.kind == tokIdent || t.kind == tokString:
			if n.names == nil {
				n.names = make(map[string]struct{})
			}
			n.names[t.s] = struct{}{}
		default:
			return nil, errors.New("name expected")
		}
		toks = toks[1:]
		if len(toks) == 0 || toks[0].kind != tokComma {
			return toks, nil
		}
		toks = toks[1:]
	}
}

func includeNames(n *hbaNames, name string, isDB bool, dir string, depth int) error {
	if depth > maxHBAInclude {
		return fmt.Errorf("@%s: includes nested more than %d deep", name, maxHBAInclude)
	}
	if name == "" {
		return errors.New("@ without a file name")
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return scanLines(f, func(ln int, line string) error {
		toks, err := tokenize(line)
		if err != nil {
			return fmt.Errorf("%s line %d: %w", path, ln, err)
		}
		if len(toks) == 0 {
			return nil
		}
		// Names are separated by commas or whitespace, as in PostgreSQL
		// (PgBouncer silently drops a name after whitespace).
		for len(toks) > 0 {
			if toks, err = parseNames(n, toks, isDB, filepath.Dir(path), depth); err != nil {
				return fmt.Errorf("%s line %d: %w", path, ln, err)
			}
		}
		return nil
	})
}
