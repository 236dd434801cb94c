package planner

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// LiteralValue is the value of the literal lit, one that Literals found: a
// number's text (its sign kept, the blanks after a sign dropped), or a
// string's characters: '...' (with ” for a quote; no backslash escapes,
// as with standard_conforming_strings on), E'...' with its backslash
// escapes, N'...', $tag$...$tag$, and continuations ('a'<newline>'b' is
// "ab"). ok is false for bit strings (B'...', X'...') and for what it
// cannot read (an E string whose escapes make no valid UTF-8, say).
func LiteralValue(lit []byte) (v string, ok bool) {
	if len(lit) == 0 {
		return "", false
	}
	switch c := lit[0]; {
	case c == '-' || c == '+' || c == '.' || isDigit(c):
		sign := ""
		if c == '-' || c == '+' {
			sign, lit = string(c), lit[skipBlank(lit, 1):]
		}
		if e, clean := numberEnd(lit, 0); !clean || e != len(lit) {
			return "", false
		}
		if sign == "+" {
			sign = ""
		}
		return sign + string(lit), true
	case c == '$':
		n := dollarTagLen(lit, 0)
		if n == 0 || len(lit) < 2*n {
			return "", false
		}
		return string(lit[n : len(lit)-n]), true
	case c == 'n' || c == 'N':
		return quotedParts(lit[1:], false)
	case c == 'e' || c == 'E':
		return quotedParts(lit[1:], true)
	case c == '\'':
		return quotedParts(lit, false)
	}
	return "", false
}

// quotedParts reads the quoted parts of a string literal (continuations
// joined), with backslash escapes if bs.
func quotedParts(s []byte, bs bool) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '\'' {
			if isSpace(s[i]) {
				i++
				continue
			}
			if s[i] == '-' && i+1 < len(s) && s[i+1] == '-' { // a comment between continuations
				for i < len(s) && s[i] != '\n' && s[i] != '\r' {
					i++
				}
				continue
			}
			return "", false
		}
		e := quotedEnd(s, i, '\'', bs)
		if e > len(s) || e-1 <= i || s[e-1] != '\'' {
			return "", false
		}
		body := s[i+1 : e-1]
		if !bs {
			b.WriteString(strings.ReplaceAll(string(body), "''", "'"))
		} else if !unescape(&b, body) {
			return "", false
		}
		i = e
	}
	return b.String(), true
}

// unescape writes the value of an E string's body: Postgres's backslash
// escapes (\b \f \n \r \t, octal \o \oo \ooo, hex \xh \xhh, \uXXXX,
// \UXXXXXXXX, any other \c is c) and ” for a quote.
func unescape(b *strings.Builder, s []byte) bool {
	start := b.Len()
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' && i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch d := s[i]; d {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'x':
			j := i + 1
			for j < len(s) && j < i+3 && isHex(s[j]) {
				j++
			}
			if j == i+1 {
				b.WriteByte('x')
				continue
			}
			v, _ := strconv.ParseUint(string(s[i+1:j]), 16, 8)
			b.WriteByte(byte(v))
			i = j - 1
		case 'u', 'U':
			n := 4
			if d == 'U' {
				n = 8
			}
			if i+1+n > len(s) {
				return false
			}
			v, err := strconv.ParseUint(string(s[i+1:i+1+n]), 16, 32)
			if err != nil || !utf8.ValidRune(rune(v)) {
				return false
			}
			b.WriteRune(rune(v))
			i += n
		default:
			if d >= '0' && d <= '7' {
				j, v := i, 0
				for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
					v = v*8 + int(s[j]-'0')
					j++
				}
				b.WriteByte(byte(v))
				i = j - 1
				continue
			}
			b.WriteByte(d)
		}
	}
	return utf8.ValidString(b.String()[start:])
}
