package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"
)

// Real captures used as seeds.
const (
	// PostgreSQL 15 talking to ScramClient("sekret", zeroReader{}) for a role
	// whose password is "sekret".
	capPGVerifier    = "SCRAM-SHA-256$4096:+AEqOQ7Pin24yEuwzugxow==$eixMqsGT03pnDlRlc2LPBgHBZkC61JhD9JA5DA6ocSM=:Pq8+ycymuTTZVaGMAtP4PjNiavOpoQFpksXOepBrQnM="
	capPGServerFirst = "r=AAAAAAAAAAAAAAAAAAAAAAAApVA9k2Jd4QLwStq235KEHWCL,s=+AEqOQ7Pin24yEuwzugxow==,i=4096"
	capPGClientFinal = "c=biws,r=AAAAAAAAAAAAAAAAAAAAAAAApVA9k2Jd4QLwStq235KEHWCL,p=ooQVOOxyo0blh01mWiQj7SGTRvNDQ2OaB1nMFQZXRkM="
	capPGServerFinal = "v=PGN4+tGBbAgxCdN/jcKtOSdXPc26ubi57EqEf2UF0GY="
	// pgx's client talking to ScramServer.
	capPgxClientFirst = "n,,n=,r=wxzXZsDcTelYCcKrQcpA2LXQ"
	capPgxClientFinal = "c=biws,r=wxzXZsDcTelYCcKrQcpA2LXQ40JXrYmxZ+AZOk/jcu5HgsNP,p=ns54uKv39mi3YEp3CZaZvKyWhql6CLAqjkqdSciOZro="
)

func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{"", "sekret", capPGVerifier, pgVerifier, MD5Hash("u", "p"),
		"SCRAM-SHA-256$4096:$a:b", "$SCRAM-SHA-256$-1:YQ==YWJj$:x:y", "md5" + strings.Repeat("A", 32)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sec := ParseSecret(s)
		switch sec.Kind {
		case SecretSCRAM:
			again := ParseSecret(sec.SCRAM.String())
			if again.Kind != SecretSCRAM || again.SCRAM.String() != sec.SCRAM.String() {
				t.Fatalf("%q: verifier does not round-trip: %s", s, sec.SCRAM)
			}
		case SecretMD5:
			if !isMD5Hash(sec.MD5) {
				t.Fatal("not an md5 hash")
			}
		case SecretNone:
			if s != "" && s[0] != 0 {
				t.Fatalf("%q: SecretNone", s)
			}
		}
		CheckMD5(sec, "u", [4]byte{1, 2, 3, 4}, "md5")
	})
}

func FuzzParseUserlist(f *testing.F) {
	f.Add([]byte("; comment\n\"alice\" \"" + capPGVerifier + "\"\n\"bob\" \"" + MD5Hash("bob", "x") + "\" extra\n\"q\"\"x\" \"a\"\"b\"\n"))
	f.Add([]byte("\"multi\nline\" x\n\"pw\""))
	f.Add([]byte("\"a\" \"b\"\nbroken\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		users, err := ParseUserlist(bytes.NewReader(data))
		if err == nil && users == nil {
			t.Fatal("nil map without an error")
		}
		for u := range users {
			if len(u) >= pgbouncerMaxUsername {
				t.Fatalf("user name of %d bytes", len(u))
			}
		}
	})
}

func FuzzParseHBA(f *testing.F) {
	f.Add([]byte("local all @names peer\nhost sameuser,\"DB\" all 10.0.0.0/8 md5 # c\nhostssl all all ::1/128 cert map=x\nhost all all 10.1.2.3 255.255.0.0 scram-sha-256\n"))
	f.Add([]byte("host all +g 0.0.0.0/0 md5"))
	f.Add([]byte("hostnossl \"a\"\"b\" all fe80::/10 trust"))
	conns := []HBAConn{
		{Local: true, Database: "alice", User: "alice"},
		{Addr: netip.MustParseAddr("10.1.2.3"), Database: "DB", User: "bob smith"},
		{TLS: true, Addr: netip.MustParseAddr("::1"), Database: "x", User: "carol"},
		{Addr: netip.MustParseAddr("::ffff:10.0.0.1"), Database: "all", User: "all"},
		{},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHBA(bytes.NewReader(data), "testdata/hba")
		if err != nil {
			if h != nil {
				t.Fatal("HBA with an error")
			}
			return
		}
		for _, c := range conns {
			if m, ok := h.Method(c); ok && !hbaMethods[m] {
				t.Fatalf("method %q", m)
			}
		}
	})
}

// FuzzScramServer: any client-first then client-final: no panic, and no
// success without the proof of the password.
func FuzzScramServer(f *testing.F) {
	const pw = "sekret"
	v := NewVerifier(pw, []byte("fuzz salt 012345"), 16)
	wantKey := func() []byte {
		sp := saltedPassword(pw, v.Salt, v.Iterations)
		k := hmacSum(sp[:], "Client Key")
		return k[:]
	}()
	// A valid exchange with the deterministic nonces of zeroReader.
	c := NewScramClient(pw, zeroReader{})
	s := NewScramServer(v, zeroReader{})
	first := c.First()
	sf, _ := s.ClientFirst(first)
	final, _ := c.Final(sf)
	f.Add(first, final, false)
	f.Add(first, final, true)
	f.Add([]byte(capPgxClientFirst), []byte(capPgxClientFinal), false)
	f.Add([]byte("n,,n=,r=AAAAAAAAAAAAAAAAAAAAAAAA"), []byte(capPGClientFinal), false)
	f.Add([]byte("y,,n=user,r=abc,x=ext"), []byte("c=eSws,r=abc,e=x,p=AAAA"), false)
	f.Add([]byte("p=tls-server-end-point,,n=,r=abc"), []byte("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=abc,p=AAAA"), false)
	f.Fuzz(func(t *testing.T, first, final []byte, mock bool) {
		var s *ScramServer
		if mock {
			s = NewMockScramServer("nobody", []byte("secret"), zeroReader{})
		} else {
			s = NewScramServer(v, zeroReader{})
		}
		if _, err := s.ClientFirst(first); err != nil {
			if _, _, err := s.ClientFinal(final); err == nil {
				t.Fatal("ClientFinal succeeded after ClientFirst failed")
			}
			return
		}
		sfin, ck, err := s.ClientFinal(final)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if mock {
			t.Fatal("a mock exchange succeeded")
		}
		if !bytes.Equal(ck, wantKey) || !bytes.HasPrefix(sfin, []byte("v=")) {
			t.Fatalf("succeeded without the password's proof: %q / %q", first, final)
		}
	})
}

// FuzzScramClient: any server-first then server-final: no panic, and Verify
// succeeds only with the signature of a server knowing the verifier.
func FuzzScramClient(f *testing.F) {
	const pw = "sekret"
	f.Add([]byte(capPGServerFirst), []byte(capPGServerFinal))
	f.Add([]byte("r=AAAAAAAAAAAAAAAAAAAAAAAAx,s=c2FsdA==,i=1"), []byte("e=invalid-proof"))
	f.Add([]byte("r=AAAAAAAAAAAAAAAAAAAAAAAAx,s=YQ==YWJj,i= +2,x=y"), []byte("v=AAAA,x"))
	f.Fuzz(func(t *testing.T, serverFirst, serverFinal []byte) {
		c := NewScramClient(pw, zeroReader{})
		// Up to MaxClientIterations an input costs seconds of PBKDF2, which
		// Go's fuzzer reports as a hang (it found "i=10000000"); the parsing
		// is the same below the limit.
		c.maxIter = 50_000
		first := c.First()
		final, err := c.Final(serverFirst)
		if err != nil {
			if c.Verify(serverFinal) == nil {
				t.Fatal("Verify succeeded after Final failed")
			}
			return
		}
		if !bytes.HasPrefix(final, []byte("c=biws,r=AAAAAAAAAAAAAAAAAAAAAAAA")) {
			t.Fatalf("client-final %q", final)
		}
		if c.Verify(serverFinal) != nil {
			return
		}
		// Recompute the signature independently from the server-first.
		var salt []byte
		var iter int64
		for _, kv := range strings.Split(string(serverFirst), ",") {
			switch {
			case strings.HasPrefix(kv, "s="):
				salt, _ = pgB64Decode(kv[2:])
			case strings.HasPrefix(kv, "i="):
				iter, _ = cStrtol(kv[2:])
			}
		}
		ver := NewVerifier(pw, salt, int(iter))
		withoutProof := final[:bytes.LastIndex(final, []byte(",p="))]
		mac := hmac.New(sha256.New, ver.ServerKey)
		mac.Write([]byte(string(first[3:]) + "," + string(serverFirst) + "," + string(withoutProof)))
		want := "v=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		got, _ := pgB64Decode(string(serverFinal[2:]))
		if "v="+base64.StdEncoding.EncodeToString(got) != want {
			t.Fatalf("Verify accepted %q for %q", serverFinal, serverFirst)
		}
	})
}
