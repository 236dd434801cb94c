package auth

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// TestReplayPostgresTranscript: the SCRAM exchange captured between
// PostgreSQL 15 and ScramClient, replayed through ScramServer given
// PostgreSQL's server nonce, yields PostgreSQL's messages byte for byte; and
// the client accepts PostgreSQL's messages.
func TestReplayPostgresTranscript(t *testing.T) {
	v := ParseSecret(capPGVerifier).SCRAM
	nonce, _ := base64.StdEncoding.DecodeString("pVA9k2Jd4QLwStq235KEHWCL")
	s := NewScramServer(v, bytes.NewReader(nonce))
	sf, err := s.ClientFirst([]byte("n,,n=,r=AAAAAAAAAAAAAAAAAAAAAAAA"))
	if err != nil || string(sf) != capPGServerFirst {
		t.Fatalf("server-first %q, %v; PostgreSQL sent %q", sf, err, capPGServerFirst)
	}
	fin, ck, err := s.ClientFinal([]byte(capPGClientFinal))
	if err != nil || string(fin) != capPGServerFinal {
		t.Fatalf("server-final %q, %v; PostgreSQL sent %q", fin, err, capPGServerFinal)
	}

	c := NewScramClient("sekret", zeroReader{})
	if string(c.First()) != "n,,n=,r=AAAAAAAAAAAAAAAAAAAAAAAA" {
		t.Fatal(string(c.First()))
	}
	cf, err := c.Final([]byte(capPGServerFirst))
	if err != nil || string(cf) != capPGClientFinal {
		t.Fatalf("client-final %q, %v; captured %q", cf, err, capPGClientFinal)
	}
	if err := c.Verify([]byte(capPGServerFinal)); err != nil {
		t.Fatal(err)
	}

	// Passthrough with the recovered key reproduces the same client-final.
	p := NewScramClientFromKeys(v, ck, zeroReader{})
	p.First()
	if cf2, err := p.Final([]byte(capPGServerFirst)); err != nil || !bytes.Equal(cf2, cf) {
		t.Fatalf("passthrough client-final %q, %v", cf2, err)
	}
	if err := p.Verify([]byte(capPGServerFinal)); err != nil {
		t.Fatal(err)
	}
	// A server that does not know the verifier is caught. (The padding bits
	// of the last base64 character are ignored, as pg_b64_decode does, so
	// the change must hit data bits.)
	c2 := NewScramClient("sekret", zeroReader{})
	c2.First()
	c2.Final([]byte(capPGServerFirst))
	if err := c2.Verify([]byte("v=PGN4+tGBbAgxCdN/jcKtOSdXPc26ubi57EqEf2UF0GA=")); err == nil {
		t.Fatal("wrong server signature accepted")
	}
}
