package loop

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/belaydb/belay/auth"
	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
)

// playClient plays the client side of an exchange against a, with password
// pw, the way libpq does, and returns the last step. The client's messages
// are appended to wire when it is not nil.
func playClient(t testing.TB, a *authExchange, pw string, wire *bytes.Buffer) authStep {
	send := func(body []byte) authStep {
		if wire != nil {
			wire.Write(codec.AppendFrame(nil, codec.MsgPasswordMessage, body))
		}
		return a.message(codec.MsgPasswordMessage, body)
	}
	st := a.begin()
	for st.outcome == authContinue {
		f, _, err := codec.ReadFrame(st.out, codec.MaxProtocolMessage)
		if err != nil || f.Type != codec.MsgAuthentication {
			t.Fatalf("not an authentication request: %q %v", st.out, err)
		}
		kind, data, err := codec.ParseAuthentication(f.Body)
		if err != nil {
			t.Fatal(err)
		}
		var msg []byte
		switch kind {
		case codec.AuthCleartextPassword:
			msg = append([]byte(pw), 0)
		case codec.AuthMD5Password:
			var salt [4]byte
			copy(salt[:], data)
			msg = append([]byte(auth.MD5Response(auth.MD5Hash(a.user, pw), salt)), 0)
		case codec.AuthSASL:
			sc := auth.NewScramClient(pw, rand.Reader)
			first := sc.First()
			body := append([]byte("SCRAM-SHA-256\x00"), binary.BigEndian.AppendUint32(nil, uint32(len(first)))...)
			st = send(append(body, first...))
			if st.outcome != authContinue {
				return st
			}
			f, _, _ := codec.ReadFrame(st.out, codec.MaxProtocolMessage)
			_, serverFirst, _ := codec.ParseAuthentication(f.Body)
			final, err := sc.Final(serverFirst)
			if err != nil {
				t.Fatal(err)
			}
			st = send(final)
			if st.outcome == authOK {
				f, _, _ := codec.ReadFrame(st.out, codec.MaxProtocolMessage)
				_, serverFinal, _ := codec.ParseAuthentication(f.Body)
				if err := sc.Verify(serverFinal); err != nil {
					t.Fatalf("belay's server signature: %v", err)
				}
			}
			return st
		default:
			t.Fatalf("unexpected request %d", kind)
		}
		st = send(msg)
	}
	return st
}

func TestAuthExchange(t *testing.T) {
	salt := []byte("0123456789abcdef")
	plain := auth.Secret{Kind: auth.SecretPlain, Plain: "pw"}
	md5 := auth.Secret{Kind: auth.SecretMD5, MD5: auth.MD5Hash("u", "pw")}
	scram := auth.Secret{Kind: auth.SecretSCRAM, SCRAM: auth.NewVerifier("pw", salt, 4096)}
	none := auth.Secret{}
	for _, tc := range []struct {
		name   string
		method authMethod
		secret auth.Secret
		pw     string
		ok     bool
		cred   string // which credential the pool gets: password, md5, scram
		why    string // with !ok: the reason logged
	}{
		{"scram/plain", methodSCRAM, plain, "pw", true, "password", ""},
		{"scram/scram", methodSCRAM, scram, "pw", true, "scram", ""},
		{"scram/scram wrong", methodSCRAM, scram, "pW", false, "", "wrong password: the SCRAM proof does not match the stored SCRAM verifier"},
		{"scram/plain wrong", methodSCRAM, plain, "pW", false, "", "wrong password: the SCRAM proof does not match the auth file's password"},
		{"scram/md5 cannot", methodSCRAM, md5, "pw", false, "", "an md5 hash cannot answer a SCRAM exchange"},
		{"scram/unknown", methodSCRAM, none, "pw", false, "", "the user is not in the auth file"},
		{"md5/plain", methodMD5, plain, "pw", true, "password", ""},
		{"md5/md5", methodMD5, md5, "pw", true, "md5", ""},
		{"md5/md5 wrong", methodMD5, md5, "p", false, "", "wrong password: the md5 response does not match the stored md5 hash"},
		{"md5/scram switches to SCRAM", methodMD5, scram, "pw", true, "scram", ""},
		{"md5/unknown", methodMD5, none, "pw", false, "", "the user is not in the auth file"},
		{"password/scram", methodPassword, scram, "pw", true, "password", ""},
		{"password/md5", methodPassword, md5, "pw", true, "password", ""},
		{"password/plain wrong", methodPassword, plain, "px", false, "", "wrong password: the cleartext password does not match the auth file's password"},
		{"password/empty", methodPassword, plain, "", false, "", "empty password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &authExchange{method: tc.method, user: "u", secret: tc.secret, rand: rand.Reader, mock: []byte("k")}
			st := playClient(t, a, tc.pw, nil)
			if (st.outcome == authOK) != tc.ok {
				t.Fatalf("outcome %d, want ok=%v (%+v)", st.outcome, tc.ok, st.err)
			}
			if !tc.ok {
				if st.err.Code != sqlstate.InvalidPassword || st.err.Message != `password authentication failed for user "u"` {
					t.Fatalf("error %+v", st.err)
				}
				if !strings.Contains(st.why, tc.why) || st.why == "" {
					t.Fatalf("reason %q, want %q", st.why, tc.why)
				}
				return
			}
			var got string
			switch c := st.cred; {
			case c.Password != "":
				got = "password"
			case c.MD5 != "":
				got = "md5"
			case c.SCRAM != nil && len(c.ClientKey) == 32:
				got = "scram"
			}
			if got != tc.cred {
				t.Fatalf("credential %q, want %q", got, tc.cred)
			}
		})
	}
	// Anything but a password message is a protocol violation.
	a := &authExchange{method: methodSCRAM, user: "u", secret: scram, rand: rand.Reader}
	a.begin()
	if st := a.message('Q', []byte("SELECT 1\x00")); st.outcome != authFail || st.err.Code != sqlstate.ProtocolViolation {
		t.Fatalf("a Query during authentication: %+v", st)
	}
}

// FuzzAuthExchange feeds arbitrary client messages to every method and kind
// of secret: no panic, and no success without the password (which the
// fuzzer cannot see: it is not in the corpus and compared in constant time).
func FuzzAuthExchange(f *testing.F) {
	// Seeds: real exchanges with a wrong password, as libpq sends them.
	for m := methodPassword; m <= methodSCRAM; m++ {
		var wire bytes.Buffer
		a := &authExchange{method: m, user: "u", secret: auth.Secret{Kind: auth.SecretPlain, Plain: "the password"}, rand: rand.Reader, mock: []byte("k")}
		playClient(f, a, "wrong", &wire)
		f.Add(uint8(m), uint8(auth.SecretPlain), wire.Bytes())
	}
	f.Add(uint8(methodSCRAM), uint8(auth.SecretSCRAM), []byte("p\x00\x00\x00\x0fSCRAM-SHA-256\x00\xff\xff\xff\xff"))
	salt := []byte("fuzz salt 16 byt")
	secrets := []auth.Secret{
		{},
		{Kind: auth.SecretPlain, Plain: "8a6f1c0e-secret"},
		{Kind: auth.SecretMD5, MD5: auth.MD5Hash("u", "8a6f1c0e-secret")},
		{Kind: auth.SecretSCRAM, SCRAM: auth.NewVerifier("8a6f1c0e-secret", salt, 4096)},
	}
	f.Fuzz(func(t *testing.T, method, kind uint8, wire []byte) {
		a := &authExchange{method: authMethod(method % 6), user: "u", secret: secrets[int(kind)%len(secrets)],
			rand: bytes.NewReader(bytes.Repeat([]byte{7}, 4096)), mock: []byte("k")}
		st := a.begin()
		for st.outcome == authContinue && len(wire) > 0 {
			fr, n, err := codec.ReadFrame(wire, maxAuthMessage)
			if err != nil {
				return
			}
			wire = wire[n:]
			st = a.message(fr.Type, fr.Body)
		}
		if st.outcome == authOK {
			t.Fatalf("authenticated without the password: method %d, secret kind %d", method%6, kind)
		}
		if st.outcome == authFail && st.err.Code == "" {
			t.Fatal("failure without a SQLSTATE")
		}
	})
}
