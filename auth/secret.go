package auth

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"math"
	"strconv"
	"strings"
)

// SecretKind says what a stored secret is.
type SecretKind uint8

const (
	SecretNone  SecretKind = iota // no secret (an empty string)
	SecretPlain                   // a cleartext password
	SecretMD5                     // "md5" + hex(md5(password + user))
	SecretSCRAM                   // a SCRAM-SHA-256 verifier
)

func (k SecretKind) String() string {
	switch k {
	case SecretNone:
		return "none"
	case SecretPlain:
		return "plain"
	case SecretMD5:
		return "md5"
	case SecretSCRAM:
		return "scram-sha-256"
	}
	return "SecretKind(" + strconv.Itoa(int(k)) + ")"
}

// Verifier is a SCRAM-SHA-256 verifier: what pg_authid.rolpassword holds as
// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>".
type Verifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte // H(ClientKey), 32 bytes
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key"), 32 bytes
}

// Secret is a stored secret as ParseSecret classified it. Only the field of
// its Kind is set.
type Secret struct {
	Kind  SecretKind
	Plain string   // SecretPlain
	MD5   string   // SecretMD5: the whole "md5..." string
	SCRAM Verifier // SecretSCRAM
}

const (
	keyLen = sha256.Size // SCRAM_KEY_LEN
	// DefaultIterations is PostgreSQL's default SCRAM iteration count.
	DefaultIterations = 4096
	// DefaultSaltLen is PostgreSQL's SCRAM salt length (SCRAM_DEFAULT_SALT_LEN).
	DefaultSaltLen = 16
	md5PasswdLen   = 35
)

// ParseSecret classifies s exactly as PostgreSQL 15's get_password_type
// does: "md5" followed by 32 lowercase hex digits is an MD5 hash; a string
// that PostgreSQL 15's parse_scram_secret accepts is a SCRAM verifier;
// anything else is a cleartext password, except "" which is SecretNone.
// Like PostgreSQL, which sees a C string, it ignores s from its first NUL
// byte on.
func ParseSecret(s string) Secret {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return Secret{Kind: SecretNone}
	}
	if isMD5Hash(s) {
		return Secret{Kind: SecretMD5, MD5: s}
	}
	if v, ok := parseSCRAMSecret(s); ok {
		return Secret{Kind: SecretSCRAM, SCRAM: v}
	}
	return Secret{Kind: SecretPlain, Plain: s}
}

func isMD5Hash(s string) bool {
	if len(s) != md5PasswdLen || !strings.HasPrefix(s, "md5") {
		return false
	}
	for i := 3; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// strtok emulates C's strtok on s from *pos (which must hold no NUL).
// ok=false is strtok's NULL.
func strtok(s string, pos *int, delims string) (tok string, ok bool) {
	i := *pos
	for i < len(s) && strings.IndexByte(delims, s[i]) >= 0 {
		i++
	}
	if i >= len(s) {
		*pos = len(s)
		return "", false
	}
	j := i
	for j < len(s) && strings.IndexByte(delims, s[j]) < 0 {
		j++
	}
	if j < len(s) {
		*pos = j + 1 // the delimiter is overwritten with NUL
	} else {
		*pos = j
	}
	return s[i:j], true
}

// parseSCRAMSecret is PostgreSQL 15's parse_scram_secret (strtok version).
func parseSCRAMSecret(s string) (Verifier, bool) {
	pos := 0
	scheme, ok1 := strtok(s, &pos, "$")
	iter, ok2 := strtok(s, &pos, ":")
	salt, ok3 := strtok(s, &pos, "$")
	stored, ok4 := strtok(s, &pos, ":")
	server, ok5 := strtok(s, &pos, "")
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || scheme != "SCRAM-SHA-256" {
		return Verifier{}, false
	}
	n, ok := cStrtol(iter)
	if !ok {
		return Verifier{}, false
	}
	saltB, ok := pgB64Decode(salt)
	if !ok {
		return Verifier{}, false
	}
	storedB, ok := pgB64Decode(stored)
	if !ok || len(storedB) != keyLen {
		return Verifier{}, false
	}
	serverB, ok := pgB64Decode(server)
	if !ok || len(serverB) != keyLen {
		return Verifier{}, false
	}
	// *iterations = strtol(...): a long stored in an int, truncated
	// modulo 2^32 as gcc does.
	return Verifier{Iterations: int(int32(n)), Salt: saltB, StoredKey: storedB, ServerKey: serverB}, true
}

// cStrtol is glibc's strtol(s, &end, 10) followed by the check
// "*end == '\0' && errno == 0".
func cStrtol(s string) (int64, bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var v uint64
	overflow := false
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		if !overflow {
			v = v*10 + uint64(s[i]-'0')
			if v > 1<<63 {
				overflow = true
			}
		}
		i++
	}
	if i == start || i != len(s) { // no digits (end = s) or trailing bytes
		return 0, false
	}
	if overflow || (!neg && v > math.MaxInt64) {
		return 0, false // ERANGE
	}
	if neg {
		return -int64(v), true // v <= 1<<63: -(1<<63) wraps to MinInt64, as wanted
	}
	return int64(v), true
}

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

var b64lookup = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// pgB64Decode is PostgreSQL's pg_b64_decode, quirks included (padding is
// accepted in odd places; whitespace is rejected). The output is never
// longer than 3/4 of the input.
func pgB64Decode(s string) ([]byte, bool) {
	// Every byte advances pos, so a valid input is a multiple of 4 long.
	if len(s)%4 != 0 {
		return nil, false
	}
	dst := make([]byte, 0, len(s)/4*3)
	var buf uint32
	pos, end := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		var b uint32
		if c == '=' {
			if end == 0 {
				switch pos {
				case 2:
					end = 1
				case 3:
					end = 2
				default:
					return nil, false
				}
			}
		} else {
			l := b64lookup[c]
			if l < 0 {
				return nil, false
			}
			b = uint32(l)
		}
		buf = buf<<6 + b
		pos++
		if pos == 4 {
			dst = append(dst, byte(buf>>16))
			if end == 0 || end > 1 {
				dst = append(dst, byte(buf>>8))
			}
			if end == 0 || end > 2 {
				dst = append(dst, byte(buf))
			}
			buf, pos = 0, 0
		}
	}
	return dst, true
}

// String returns v in PostgreSQL's text form,
// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (base64 with
// padding, as pg_b64_encode writes it).
func (v Verifier) String() string {
	enc := base64.StdEncoding
	return "SCRAM-SHA-256$" + strconv.Itoa(v.Iterations) + ":" + enc.EncodeToString(v.Salt) +
		"$" + enc.EncodeToString(v.StoredKey) + ":" + enc.EncodeToString(v.ServerKey)
}

// valid reports whether v can serve a SCRAM exchange.
func (v Verifier) valid() bool {
	return v.Iterations >= 1 && len(v.StoredKey) == keyLen && len(v.ServerKey) == keyLen
}

// NewVerifier computes the verifier PostgreSQL stores for password with
// this salt and iteration count (scram_build_secret): the password is
// SASLprep'd as pg_saslprep does, falling back to its raw bytes when that
// fails. iterations < 1 means DefaultIterations.
func NewVerifier(password string, salt []byte, iterations int) Verifier {
	if iterations < 1 {
		iterations = DefaultIterations
	}
	sp := saltedPassword(prepPassword(password), salt, iterations)
	ck := hmacSum(sp[:], "Client Key")
	stored := sha256.Sum256(ck[:])
	sk := hmacSum(sp[:], "Server Key")
	return Verifier{
		Iterations: iterations,
		Salt:       append([]byte(nil), salt...),
		StoredKey:  stored[:],
		ServerKey:  sk[:],
	}
}

// prepPassword is what PostgreSQL hashes: pg_saslprep's result, or the raw
// password when pg_saslprep fails.
func prepPassword(password string) string {
	if p, ok := saslprep(password); ok {
		return p
	}
	return password
}

// saltedPassword is Hi(password, salt, iterations) of RFC 5802, PBKDF2 with
// HMAC-SHA-256 and one block.
func saltedPassword(password string, salt []byte, iterations int) [keyLen]byte {
	mac := hmac.New(sha256.New, []byte(password))
	mac.Write(salt)
	mac.Write([]byte{0, 0, 0, 1})
	var u [keyLen]byte
	mac.Sum(u[:0])
	result := u
	for i := 1; i < iterations; i++ {
		mac.Reset()
		mac.Write(u[:])
		mac.Sum(u[:0])
		for j := range result {
			result[j] ^= u[j]
		}
	}
	return result
}

func hmacSum(key []byte, msg string) (out [keyLen]byte) {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	mac.Sum(out[:0])
	return out
}

// hmacParts computes HMAC(key, parts[0] + parts[1] + ...).
func hmacParts(mac hash.Hash, parts ...[]byte) (out [keyLen]byte) {
	for _, p := range parts {
		mac.Write(p)
	}
	mac.Sum(out[:0])
	return out
}

// MD5Hash returns what pg_authid stores for password with
// password_encryption = md5: "md5" + hex(md5(password + user)).
func MD5Hash(user, password string) string {
	h := md5.New()
	h.Write([]byte(password))
	h.Write([]byte(user))
	return "md5" + hex.EncodeToString(h.Sum(nil))
}

// MD5Response returns what a client answers to AuthenticationMD5Password
// with this salt: "md5" + hex(md5(md5hash[3:] + salt)), md5hash being
// MD5Hash(user, password). A md5hash without the "md5" prefix is used whole.
func MD5Response(md5hash string, salt [4]byte) string {
	h := md5.New()
	h.Write([]byte(strings.TrimPrefix(md5hash, "md5")))
	h.Write(salt[:])
	return "md5" + hex.EncodeToString(h.Sum(nil))
}

// CheckMD5 reports whether response is the right answer to an MD5 password
// challenge with salt for user, whose stored secret is s. Only SecretPlain
// and SecretMD5 secrets can be checked (as in PostgreSQL, a SCRAM verifier
// cannot serve MD5 authentication); the comparison is constant-time.
func CheckMD5(s Secret, user string, salt [4]byte, response string) bool {
	var want string
	switch s.Kind {
	case SecretMD5:
		want = MD5Response(s.MD5, salt)
	case SecretPlain:
		want = MD5Response(MD5Hash(user, s.Plain), salt)
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(response)) == 1
}

// CheckPassword reports whether the cleartext password (from a
// PasswordMessage, for the "password" method) matches the stored secret s of
// user, as PostgreSQL's plain_crypt_verify does: a SCRAM verifier is checked
// by recomputing its ServerKey from the SASLprep'd password, an MD5 hash by
// hashing the password with the user name, a cleartext secret directly. The
// comparisons are constant-time.
func CheckPassword(s Secret, user, password string) bool {
	switch s.Kind {
	case SecretSCRAM:
		v := s.SCRAM
		if !v.valid() {
			return false
		}
		sp := saltedPassword(prepPassword(password), v.Salt, v.Iterations)
		sk := hmacSum(sp[:], "Server Key")
		return subtle.ConstantTimeCompare(sk[:], v.ServerKey) == 1
	case SecretMD5:
		return subtle.ConstantTimeCompare([]byte(MD5Hash(user, password)), []byte(s.MD5)) == 1
	case SecretPlain:
		return subtle.ConstantTimeCompare([]byte(password), []byte(s.Plain)) == 1
	}
	return false
}
