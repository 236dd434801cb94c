package shard

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode/utf8"
)

// The values the tests compare with Postgres: edges first, then random
// ones from a fixed seed (so a failure reproduces).

func testRand() *rand.Rand { return rand.New(rand.NewPCG(20, 0x7A5B22367996DCFD)) }

// intCorpus: zero and ±1, the bounds of smallint, integer and bigint and
// their neighbours, powers of two and ten of both signs, and random values
// of every magnitude (uniform over all 64 bits, and of random bit lengths).
func intCorpus(r *rand.Rand, random int) []int64 {
	vs := []int64{0, 1, -1, 2, -2, 42, -7}
	for _, b := range []int64{math.MaxInt16, math.MinInt16, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64, math.MaxUint16, math.MaxUint32} {
		vs = append(vs, b, b-1, b+1) // wraps at the int64 bounds: still edges
	}
	for i := range 63 {
		vs = append(vs, 1<<i, -(1 << i), 1<<i-1, -(1<<i - 1))
	}
	for p := int64(10); p <= 1e18; p *= 10 {
		vs = append(vs, p, -p)
	}
	for range random / 2 {
		vs = append(vs, int64(r.Uint64()))
	}
	for range random - random/2 {
		v := int64(r.Uint64() >> r.IntN(64))
		if r.IntN(2) == 0 {
			v = -v
		}
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return slices.Compact(vs)
}

// textCorpus: the empty string, short and long ASCII and non-ASCII UTF-8
// strings, perRandom random valid UTF-8 strings (without NUL) of every byte
// length 0..40 (lookup3 takes 12-byte blocks, then a tail of 0..11 bytes:
// every tail case at 0, 1, 2 and 3 blocks), and longer random ones.
func textCorpus(r *rand.Rand, perLen int) []string {
	vs := []string{"", " ", "a", "ab", "abc", "abcd", "hello world!", "hello world!!",
		"é", "ß", "日本語", "🐘", "Ünïcödé ☃ text over twelve bytes", "trailing space ", " leading",
		"aaaaaaaaaaaa", "aaaaaaaaaaaaa", strings.Repeat("x", 1000), strings.Repeat("日本", 300),
		"'quoted'", `"dq"`, `back\slash`, "tab\tnewline\n", "\x01\x7f"}
	for n := 0; n <= 40; n++ {
		for range perLen {
			vs = append(vs, randomUTF8(r, n))
		}
	}
	for range perLen * 4 {
		vs = append(vs, randomUTF8(r, 41+r.IntN(300)))
	}
	slices.Sort(vs)
	return slices.Compact(vs)
}

// randomUTF8 is a random valid UTF-8 string of exactly n bytes, without NUL:
// a mix of ASCII and 2-, 3- and 4-byte characters.
func randomUTF8(r *rand.Rand, n int) string {
	var b []byte
	for len(b) < n {
		room := n - len(b)
		var c rune
		switch k := r.IntN(8); {
		case k < 4 || room < 2:
			c = rune(1 + r.IntN(0x7f))
		case k < 6 || room < 3:
			c = rune(0x80 + r.IntN(0x800-0x80))
		case k < 7 || room < 4:
			c = rune(0x800 + r.IntN(0xd800-0x800)) // below the surrogates
		default:
			c = rune(0x10000 + r.IntN(0x10ffff-0x10000))
		}
		b = utf8.AppendRune(b, c)
	}
	return string(b)
}

// uuidCorpus: nil, max and random uuids.
func uuidCorpus(r *rand.Rand, random int) [][16]byte {
	vs := [][16]byte{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {15: 1}, {0: 0x80}}
	for range random {
		var u [16]byte
		for i := range u {
			u[i] = byte(r.Uint32())
		}
		vs = append(vs, u)
	}
	slices.SortFunc(vs, func(a, b [16]byte) int { return strings.Compare(string(a[:]), string(b[:])) })
	return slices.Compact(vs)
}

// intTexts are integer input texts, valid and not, for ParseInt64: every
// whitespace Postgres skips, signs, bounds and overflows, and forms
// Postgres 15 refuses.
func intTexts(r *rand.Rand, random int) []string {
	vs := []string{"0", "42", " 42", "42 ", "-7", "+7", "-0", "+0", "007", "-007",
		" \t\n\v\f\r12 \t\n\v\f\r", "", " ", "-", "+", "--1", "+-1", "- 1", "1 2", "1e3", "1.0", "1.", ".5",
		"0x10", "0X1f", "0o17", "0b101", "1_000", "12a", "a12", "١٢", "１２", "\u00a012", "12\u00a0", "\u200b1",
		"9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809",
		"+9223372036854775807", "00000000000000000000000000009223372036854775807",
		"99999999999999999999", "-99999999999999999999", "99999999999999999999x", "x99999999999999999999",
		"2147483647", "2147483648", "-2147483648", "-2147483649", "32767", "-32768", "NaN", "infinity", "1,000"}
	ws := []string{"", " ", "\t", "\n", "  ", "\r\n", "\v\f"}
	for range random {
		v := int64(r.Uint64() >> r.IntN(64))
		if r.IntN(2) == 0 {
			v = -v
		}
		s := formatInt(v)
		if v >= 0 && r.IntN(4) == 0 {
			s = "+" + s
		}
		vs = append(vs, ws[r.IntN(len(ws))]+s+ws[r.IntN(len(ws))])
	}
	return vs
}

// uuidTexts are uuid input texts, valid and not: the canonical form, upper
// case, without hyphens, braced, with hyphens after every four digits, and
// random hyphenations, braces and case of random uuids, plus near misses.
func uuidTexts(r *rand.Rand, random int) []string {
	vs := []string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11",
		"a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
		"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
		"", "{}", "{", "}", "-", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-", "-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-}", "{{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}}",
		"a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11", "a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"a0eeb-c99-9c0b-4ef8-bb6d-6bb9bd380a11", "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		" a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 ",
		"a0eebc99 9c0b 4ef8 bb6d 6bb9bd380a11", "0xa0eebc999c0b4ef8bb6d6bb9bd380a11",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", "(a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)"}
	const hexd = "0123456789abcdef"
	for range random {
		var b strings.Builder
		braces := r.IntN(5) == 0
		if braces {
			b.WriteByte('{')
		}
		for i := range 16 {
			c := byte(r.Uint32())
			hi, lo := hexd[c>>4], hexd[c&15]
			if r.IntN(3) == 0 {
				hi, lo = upper(hi), upper(lo)
			}
			b.WriteByte(hi)
			b.WriteByte(lo)
			if i%2 == 1 && i < 15 && r.IntN(3) == 0 {
				b.WriteByte('-')
			}
		}
		if braces {
			b.WriteByte('}')
		}
		s := b.String()
		if r.IntN(4) == 0 { // a near miss: one byte deleted, doubled or changed
			i := r.IntN(len(s))
			switch r.IntN(3) {
			case 0:
				s = s[:i] + s[i+1:]
			case 1:
				s = s[:i+1] + s[i:]
			default:
				s = s[:i] + string("-{} gG0"[r.IntN(7)]) + s[i+1:]
			}
		}
		vs = append(vs, s)
	}
	return vs
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}
