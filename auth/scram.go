package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"strconv"

	"github.com/belaydb/belay/codec/sqlstate"
)

const (
	// MaxSCRAMMessage is the longest SCRAM message either side accepts:
	// PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH.
	MaxSCRAMMessage = 65535
	// rawNonceLen is SCRAM_RAW_NONCE_LEN: 18 random bytes, 24 base64 characters.
	rawNonceLen = 18
)

// scanner reads a SCRAM message the way auth-scram.c walks its C string:
// cur() is 0 at the end (messages with a NUL are rejected beforehand).
type scanner struct {
	s string
	p int
}

func (sc *scanner) cur() byte {
	if sc.p < len(sc.s) {
		return sc.s[sc.p]
	}
	return 0
}

func (sc *scanner) value() string {
	begin := sc.p
	for sc.p < len(sc.s) && sc.s[sc.p] != ',' {
		sc.p++
	}
	v := sc.s[begin:sc.p]
	if sc.p < len(sc.s) {
		sc.p++ // the comma
	}
	return v
}

// attrValue is read_attr_value.
func (sc *scanner) attrValue(attr byte) (string, *Error) {
	if sc.cur() != attr {
		return "", malformed(`Expected attribute "` + string(attr) + `" but found "` + sanitizeChar(sc.cur()) + `".`)
	}
	sc.p++
	if sc.cur() != '=' {
		return "", malformed(`Expected character "=" for attribute "` + string(attr) + `".`)
	}
	sc.p++
	return sc.value(), nil
}

// anyAttr is read_any_attr.
func (sc *scanner) anyAttr() (byte, string, *Error) {
	attr := sc.cur()
	if attr == 0 {
		return 0, "", malformed("Attribute expected, but found end of string.")
	}
	if !('A' <= attr && attr <= 'Z' || 'a' <= attr && attr <= 'z') {
		return 0, "", malformed(`Attribute expected, but found invalid character "` + sanitizeChar(attr) + `".`)
	}
	sc.p++
	if sc.cur() != '=' {
		return 0, "", malformed(`Expected character "=" for attribute "` + string(attr) + `".`)
	}
	sc.p++
	return attr, sc.value(), nil
}

// sanitizeChar is auth-scram.c's sanitize_char.
func sanitizeChar(c byte) string {
	if c >= 0x21 && c <= 0x7e {
		return "'" + string(c) + "'"
	}
	const hexd = "0123456789abcdef"
	return "0x" + string([]byte{hexd[c>>4], hexd[c&15]})
}

// sanitizeStr keeps printable ASCII, replaces anything else with '?' and cuts
// at 30 characters (auth-scram.c's sanitize_str).
func sanitizeStr(s string) string {
	if len(s) > 30 {
		s = s[:30]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x21 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// checkInput is scram_exchange's length checks.
func checkInput(msg []byte) *Error {
	if len(msg) == 0 {
		return malformed("The message is empty.")
	}
	if len(msg) > MaxSCRAMMessage {
		return &Error{Code: sqlstate.ProtocolViolation, Message: "invalid message length"}
	}
	for _, c := range msg {
		if c == 0 {
			return malformed("Message length does not match input length.")
		}
	}
	return nil
}

func newNonce(rand io.Reader) (string, error) {
	if rand == nil {
		return "", io.ErrUnexpectedEOF
	}
	var raw [rawNonceLen]byte
	if _, err := io.ReadFull(rand, raw[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw[:]), nil
}

type serverState uint8

const (
	serverInit serverState = iota
	serverSaltSent
	serverDone // finished, successfully or not; no further message is accepted
)

// ScramServer is the server side of one SCRAM-SHA-256 exchange, as
// PostgreSQL's auth-scram.c runs it, without channel binding (the server
// offers only the mechanism "SCRAM-SHA-256"). Feed it the client's messages
// (the data of SASLInitialResponse, then of SASLResponse) and send what it
// returns in AuthenticationSASLContinue and AuthenticationSASLFinal. An
// error ends the exchange: send it to the client as an ErrorResponse (for
// 28P01 PostgreSQL's wording is PasswordFailed(user)). It is not safe for
// concurrent use.
type ScramServer struct {
	v      Verifier
	rand   io.Reader
	doomed bool // mock exchange, or a verifier that cannot succeed
	state  serverState

	cbindFlag   byte
	clientNonce string
	bare        string // client-first-message-bare
	serverFirst string
	serverNonce string
}

// NewScramServer starts an exchange for a role whose verifier is v; nonces
// are read from rand (crypto/rand.Reader in production). A verifier that
// cannot serve (no 32-byte keys, or iterations < 1) makes an exchange that
// fails with 28P01 like a wrong password.
func NewScramServer(v Verifier, rand io.Reader) *ScramServer {
	s := &ScramServer{v: v, rand: rand}
	if !v.valid() {
		s.doomed = true
		if v.Iterations < 1 {
			s.v.Iterations = DefaultIterations
		}
		s.v.StoredKey, s.v.ServerKey = make([]byte, keyLen), make([]byte, keyLen)
	}
	return s
}

// NewMockScramServer starts an exchange for a user who does not exist (or
// has no SCRAM verifier): it goes through the motions with a salt derived
// from user and secret (SHA-256(user + secret), first 16 bytes, as
// PostgreSQL's scram_mock_salt derives it from the cluster's mock
// authentication nonce) and DefaultIterations, and ClientFinal always fails
// with 28P01, after computing the proof as a real exchange does. secret
// must be a per-installation random value kept constant (so that the same
// unknown user always sees the same salt) and secret (so that its salt
// cannot be told from a real one).
func NewMockScramServer(user string, secret []byte, rand io.Reader) *ScramServer {
	h := sha256.New()
	h.Write([]byte(user))
	h.Write(secret)
	sum := h.Sum(nil)
	return &ScramServer{
		v: Verifier{
			Iterations: DefaultIterations,
			Salt:       sum[:DefaultSaltLen],
			StoredKey:  make([]byte, keyLen),
			ServerKey:  make([]byte, keyLen),
		},
		rand:   rand,
		doomed: true,
	}
}

// ClientFirst reads the client-first-message (the SASLInitialResponse data)
// and returns the server-first-message. Errors are *Error: 08P01 for a
// malformed message or channel binding requested ("p="), 0A000 for an
// authzid or a mandatory extension, XX000 when rand fails.
func (s *ScramServer) ClientFirst(msg []byte) ([]byte, error) {
	if s.state != serverInit {
		s.state = serverDone
		return nil, &Error{Code: sqlstate.InternalError, Message: "invalid SCRAM exchange state"}
	}
	s.state = serverDone // until proven otherwise
	if err := checkInput(msg); err != nil {
		return nil, err
	}
	sc := &scanner{s: string(msg)}
	s.cbindFlag = sc.cur()
	switch sc.cur() {
	case 'n', 'y':
		// 'y': the client supports channel binding but thinks the server
		// does not, which is true here.
		sc.p++
		if sc.cur() != ',' {
			return nil, malformed(`Comma expected, but found character "` + sanitizeChar(sc.cur()) + `".`)
		}
		sc.p++
	case 'p':
		return nil, malformed("The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.")
	default:
		return nil, malformed(`Unexpected channel-binding flag "` + sanitizeChar(sc.cur()) + `".`)
	}
	if sc.cur() == 'a' {
		return nil, &Error{Code: sqlstate.FeatureNotSupported, Message: "client uses authorization identity, but it is not supported"}
	}
	if sc.cur() != ',' {
		return nil, malformed(`Unexpected attribute "` + sanitizeChar(sc.cur()) + `" in client-first-message.`)
	}
	sc.p++
	s.bare = sc.s[sc.p:]
	if sc.cur() == 'm' {
		return nil, &Error{Code: sqlstate.FeatureNotSupported, Message: "client requires an unsupported SCRAM extension"}
	}
	if _, err := sc.attrValue('n'); err != nil { // the user name: ignored
		return nil, err
	}
	nonce, err := sc.attrValue('r')
	if err != nil {
		return nil, err
	}
	if !isPrintable(nonce) {
		return nil, &Error{Code: sqlstate.ProtocolViolation, Message: "non-printable characters in SCRAM nonce"}
	}
	s.clientNonce = nonce
	for sc.cur() != 0 { // extensions: ignored
		if _, _, err := sc.anyAttr(); err != nil {
			return nil, err
		}
	}

	sn, rerr := newNonce(s.rand)
	if rerr != nil {
		return nil, &Error{Code: sqlstate.InternalError, Message: "could not generate random nonce"}
	}
	s.serverNonce = sn
	enc := base64.StdEncoding
	out := make([]byte, 0, 2+len(nonce)+len(sn)+3+enc.EncodedLen(len(s.v.Salt))+3+11)
	out = append(out, "r="...)
	out = append(out, nonce...)
	out = append(out, sn...)
	out = append(out, ",s="...)
	out = enc.AppendEncode(out, s.v.Salt)
	out = append(out, ",i="...)
	out = strconv.AppendInt(out, int64(s.v.Iterations), 10)
	s.serverFirst = string(out)
	s.state = serverSaltSent
	return out, nil
}

// ClientFinal reads the client-final-message (the SASLResponse data). On a
// valid proof it returns the server-final-message ("v=<ServerSignature>",
// to send in AuthenticationSASLFinal before AuthenticationOk) and the
// ClientKey the client proved it knows (ClientProof XOR ClientSignature),
// which NewScramClientFromKeys can use to log in to PostgreSQL as this user
// (SCRAM passthrough). An invalid proof, or any proof in a mock exchange,
// is an *Error with 28P01; a malformed message or a nonce mismatch is 08P01.
func (s *ScramServer) ClientFinal(msg []byte) (serverFinal []byte, clientKey []byte, err error) {
	if s.state != serverSaltSent {
		s.state = serverDone
		return nil, nil, &Error{Code: sqlstate.InternalError, Message: "invalid SCRAM exchange state"}
	}
	s.state = serverDone
	if err := checkInput(msg); err != nil {
		return nil, nil, err
	}
	sc := &scanner{s: string(msg)}
	cb, perr := sc.attrValue('c')
	if perr != nil {
		return nil, nil, perr
	}
	if !(cb == "biws" && s.cbindFlag == 'n') && !(cb == "eSws" && s.cbindFlag == 'y') {
		return nil, nil, &Error{Code: sqlstate.ProtocolViolation, Message: "unexpected SCRAM channel-binding attribute in client-final-message"}
	}
	finalNonce, perr := sc.attrValue('r')
	if perr != nil {
		return nil, nil, perr
	}
	var proofAt int
	var proofB64 string
	for {
		proofAt = sc.p - 1
		attr, val, perr := sc.anyAttr()
		if perr != nil {
			return nil, nil, perr
		}
		if attr == 'p' {
			proofB64 = val
			break
		}
	}
	proof, ok := pgB64Decode(proofB64)
	if !ok || len(proof) != keyLen {
		return nil, nil, malformed("Malformed proof in client-final-message.")
	}
	if sc.cur() != 0 {
		return nil, nil, malformed("Garbage found at the end of client-final-message.")
	}
	withoutProof := sc.s[:proofAt]

	// verify_final_nonce
	cn, sn := s.clientNonce, s.serverNonce
	if len(finalNonce) != len(cn)+len(sn) ||
		subtle.ConstantTimeCompare([]byte(finalNonce[:len(cn)]), []byte(cn)) != 1 ||
		subtle.ConstantTimeCompare([]byte(finalNonce[len(cn):]), []byte(sn)) != 1 {
		return nil, nil, &Error{Code: sqlstate.ProtocolViolation, Message: "invalid SCRAM response", Detail: "Nonce does not match."}
	}

	// verify_client_proof, computed in a mock exchange too, so that timing
	// does not tell whether the role exists.
	comma := []byte{','}
	sig := hmacParts(hmac.New(sha256.New, s.v.StoredKey), []byte(s.bare), comma, []byte(s.serverFirst), comma, []byte(withoutProof))
	ck := make([]byte, keyLen)
	subtle.XORBytes(ck, proof, sig[:])
	stored := sha256.Sum256(ck)
	if subtle.ConstantTimeCompare(stored[:], s.v.StoredKey) != 1 || s.doomed {
		return nil, nil, &Error{Code: sqlstate.InvalidPassword, Message: "password authentication failed"}
	}
	ssig := hmacParts(hmac.New(sha256.New, s.v.ServerKey), []byte(s.bare), comma, []byte(s.serverFirst), comma, []byte(withoutProof))
	out := make([]byte, 0, 2+base64.StdEncoding.EncodedLen(keyLen))
	out = append(out, "v="...)
	out = base64.StdEncoding.AppendEncode(out, ssig[:])
	return out, ck, nil
}
