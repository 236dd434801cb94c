package auth

import (
	"crypto/rand"
	"testing"
)

// BenchmarkScramServerExchange: the server side of one login (ClientFirst
// and ClientFinal) against client messages prepared outside the timer. The
// cost is the server's HMACs; the PBKDF2 is the client's.
func BenchmarkScramServerExchange(b *testing.B) {
	v := NewVerifier("sekret", []byte("0123456789abcdef"), DefaultIterations)
	c := NewScramClient("sekret", zeroReader{})
	first := c.First()
	sf, err := NewScramServer(v, zeroReader{}).ClientFirst(first)
	if err != nil {
		b.Fatal(err)
	}
	final, err := c.Final(sf)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s := NewScramServer(v, zeroReader{})
		if _, err := s.ClientFirst(first); err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.ClientFinal(final); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScramServerExchangeCryptoRand: the same with nonces from
// crypto/rand (so the client-final is built per exchange, outside nothing:
// it includes the client's proof computation from a cached ClientKey, via
// passthrough keys, which costs HMACs, not PBKDF2).
func BenchmarkScramServerExchangeCryptoRand(b *testing.B) {
	v := NewVerifier("sekret", []byte("0123456789abcdef"), DefaultIterations)
	sp := saltedPassword("sekret", v.Salt, v.Iterations)
	ck := hmacSum(sp[:], "Client Key")
	b.ReportAllocs()
	for b.Loop() {
		c := NewScramClientFromKeys(v, ck[:], rand.Reader)
		s := NewScramServer(v, rand.Reader)
		sf, err := s.ClientFirst(c.First())
		if err != nil {
			b.Fatal(err)
		}
		final, err := c.Final(sf)
		if err != nil {
			b.Fatal(err)
		}
		fin, _, err := s.ClientFinal(final)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Verify(fin); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMockScramServer: an unknown user's exchange costs what a known
// user's does (up to the failing compare).
func BenchmarkMockScramServer(b *testing.B) {
	c := NewScramClient("x", zeroReader{})
	first := c.First()
	m := NewMockScramServer("nobody", []byte("secret"), zeroReader{})
	sf, _ := m.ClientFirst(first)
	final, _ := c.Final(sf)
	b.ReportAllocs()
	for b.Loop() {
		s := NewMockScramServer("nobody", []byte("secret"), zeroReader{})
		s.ClientFirst(first)
		if _, _, err := s.ClientFinal(final); err == nil {
			b.Fatal("mock succeeded")
		}
	}
}

// BenchmarkNewVerifier: PBKDF2 with 4096 iterations (the client's cost per
// login, and CheckPassword's).
func BenchmarkNewVerifier(b *testing.B) {
	salt := []byte("0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		NewVerifier("sekret", salt, DefaultIterations)
	}
}
