package loop

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/belaydb/belay/auth"
	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/gnetx"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// tlsRecordHandshake is the first byte of a TLS ClientHello record. A startup
// packet cannot begin with it: its length would be over 369 MB.
const tlsRecordHandshake = 0x16

// maxAuthMessage bounds a password or SASL message (Postgres's
// PG_MAX_AUTH_TOKEN_LENGTH).
const maxAuthMessage = 65535

// startupMessage takes a client's StartupMessage: it counts the client
// against --max-client-conn, enforces the TLS mode, picks the authentication
// method and starts the exchange.
func (s *session) startupMessage(st startup) gnet.Action {
	if s.refused {
		return s.fatal(fatalf(sqlstate.CannotConnectNow, "the database system is shutting down"))
	}
	n := s.p.clients.Add(1)
	s.counted = true
	lv := s.p.live.Load()
	if len(lv.ignoreStartup) > 0 {
		kept := st.params[:0]
		for _, p := range st.params {
			if !lv.ignoreStartup[p.name] {
				kept = append(kept, p)
			}
		}
		st.params = kept
	}
	if max := lv.maxClientConn; max > 0 && n > int64(max) {
		s.counted = false // a refused client holds no place, even while it lingers
		s.p.clients.Add(-1)
		return s.fatal(fatalf(sqlstate.TooManyConnections, "sorry, too many clients already"))
	}
	if st.minor > 0 || len(st.unrecognized) > 0 {
		s.handshake().preamble = codec.AppendNegotiateProtocolVersion(nil, 0, st.unrecognized)
	}
	tlsOn := s.in.TLS() != nil
	if s.p.tlsRequired && !tlsOn && !s.isUnix() {
		return s.fatal(fatalf(sqlstate.InvalidAuthorizationSpecification,
			"SSL required: belay accepts only encrypted connections (tls mode %s)", s.p.cfg.TLSMode))
	}
	method, e := s.method(st, tlsOn)
	if e != nil {
		return s.fatal(*e)
	}
	secret, known := lv.users[st.user]
	switch method {
	case methodTrust:
		return s.authenticated(&st, credentialsOf(secret))
	case methodReject:
		return s.fatal(fatalf(sqlstate.InvalidAuthorizationSpecification,
			"pg_hba.conf rejects connection for host %q, user %q, database %q, %s", s.hostName(), st.user, st.database, encryption(tlsOn)))
	case methodCert:
		if e := s.checkCert(st.user); e != nil {
			return s.fatal(*e)
		}
		return s.authenticated(&st, credentialsOf(secret))
	}
	hs := s.handshake() // the exchange takes more than this callback
	hs.login = st
	hs.ax = &authExchange{method: method, user: st.user, rand: rand.Reader, mock: s.p.mockKey}
	if !known && s.p.cfg.AuthFile == "" {
		hs.ax.noSecret = "belay has no auth file (auth_file, --auth-file) and no auth_user"
	}
	if !known && s.p.authq != nil {
		s.state = sLookup
		el, db, user := s.loop.EventLoop(), st.database, st.user // not st: capturing it would move it to the heap for every login
		go func() {
			secret, err := s.p.authq.lookup(db, user)
			_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				s.secretFound(secret, err)
				return nil
			}))
		}()
		return gnet.None
	}
	s.hs.ax.secret = secret
	return s.beginAuth()
}

// secretFound continues a login once auth_query answered. On the loop.
func (s *session) secretFound(secret auth.Secret, err error) {
	if s.state != sLookup || s.done {
		return
	}
	if err != nil {
		s.p.log.Warn("auth_query failed", "user", s.hs.login.user, "err", err)
		s.kill(fatalf(sqlstate.ConnectionFailure, "belay could not look up the user: %v", err))
		return
	}
	s.hs.ax.secret = secret
	if secret.Kind == auth.SecretNone {
		s.hs.ax.noSecret = "the user is not in the auth file, and auth_query returned no password for it " +
			"(no such role, it cannot log in, or its password is NULL or expired)"
	}
	s.outside(s.beginAuth())
}

// outside carries out an action returned outside the client's own callbacks.
func (s *session) outside(a gnet.Action) {
	if a == gnet.Close {
		s.closeClient()
	}
}

func (s *session) beginAuth() gnet.Action {
	st := s.hs.ax.begin()
	b := append(s.hs.preamble, st.out...)
	s.hs.preamble = nil
	s.state = sAuth
	_, _ = s.write(b)
	if st.outcome == authFail {
		return s.authFailed(st)
	}
	return s.authTraffic(s.c)
}

// authFailed ends a failed exchange: the client gets Postgres's error, the
// log says why.
func (s *session) authFailed(st authStep) gnet.Action {
	s.p.log.Info("client authentication failed", "user", s.hs.login.user, "database", s.hs.login.database,
		"remote", s.c.RemoteAddr(), "reason", st.why)
	return s.fatal(st.err)
}

// authTraffic feeds the client's password messages to the exchange.
func (s *session) authTraffic(c gnet.Conn) gnet.Action {
	for s.state == sAuth && c != nil {
		data := s.in.Bytes(c)
		typ, bodyLen, err := codec.PeekHeader(data, maxAuthMessage)
		switch {
		case err == codec.ErrShortBuffer || (err == nil && len(data) < 5+bodyLen):
			return gnet.None
		case err != nil:
			return s.fatal(fatalf(sqlstate.ProtocolViolation, "invalid password packet size"))
		case typ == codec.MsgTerminate:
			return gnet.Close
		}
		step := s.hs.ax.message(typ, data[5:5+bodyLen])
		s.in.Consume(c, 5+bodyLen)
		switch step.outcome {
		case authFail:
			return s.authFailed(step)
		case authOK:
			s.hs.ax = nil
			s.hs.preamble = step.out
			return s.authenticated(&s.hs.login, step.cred)
		}
		_, _ = s.write(step.out)
	}
	return gnet.None
}

// method is the authentication method for this connection: --auth-type, or
// the first matching line of the hba file.
func (s *session) method(st startup, tlsOn bool) (authMethod, *codec.ErrorResponse) {
	if s.p.hba == nil {
		return s.p.method, nil
	}
	hc := auth.HBAConn{Local: s.isUnix(), TLS: tlsOn, Database: st.database, User: st.user}
	if a, ok := s.c.RemoteAddr().(*net.TCPAddr); ok {
		hc.Addr, _ = netip.AddrFromSlice(a.IP)
		hc.Addr = hc.Addr.Unmap()
	}
	word, ok := s.p.hba.Method(hc)
	if !ok {
		e := fatalf(sqlstate.InvalidAuthorizationSpecification, "no pg_hba.conf entry for host %q, user %q, database %q, %s",
			s.hostName(), st.user, st.database, encryption(tlsOn))
		return 0, &e
	}
	m, err := parseMethod(word)
	if err != nil {
		e := fatalf(sqlstate.InvalidAuthorizationSpecification, "%v", err)
		return 0, &e
	}
	return m, nil
}

// checkCert is Postgres's cert method: a verified client certificate whose
// common name is the user name.
func (s *session) checkCert(user string) *codec.ErrorResponse {
	t := s.in.TLS()
	if t == nil || len(t.State().VerifiedChains) == 0 {
		e := fatalf(sqlstate.InvalidAuthorizationSpecification, "connection requires a valid client certificate")
		return &e
	}
	if cn := t.State().PeerCertificates[0].Subject.CommonName; cn != user {
		e := fatalf(sqlstate.InvalidAuthorizationSpecification, "certificate authentication failed for user %q", user)
		s.p.log.Info("certificate common name does not match the user", "cn", cn, "user", user)
		return &e
	}
	return nil
}

func (s *session) isUnix() bool {
	_, ok := s.c.RemoteAddr().(*net.UnixAddr)
	return ok || s.c.RemoteAddr() == nil
}

func (s *session) hostName() string {
	if s.isUnix() {
		return "[local]"
	}
	if a, ok := s.c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return s.c.RemoteAddr().String()
}

func encryption(tlsOn bool) string {
	if tlsOn {
		return "SSL encryption"
	}
	return "no encryption"
}

// --- TLS ----------------------------------------------------------------------

// startTLS parks the client and runs the TLS handshake off the loop; tlsDone
// brings it back. sendS answers an SSLRequest first; without it the client
// opened with a ClientHello (direct TLS), which must ask for ALPN
// "postgresql" as Postgres 17 requires. From the client's callback.
func (s *session) startTLS(c gnet.Conn, sendS bool) gnet.Action {
	fd, err := gnetx.Park(c)
	if err != nil {
		return gnet.Close
	}
	hfd, err := unix.Dup(fd)
	if err != nil {
		gnetx.CloseParked(fd)
		return gnet.Close
	}
	data := s.in.Bytes(c)
	pre := append([]byte(nil), data...) // a direct ClientHello, or part of it
	s.in.Consume(c, len(data))
	s.parkedFD = fd
	s.parking = true
	s.state = sTLS
	go s.p.handshake(s, hfd, pre, sendS)
	return gnet.Close
}

// handshake runs on its own goroutine, bounded by tlsSlots; it owns fd.
func (p *Proxy) handshake(s *session, fd int, pre []byte, sendS bool) {
	p.tlsSlots <- struct{}{}
	defer func() { <-p.tlsSlots }()
	f := os.NewFile(uintptr(fd), "client")
	nc, err := net.FileConn(f)
	_ = f.Close()
	var t *gnetx.TLS
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), p.live.Load().clientLoginTimeout)
		if sendS {
			if d, ok := ctx.Deadline(); ok {
				_ = nc.SetWriteDeadline(d)
			}
			_, err = nc.Write([]byte{'S'})
		}
		if err == nil {
			t, err = gnetx.HandshakeServer(ctx, nc, pre, p.tls)
		}
		cancel()
		if err == nil && !sendS && t.State().NegotiatedProtocol != "postgresql" {
			err = errors.New("direct TLS connection without ALPN \"postgresql\"")
		}
		_ = nc.Close()
	}
	if xerr := s.loop.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		s.tlsDone(t, err)
		return nil
	})); xerr != nil && s.parkedFD >= 0 {
		// The engine stopped while the handshake ran: no loop will take the
		// client back, and nothing else touches the session any more.
		gnetx.CloseParked(s.parkedFD)
		s.parkedFD = -1
	}
}

// tlsDone is the end of a handshake, on the loop.
func (s *session) tlsDone(t *gnetx.TLS, err error) {
	if s.done || s.state != sTLS {
		return // closed meanwhile (login timeout, shutdown)
	}
	if err != nil {
		s.p.log.Debug("client TLS handshake failed", "err", err)
		s.closeClient()
		return
	}
	t.Detach()
	s.in.SetTLS(t)
	s.state = sStartup
	s.unparkClient()
}

// --- set-up -------------------------------------------------------------------

// setupAuth reads the auth file, the hba file and the TLS files; an error
// here stops Start, so a typo is found at boot and not at the first login.
func (p *Proxy) setupAuth() error {
	cfg := &p.cfg
	var err error
	if cfg.AuthType == "hba" {
		if cfg.AuthHBAFile == "" {
			return errors.New("--auth-type hba needs --auth-hba-file")
		}
		if p.hba, err = auth.LoadHBA(cfg.AuthHBAFile); err != nil {
			return fmt.Errorf("--auth-hba-file: %w", err)
		}
	} else if p.method, err = parseMethod(cfg.AuthType); err != nil {
		return fmt.Errorf("--auth-type: %w", err)
	}
	users, err := loadUserlist(cfg.AuthFile)
	if err != nil {
		return err
	}
	p.live.Store(newLive(*cfg, users))
	if cfg.AuthUser != "" {
		q := cfg.AuthQuery
		if q == "" {
			q = DefaultAuthQuery
		}
		first, _, _ := strings.Cut(cfg.Server, ",") // a host list: auth_query asks the first host
		p.authq = &authQuerier{server: strings.TrimSpace(first), user: cfg.AuthUser, passfile: cfg.PassFile,
			database: cfg.AuthDatabase, query: q, timeout: cfg.ServerConnectTimeout, conns: map[string]*authConn{}}
		if s, ok := users[cfg.AuthUser]; ok && s.Kind == auth.SecretPlain {
			p.authq.password = s.Plain
		}
	}
	if cfg.AuthFile == "" && cfg.AuthUser == "" && (p.hba != nil || p.method == methodSCRAM || p.method == methodMD5 || p.method == methodPassword) {
		p.log.Warn("no --auth-file and no --auth-user: belay knows no password, so every password login fails", "auth_type", cfg.AuthType)
	}
	p.mockKey = make([]byte, 32)
	_, _ = rand.Read(p.mockKey)
	p.tlsSlots = make(chan struct{}, 4*runtime.GOMAXPROCS(0))
	return p.setupTLS()
}

// setupTLS builds the client-facing TLS configuration from PgBouncer's
// client_tls_sslmode words.
func (p *Proxy) setupTLS() error {
	cfg := &p.cfg
	mode := cfg.TLSMode
	if mode == "" {
		mode = "disable"
		if cfg.TLSCertFile != "" {
			mode = "prefer"
		}
		cfg.TLSMode = mode
	}
	switch mode {
	case "disable":
		if p.method == methodCert {
			return errors.New("--auth-type cert needs TLS (--tls-mode and --tls-cert-file)")
		}
		return nil
	case "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		return fmt.Errorf("--tls-mode %q: want disable, allow, prefer, require, verify-ca or verify-full", mode)
	}
	if cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" {
		return fmt.Errorf("--tls-mode %s needs --tls-cert-file and --tls-key-file", mode)
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"postgresql"},
	}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return fmt.Errorf("--tls-ca-file: %w", err)
		}
		tc.ClientCAs = x509.NewCertPool()
		if !tc.ClientCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--tls-ca-file %s: no certificate found", cfg.TLSCAFile)
		}
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if mode == "verify-ca" || mode == "verify-full" {
		if tc.ClientCAs == nil {
			return fmt.Errorf("--tls-mode %s needs --tls-ca-file", mode)
		}
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	p.tls = tc
	p.tlsRequired = mode == "require" || mode == "verify-ca" || mode == "verify-full"
	return nil
}
