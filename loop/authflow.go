package loop

import (
	"fmt"
	"io"

	"github.com/belaydb/belay/auth"
	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/poolcore"
)

// authMethod is how a client proves who it is.
type authMethod uint8

const (
	methodTrust authMethod = iota
	methodReject
	methodPassword // cleartext
	methodMD5
	methodSCRAM
	methodCert
)

// parseMethod reads an --auth-type or pg_hba method word.
func parseMethod(s string) (authMethod, error) {
	switch s {
	case "trust", "any":
		return methodTrust, nil
	case "reject":
		return methodReject, nil
	case "password", "plain":
		return methodPassword, nil
	case "md5":
		return methodMD5, nil
	case "scram-sha-256", "":
		return methodSCRAM, nil
	case "cert":
		return methodCert, nil
	}
	return 0, fmt.Errorf("unsupported authentication method %q", s)
}

// authOutcome is where an exchange stands after a step.
type authOutcome uint8

const (
	authContinue authOutcome = iota // send out, wait for the client's next message
	authOK                          // authenticated
	authFail                        // send err and close
)

// authStep is the result of one step of an exchange.
type authStep struct {
	out     []byte // messages for the client (before err, when failing)
	outcome authOutcome
	err     codec.ErrorResponse
	cred    poolcore.Credentials // with authOK: how belay logs in to Postgres as the user
	// why, with authFail, is the reason for belay's log: the client only
	// gets Postgres's "password authentication failed", whatever it was.
	why string
}

// authExchange is one client's password exchange, as Postgres's auth.c runs
// it: a pure state machine, fed the client's messages, with its randomness
// injected. A user belay has no secret for goes through the same exchange as
// a wrong password (a mock SCRAM verifier, an md5 salt) and gets the same
// error, so probing cannot tell the two apart.
type authExchange struct {
	method authMethod
	user   string
	secret auth.Secret // Kind SecretNone: unknown user
	rand   io.Reader
	mock   []byte // server secret for mock SCRAM salts
	// noSecret says why secret is none (for the log); "" means the user
	// is not in the auth file.
	noSecret string

	want    wantMsg
	mockWhy string // why a mock SCRAM exchange was begun: its failure's reason
	salt    [4]byte
	scram   *auth.ScramServer
}

type wantMsg uint8

const (
	wantNothing wantMsg = iota
	wantPassword
	wantSASLInitial
	wantSASLResponse
)

// begin is the first step: the request to send.
func (a *authExchange) begin() authStep {
	m := a.method
	if m == methodMD5 && a.secret.Kind == auth.SecretSCRAM {
		m = methodSCRAM // as Postgres does: an md5 rule accepts SCRAM when that is what is stored
	}
	switch m {
	case methodPassword:
		a.want = wantPassword
		return authStep{out: codec.AppendAuthentication(nil, codec.AuthCleartextPassword, nil)}
	case methodMD5:
		_, _ = io.ReadFull(a.rand, a.salt[:])
		a.want = wantPassword
		return authStep{out: codec.AppendAuthentication(nil, codec.AuthMD5Password, a.salt[:])}
	case methodSCRAM:
		if a.secret.Kind == auth.SecretSCRAM {
			a.scram = auth.NewScramServer(a.secret.SCRAM, a.rand)
		} else if a.secret.Kind == auth.SecretPlain {
			salt := make([]byte, 16)
			_, _ = io.ReadFull(a.rand, salt)
			a.scram = auth.NewScramServer(auth.NewVerifier(a.secret.Plain, salt, scramIterations), a.rand)
		} else {
			// Unknown user, or only an md5 hash stored: SCRAM cannot succeed.
			a.scram = auth.NewMockScramServer(a.user, a.mock, a.rand)
			a.mockWhy = a.unknown()
			if a.secret.Kind == auth.SecretMD5 {
				a.mockWhy = "only an md5 hash is stored for the user, and an md5 hash cannot answer a SCRAM exchange " +
					"(store the password or its SCRAM verifier, or use auth_type md5)"
			}
		}
		a.want = wantSASLInitial
		return authStep{out: codec.AppendAuthenticationSASL(nil, "SCRAM-SHA-256")}
	}
	return a.fail("no password method for this connection")
}

// unknown is why a user has no secret.
func (a *authExchange) unknown() string {
	if a.noSecret != "" {
		return a.noSecret
	}
	return "the user is not in the auth file"
}

// mismatch is the reason for a password that does not match the secret.
func (a *authExchange) mismatch(what string) string {
	switch a.secret.Kind {
	case auth.SecretNone:
		return a.unknown()
	case auth.SecretPlain:
		return "wrong password: the " + what + " does not match the auth file's password"
	case auth.SecretMD5:
		return "wrong password: the " + what + " does not match the stored md5 hash"
	}
	return "wrong password: the " + what + " does not match the stored SCRAM verifier"
}

// scramIterations is the iteration count of verifiers belay makes from a
// plaintext secret (Postgres's scram_iterations default).
const scramIterations = 4096

// message is a step for one client message of type typ.
func (a *authExchange) message(typ byte, body []byte) authStep {
	if typ != codec.MsgPasswordMessage || a.want == wantNothing {
		return authStep{outcome: authFail, err: fatalf(sqlstate.ProtocolViolation, "expected password response, got message type %d", typ)}
	}
	switch a.want {
	case wantPassword:
		pw, err := codec.PasswordText(body)
		if err != nil {
			return authStep{outcome: authFail, err: fatalf(sqlstate.ProtocolViolation, "invalid password packet size")}
		}
		if len(pw) == 0 {
			return a.fail("empty password")
		}
		return a.checkPassword(string(pw))
	case wantSASLInitial:
		mech, data, err := codec.ParseSASLInitialResponse(body)
		if err != nil {
			return authStep{outcome: authFail, err: fatalf(sqlstate.ProtocolViolation, "malformed SASL message")}
		}
		if string(mech) != "SCRAM-SHA-256" {
			return authStep{outcome: authFail, err: fatalf(sqlstate.ProtocolViolation, "client selected an invalid SASL authentication mechanism")}
		}
		first, err := a.scram.ClientFirst(data)
		if err != nil {
			return a.scramErr(err, "the SCRAM client-first-message was refused")
		}
		a.want = wantSASLResponse
		return authStep{out: codec.AppendAuthentication(nil, codec.AuthSASLContinue, first)}
	case wantSASLResponse:
		final, clientKey, err := a.scram.ClientFinal(body)
		if err != nil {
			why := a.mockWhy
			if why == "" {
				why = a.mismatch("SCRAM proof")
			}
			return a.scramErr(err, why)
		}
		a.want = wantNothing
		st := authStep{out: codec.AppendAuthentication(nil, codec.AuthSASLFinal, final), outcome: authOK}
		switch a.secret.Kind {
		case auth.SecretPlain:
			st.cred.Password = a.secret.Plain
		case auth.SecretSCRAM:
			v := a.secret.SCRAM
			st.cred.SCRAM, st.cred.ClientKey = &v, clientKey
		}
		return st
	}
	return a.fail("unexpected message")
}

// checkPassword checks a cleartext password, or an md5 response.
func (a *authExchange) checkPassword(pw string) authStep {
	a.want = wantNothing
	var ok bool
	what := "cleartext password"
	if a.method == methodMD5 {
		ok = auth.CheckMD5(a.secret, a.user, a.salt, pw)
		what = "md5 response"
	} else {
		ok = auth.CheckPassword(a.secret, a.user, pw)
	}
	if !ok {
		return a.fail(a.mismatch(what))
	}
	st := authStep{outcome: authOK}
	switch {
	case a.method == methodPassword:
		st.cred.Password = pw // the client told us: log in to Postgres with it
	case a.secret.Kind == auth.SecretPlain:
		st.cred.Password = a.secret.Plain
	case a.secret.Kind == auth.SecretMD5:
		st.cred.MD5 = a.secret.MD5
	}
	return st
}

// scramErr is the step for a SCRAM error: a malformed message gets its own
// error, a wrong proof the failure of a wrong password, for the reason why.
func (a *authExchange) scramErr(err error, why string) authStep {
	if e, ok := err.(*auth.Error); ok && e.Code != sqlstate.InvalidPassword {
		return authStep{outcome: authFail, err: codec.ErrorResponse{Severity: "FATAL", Code: e.Code, Message: e.Message, Detail: e.Detail},
			why: e.Message}
	}
	return a.fail(why)
}

// fail is Postgres's answer to a wrong password, and to an unknown user;
// why is for belay's log only.
func (a *authExchange) fail(why string) authStep {
	a.want = wantNothing
	e := auth.PasswordFailed(a.user)
	return authStep{outcome: authFail, err: codec.ErrorResponse{Severity: "FATAL", Code: e.Code, Message: e.Message}, why: why}
}

// credentialsOf is how belay logs in as a user it did not ask for a password
// (trust, cert): with whatever the auth file holds.
func credentialsOf(s auth.Secret) poolcore.Credentials {
	switch s.Kind {
	case auth.SecretPlain:
		return poolcore.Credentials{Password: s.Plain}
	case auth.SecretMD5:
		return poolcore.Credentials{MD5: s.MD5}
	}
	return poolcore.Credentials{}
}

func fatalf(code sqlstate.Code, format string, args ...any) codec.ErrorResponse {
	return codec.ErrorResponse{Severity: "FATAL", Code: code, Message: fmt.Sprintf(format, args...)}
}

// fatalFromServer is Postgres's own error, passed on to the client as FATAL.
func fatalFromServer(pe *poolcore.PgError) codec.ErrorResponse {
	return codec.ErrorResponse{Severity: "FATAL", Code: sqlstate.Code(pe.Code), Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint}
}
