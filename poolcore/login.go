package poolcore

// belay's own login to Postgres (TLS negotiation, startup, authentication),
// run by Pool.login on a goroutine of its own, never on a loop. It speaks
// through pgproto3's Frontend: this is a slow path.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/belaydb/belay/auth"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/gnetx"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Credentials tell a pool how to log in as its user. The loop sets them once
// it authenticated a client itself (passthrough): with the password when it
// has it, else with what Postgres stores, which answers a challenge without
// the password.
//
// Order of use: Password; else the .pgpass password; else MD5 for an md5
// challenge and SCRAM with ClientKey for a SCRAM-SHA-256 challenge.
type Credentials struct {
	// Password is the plaintext password (from an auth file or .pgpass).
	Password string
	// MD5 is the "md5..." hash as pg_authid stores it: it answers an md5
	// challenge without the password.
	MD5 string
	// SCRAM with ClientKey answers a SCRAM-SHA-256 challenge without the
	// password. The server's salt and iteration count must equal the
	// verifier's (they do when SCRAM is the role's rolpassword).
	SCRAM     *auth.Verifier
	ClientKey []byte
}

// SetCredentials sets how later logins of the pool authenticate. Safe for
// concurrent use; servers already logged in are not affected.
func (p *Pool) SetCredentials(c Credentials) {
	p.creds.Store(&c)
}

func (p *Pool) credentials() Credentials {
	if c := p.creds.Load(); c != nil {
		return *c
	}
	return Credentials{}
}

// sslMode is libpq's sslmode.
type sslMode uint8

const (
	sslDisable    sslMode = iota
	sslAllow              // plain first; TLS if the server refuses a plain session
	sslPrefer             // TLS if the server offers it, else plain
	sslRequire            // TLS, certificate not checked (unless a CA file is set, as in libpq)
	sslVerifyCA           // TLS, certificate chain checked against the CA
	sslVerifyFull         // TLS, chain and host name checked
)

var sslModes = map[string]sslMode{"": sslDisable, "disable": sslDisable, "allow": sslAllow,
	"prefer": sslPrefer, "require": sslRequire, "verify-ca": sslVerifyCA, "verify-full": sslVerifyFull}

// serverTLS is the TLS side of Options, checked and loaded once.
type serverTLS struct {
	mode sslMode
	cfg  *tls.Config // cloned per login; nil with sslDisable
}

func newServerTLS(o Options) (*serverTLS, error) {
	mode, ok := sslModes[o.ServerTLSMode]
	if !ok {
		return nil, fmt.Errorf("server TLS mode %q: use disable, allow, prefer, require, verify-ca or verify-full", o.ServerTLSMode)
	}
	if mode == sslDisable {
		return &serverTLS{mode: mode}, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	var roots *x509.CertPool // nil: the system's
	if o.ServerTLSCAFile != "" {
		pem, err := os.ReadFile(o.ServerTLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("server TLS CA file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server TLS CA file %s: no PEM certificate in it", o.ServerTLSCAFile)
		}
	}
	switch {
	case o.ServerTLSCertFile != "" && o.ServerTLSKeyFile != "":
		pair, err := tls.LoadX509KeyPair(o.ServerTLSCertFile, o.ServerTLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("server TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case o.ServerTLSCertFile != "" || o.ServerTLSKeyFile != "":
		return nil, errors.New("server TLS client certificate: give both the certificate and the key file")
	}
	verify := mode
	if mode == sslRequire && o.ServerTLSCAFile != "" {
		verify = sslVerifyCA // libpq: require with a root CA file behaves like verify-ca
	}
	switch verify {
	case sslVerifyFull:
		cfg.RootCAs = roots // crypto/tls checks the chain and ServerName
	case sslVerifyCA:
		// The chain only: crypto/tls's own check would also want the name.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	default: // allow, prefer, require: encryption without authentication of the server
		cfg.InsecureSkipVerify = true
	}
	return &serverTLS{mode: mode, cfg: cfg}, nil
}

// errNoServerTLS: the server answered an SSLRequest with 'N'.
var errNoServerTLS = errors.New("server does not support TLS")

// loginResult is a logged-in connection, ready to be enrolled on a loop.
type loginResult struct {
	addr   string     // the host:port it logged in to
	gen    uint32     // its node's generation when the address was chosen
	nc     net.Conn   // the socket
	tls    *gnetx.TLS // its TLS layer, or nil; not yet detached
	pid    uint32
	key    []byte
	params map[string]string
}

// connect logs in as the pool's user to the next of the server's hosts in
// turn, or, when it cannot be reached, to the following ones.
func (p *Pool) connect(ctx context.Context) (r *loginResult, err error) {
	gen := p.n.gen.Load() // before the addresses: a change between retires this server
	addrs := *p.n.addrs.Load()
	first := int(p.n.next.Add(1)-1) % len(addrs)
	for i := range addrs {
		addr := addrs[(first+i)%len(addrs)]
		if r, err = p.connectTo(ctx, addr); err == nil {
			r.addr, r.gen = addr, gen
			return r, nil
		}
		var pe *PgError
		if errors.As(err, &pe) || ctx.Err() != nil {
			return nil, err // Postgres answered: another host would say the same
		}
		if len(addrs) > 1 {
			p.m.log.Warn("server host unreachable; trying the next", "addr", addr, "err", err)
		}
	}
	return nil, err
}

// connectTo logs in to addr with TLS as Options.ServerTLSMode says.
func (p *Pool) connectTo(ctx context.Context, addr string) (*loginResult, error) {
	st := p.m.tls
	switch st.mode {
	case sslDisable:
		return p.connectOnce(ctx, addr, false, false)
	case sslAllow:
		r, err := p.connectOnce(ctx, addr, false, false)
		var pe *PgError
		if err == nil || !errors.As(err, &pe) {
			return r, err
		}
		// libpq's allow: Postgres refused the plain session (pg_hba.conf may
		// have only hostssl lines), so try once more with TLS.
		r, err2 := p.connectOnce(ctx, addr, true, true)
		if errors.Is(err2, errNoServerTLS) {
			return nil, err
		}
		return r, err2
	case sslPrefer:
		return p.connectOnce(ctx, addr, true, false)
	default:
		return p.connectOnce(ctx, addr, true, true)
	}
}

// connectOnce dials, negotiates TLS if tryTLS (failing without it if
// needTLS), and runs the startup and authentication.
func (p *Pool) connectOnce(ctx context.Context, addr string, tryTLS, needTLS bool) (_ *loginResult, err error) {
	network, address := serverNetwork(addr)
	if network == "unix" {
		tryTLS = false // as in libpq, sslmode does not apply to Unix sockets
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = nc.Close()
		}
	}()
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)

	r := &loginResult{nc: nc}
	var rw io.ReadWriter = nc
	if tryTLS {
		var req [8]byte
		binary.BigEndian.PutUint32(req[0:], 8)
		binary.BigEndian.PutUint32(req[4:], 80877103) // SSLRequest
		if _, err := nc.Write(req[:]); err != nil {
			return nil, fmt.Errorf("login to %s: SSLRequest: %w", address, err)
		}
		var b [1]byte
		if _, err := io.ReadFull(nc, b[:]); err != nil {
			return nil, fmt.Errorf("login to %s: SSLRequest: %w", address, err)
		}
		switch b[0] {
		case 'S':
			cfg := p.m.tls.cfg.Clone()
			cfg.ServerName = p.host
			t, err := gnetx.HandshakeClient(ctx, nc, cfg)
			if err != nil {
				return nil, fmt.Errorf("login to %s: TLS handshake: %w", address, err)
			}
			_ = nc.SetDeadline(deadline) // the handshake cleared it
			r.tls, rw = t, t.Conn()
		case 'N':
			if needTLS {
				return nil, fmt.Errorf("login to %s: %w, and server TLS mode %q requires it", address, errNoServerTLS, p.m.opts.ServerTLSMode)
			}
		default:
			return nil, fmt.Errorf("login to %s: unexpected answer %q to SSLRequest", address, b[0])
		}
	}
	if err := p.startup(rw, r); err != nil {
		var pe *PgError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, fmt.Errorf("login to %s as %s: %w", address, p.key, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return r, nil
}

// startup sends the StartupMessage (user and database only: session
// parameters are applied later with SET) and answers the server until
// ReadyForQuery.
func (p *Pool) startup(rw io.ReadWriter, r *loginResult) error {
	fe := pgproto3.NewFrontend(rw, rw)
	fe.Send(&pgproto3.StartupMessage{
		ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters:      map[string]string{"user": p.key.User, "database": p.key.Database},
	})
	if err := fe.Flush(); err != nil {
		return err
	}
	creds := p.credentials()
	password := creds.Password
	if password == "" {
		password = p.passfile
	}
	var scram *auth.ScramClient
	r.params = make(map[string]string)
	for {
		msg, err := fe.Receive()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationOk:
		case *pgproto3.AuthenticationCleartextPassword:
			if password == "" {
				return p.cannotAnswer("a cleartext password", "password")
			}
			fe.Send(&pgproto3.PasswordMessage{Password: password})
		case *pgproto3.AuthenticationMD5Password:
			var hash string
			switch {
			case password != "":
				hash = auth.MD5Hash(p.key.User, password)
			case creds.MD5 != "":
				hash = creds.MD5
			default:
				return p.cannotAnswer("an md5 password", "password or md5 hash")
			}
			fe.Send(&pgproto3.PasswordMessage{Password: auth.MD5Response(hash, m.Salt)})
		case *pgproto3.AuthenticationSASL:
			if !slices.Contains(m.AuthMechanisms, "SCRAM-SHA-256") {
				return fmt.Errorf("server offers SASL mechanisms %v, belay speaks SCRAM-SHA-256", m.AuthMechanisms)
			}
			switch {
			case password != "":
				scram = auth.NewScramClient(password, rand.Reader)
			case creds.SCRAM != nil && len(creds.ClientKey) > 0:
				scram = auth.NewScramClientFromKeys(*creds.SCRAM, creds.ClientKey, rand.Reader)
			default:
				return p.cannotAnswer("a SCRAM-SHA-256 password", "password or SCRAM keys")
			}
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: scram.First()})
		case *pgproto3.AuthenticationSASLContinue:
			if scram == nil {
				return errors.New("server sent SASLContinue before SASL")
			}
			final, err := scram.Final(m.Data)
			if err != nil {
				return p.scramError(err)
			}
			fe.Send(&pgproto3.SASLResponse{Data: final})
		case *pgproto3.AuthenticationSASLFinal:
			if scram == nil {
				return errors.New("server sent SASLFinal before SASL")
			}
			if err := scram.Verify(m.Data); err != nil {
				return p.scramError(err)
			}
		case *pgproto3.ParameterStatus:
			r.params[m.Name] = m.Value
		case *pgproto3.BackendKeyData:
			r.pid, r.key = m.ProcessID, slices.Clone(m.SecretKey)
		case *pgproto3.NoticeResponse:
		case *pgproto3.ErrorResponse:
			return &PgError{Severity: m.Severity, Code: m.Code, Message: m.Message, Detail: m.Detail, Hint: m.Hint}
		case *pgproto3.ReadyForQuery:
			return nil
		case *pgproto3.AuthenticationGSS, *pgproto3.AuthenticationGSSContinue:
			return p.cannotAnswer("GSSAPI authentication", "support")
		default:
			return fmt.Errorf("unexpected %T during login", msg)
		}
		if err := fe.Flush(); err != nil {
			return err
		}
	}
}

// cannotAnswer is the error of a challenge the pool has no credentials for.
func (p *Pool) cannotAnswer(challenge, missing string) *PgError {
	return &PgError{Severity: "FATAL", Code: string(sqlstate.InvalidPassword),
		Message: fmt.Sprintf("belay cannot log in to the server as %q: the server asks for %s, and belay has no %s for this user",
			p.key.User, challenge, missing),
		Hint: "give belay the password (auth file or .pgpass), or let it authenticate the client itself so that it can pass the login through"}
}

// scramError is a failure of belay's side of a SCRAM exchange (keys that do
// not fit the server's verifier, a server that could not prove itself) as
// the error a client gets.
func (p *Pool) scramError(err error) *PgError {
	pe := &PgError{Severity: "FATAL", Code: string(sqlstate.InvalidPassword),
		Message: fmt.Sprintf("belay cannot log in to the server as %q: SCRAM-SHA-256: %v", p.key.User, err)}
	var ae *auth.Error
	if errors.As(err, &ae) {
		pe.Code = string(ae.Code)
		pe.Message = fmt.Sprintf("belay cannot log in to the server as %q: SCRAM-SHA-256: %s", p.key.User, ae.Message)
		pe.Detail = ae.Detail
	}
	return pe
}
