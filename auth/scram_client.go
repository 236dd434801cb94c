package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"strconv"

	"github.com/belaydb/belay/codec/sqlstate"
)

// MaxClientIterations is the highest iteration count the SCRAM client
// accepts from a server: PostgreSQL's default is 4096 and its maximum
// (scram_iterations, PostgreSQL 16) INT_MAX, but a server asking for more
// than this would make belay spend seconds of CPU on one login.
const MaxClientIterations = 10_000_000

// ScramClient is the client side of one SCRAM-SHA-256 exchange without
// channel binding, as libpq runs it: First, then Final with the server's
// AuthenticationSASLContinue data, then Verify with the
// AuthenticationSASLFinal data. Errors are *Error (08P01 for a malformed or
// inconsistent server message, 28000 when the server cannot be
// authenticated or the passthrough keys do not fit). It is not safe for
// concurrent use.
type ScramClient struct {
	password string
	rand     io.Reader

	// passthrough
	keys      bool
	v         Verifier
	clientKey []byte

	// maxIter is the highest iteration count accepted (MaxClientIterations
	// when zero); tests lower it.
	maxIter int64

	nonce     string
	randErr   error
	first     []byte // client-first-message
	state     uint8  // 0 new, 1 first sent, 2 final sent, 3 done
	serverSig [keyLen]byte
}

// NewScramClient starts an exchange that proves knowledge of password
// (SASLprep'd as libpq does, falling back to the raw password). The client
// nonce is read from rand.
func NewScramClient(password string, rand io.Reader) *ScramClient {
	return &ScramClient{password: password, rand: rand}
}

// NewScramClientFromKeys starts an exchange that logs in without the
// password, with the ClientKey a client proved to ScramServer.ClientFinal
// and the verifier it was checked against (SCRAM passthrough, as PgBouncer
// does it). It works only when the server's verifier is the same one (same
// salt and iteration count): otherwise Final fails with an error saying so.
func NewScramClientFromKeys(v Verifier, clientKey []byte, rand io.Reader) *ScramClient {
	return &ScramClient{keys: true, v: v, clientKey: append([]byte(nil), clientKey...), rand: rand}
}

// First returns the client-first-message, "n,,n=,r=<nonce>" (the user name
// is left empty, as libpq does: PostgreSQL takes it from the startup
// message). Calling it again returns the same message.
func (c *ScramClient) First() []byte {
	if c.first == nil {
		c.nonce, c.randErr = newNonce(c.rand)
		c.first = append([]byte("n,,n=,r="), c.nonce...)
		c.state = 1
	}
	return append([]byte(nil), c.first...)
}

func clientErr(msg string) *Error {
	return &Error{Code: sqlstate.ProtocolViolation, Message: msg}
}

// Final reads the server-first-message and returns the
// client-final-message. It checks that the server's nonce extends the
// client's, that the salt is valid base64 and that the iteration count is
// between 1 and MaxClientIterations.
func (c *ScramClient) Final(serverFirst []byte) ([]byte, error) {
	if c.state != 1 {
		c.state = 3
		return nil, &Error{Code: sqlstate.InternalError, Message: "SCRAM client: Final called out of order"}
	}
	c.state = 3
	if c.randErr != nil {
		return nil, &Error{Code: sqlstate.InternalError, Message: "could not generate random nonce: " + c.randErr.Error()}
	}
	if len(serverFirst) > MaxSCRAMMessage || bytes.IndexByte(serverFirst, 0) >= 0 {
		return nil, clientErr("malformed SCRAM message (invalid server-first-message)")
	}
	sc := &scanner{s: string(serverFirst)}
	nonce, err := sc.attrValue('r')
	if err != nil {
		return nil, clientErr(`malformed SCRAM message (attribute "r" expected)`)
	}
	if len(nonce) <= len(c.nonce) || subtle.ConstantTimeCompare([]byte(nonce[:len(c.nonce)]), []byte(c.nonce)) != 1 {
		return nil, clientErr("invalid SCRAM response (nonce mismatch)")
	}
	if !isPrintable(nonce) {
		return nil, clientErr("malformed SCRAM message (non-printable characters in nonce)")
	}
	saltB64, err := sc.attrValue('s')
	if err != nil {
		return nil, clientErr(`malformed SCRAM message (attribute "s" expected)`)
	}
	salt, ok := pgB64Decode(saltB64)
	if !ok {
		return nil, clientErr("malformed SCRAM message (invalid salt)")
	}
	iterStr, err := sc.attrValue('i')
	if err != nil {
		return nil, clientErr(`malformed SCRAM message (attribute "i" expected)`)
	}
	iter, ok := cStrtol(iterStr)
	maxIter := c.maxIter
	if maxIter == 0 {
		maxIter = MaxClientIterations
	}
	if !ok || iter < 1 || iter > maxIter {
		return nil, clientErr("malformed SCRAM message (invalid iteration count)")
	}
	if sc.cur() != 0 {
		return nil, clientErr("malformed SCRAM message (garbage at end of server-first-message)")
	}

	var clientKey, storedKey, serverKey []byte
	if c.keys {
		if len(c.clientKey) != keyLen || !c.v.valid() {
			return nil, &Error{Code: sqlstate.InvalidAuthorizationSpecification, Message: "SCRAM passthrough: no usable client key and verifier"}
		}
		if int64(c.v.Iterations) != iter || !bytes.Equal(salt, c.v.Salt) {
			return nil, &Error{Code: sqlstate.InvalidAuthorizationSpecification,
				Message: "SCRAM passthrough failed: the server's SCRAM verifier for this role differs from the one belay holds",
				Detail: "The server sent salt " + sanitizeStr(saltB64) + " and " + strconv.FormatInt(iter, 10) +
					" iterations, the verifier has salt " + sanitizeStr(base64.StdEncoding.EncodeToString(c.v.Salt)) +
					" and " + strconv.Itoa(c.v.Iterations) + " iterations; the role's password must be set with the same verifier in both places."}
		}
		st := sha256.Sum256(c.clientKey)
		if subtle.ConstantTimeCompare(st[:], c.v.StoredKey) != 1 {
			return nil, &Error{Code: sqlstate.InvalidAuthorizationSpecification, Message: "SCRAM passthrough: the client key does not match the verifier's StoredKey"}
		}
		clientKey, storedKey, serverKey = c.clientKey, c.v.StoredKey, c.v.ServerKey
	} else {
		sp := saltedPassword(prepPassword(c.password), salt, int(iter))
		ck := hmacSum(sp[:], "Client Key")
		st := sha256.Sum256(ck[:])
		sk := hmacSum(sp[:], "Server Key")
		clientKey, storedKey, serverKey = ck[:], st[:], sk[:]
	}

	withoutProof := make([]byte, 0, 9+len(nonce)+3+base64.StdEncoding.EncodedLen(keyLen))
	withoutProof = append(withoutProof, "c=biws,r="...)
	withoutProof = append(withoutProof, nonce...)
	bare := c.first[3:] // after "n,,"
	comma := []byte{','}
	sig := hmacParts(hmac.New(sha256.New, storedKey), bare, comma, serverFirst, comma, withoutProof)
	var proof [keyLen]byte
	subtle.XORBytes(proof[:], clientKey, sig[:])
	c.serverSig = hmacParts(hmac.New(sha256.New, serverKey), bare, comma, serverFirst, comma, withoutProof)

	out := append(withoutProof, ",p="...)
	out = base64.StdEncoding.AppendEncode(out, proof[:])
	c.state = 2
	return out, nil
}

// Verify checks the server-final-message: the server's signature, proving
// that it knows the verifier too. A server error ("e=...") is reported as
// an error.
func (c *ScramClient) Verify(serverFinal []byte) error {
	if c.state != 2 {
		c.state = 3
		return &Error{Code: sqlstate.InternalError, Message: "SCRAM client: Verify called out of order"}
	}
	c.state = 3
	if len(serverFinal) > MaxSCRAMMessage || bytes.IndexByte(serverFinal, 0) >= 0 {
		return clientErr("malformed SCRAM message (invalid server-final-message)")
	}
	sc := &scanner{s: string(serverFinal)}
	if sc.cur() == 'e' {
		v, _ := sc.attrValue('e')
		return &Error{Code: sqlstate.InvalidAuthorizationSpecification, Message: "error received from server in SCRAM exchange: " + sanitizeStr(v)}
	}
	v, err := sc.attrValue('v')
	if err != nil {
		return clientErr(`malformed SCRAM message (attribute "v" expected)`)
	}
	if sc.cur() != 0 {
		return clientErr("malformed SCRAM message (garbage at end of server-final-message)")
	}
	sig, ok := pgB64Decode(v)
	if !ok || len(sig) != keyLen {
		return clientErr("malformed SCRAM message (malformed server signature)")
	}
	if subtle.ConstantTimeCompare(sig, c.serverSig[:]) != 1 {
		return &Error{Code: sqlstate.InvalidAuthorizationSpecification, Message: "incorrect server signature"}
	}
	return nil
}
