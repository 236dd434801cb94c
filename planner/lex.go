package planner

// Token-level helpers shared by Normalize and Parse (NameSpan, literal
// spans). They follow Postgres's scan.l with standard_conforming_strings on
// (the default since 9.1, and what pg_query assumes).

import "strings"

type text interface{ ~string | ~[]byte }

const (
	clSpace      = 1 << iota // white space
	clIdentStart             // a letter, '_', a byte of a multi-byte character
	clIdentCont              // clIdentStart, a digit, '$'
	clDigit
)

// charClass classifies bytes like Postgres's scanner does.
var charClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		if b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v' {
			t[c] |= clSpace
		}
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '_' || b >= 0x80 {
			t[c] |= clIdentStart | clIdentCont
		}
		if b >= '0' && b <= '9' {
			t[c] |= clDigit | clIdentCont
		}
		if b == '$' {
			t[c] |= clIdentCont
		}
	}
	return t
}()

func isSpace(c byte) bool { return charClass[c]&clSpace != 0 }

func isDigit(c byte) bool { return charClass[c]&clDigit != 0 }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// skipBlank skips white space and comments from i.
func skipBlank[T text](s T, i int) int {
	for i < len(s) {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' && s[i] != '\r' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			i = blockCommentEnd(s, i)
		default:
			return i
		}
	}
	return i
}

// blockCommentEnd returns the end of the (nested) comment that starts at i.
func blockCommentEnd[T text](s T, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case s[i] == '/' && i+1 < len(s) && s[i+1] == '*':
			depth++
			i += 2
		case s[i] == '*' && i+1 < len(s) && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

// identEnd returns the end of the unquoted identifier or keyword at i.
func identEnd[T text](s T, i int) int {
	for i < len(s) && isIdentCont(s[i]) {
		i++
	}
	return i
}

// quotedEnd returns the end of the q-quoted token whose opening quote is at
// i ("..." or '...' with doubled quotes; with backslash escapes if bs).
func quotedEnd[T text](s T, i int, q byte, bs bool) int {
	i++
	for i < len(s) {
		c := s[i]
		switch {
		case bs && c == '\\':
			i += 2
		case c == q && i+1 < len(s) && s[i+1] == q:
			i += 2
		case c == q:
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

// stringEnd returns the end of the string literal whose quote is at i,
// including continuations ('a'<newline>'b' is one literal).
func stringEnd[T text](s T, i int, bs bool) int {
	for {
		i = quotedEnd(s, i, '\'', bs)
		j := i
		for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\f' || s[j] == '\v') {
			j++
		}
		if j >= len(s) || (s[j] != '\n' && s[j] != '\r') {
			return i
		}
		for j < len(s) {
			if isSpace(s[j]) {
				j++
			} else if s[j] == '-' && j+1 < len(s) && s[j+1] == '-' {
				for j < len(s) && s[j] != '\n' && s[j] != '\r' {
					j++
				}
			} else {
				break
			}
		}
		if j >= len(s) || s[j] != '\'' {
			return i
		}
		i = j
	}
}

// dollarTagLen returns the length of a dollar-quote opener ($$ or $tag$) at i,
// 0 if there is none ($1 is a parameter).
func dollarTagLen[T text](s T, i int) int {
	j := i + 1
	if j < len(s) && isDigit(s[j]) {
		return 0
	}
	for j < len(s) && isIdentCont(s[j]) && s[j] != '$' {
		j++
	}
	if j < len(s) && s[j] == '$' {
		return j + 1 - i
	}
	return 0
}

// dollarEnd returns the end of the dollar-quoted string at i (tag length n).
func dollarEnd[T text](s T, i, n int) int {
	tag := s[i : i+n]
	for j := i + n; j+n <= len(s); j++ {
		if s[j] == '$' && string(s[j:j+n]) == string(tag) {
			return j + n
		}
	}
	return len(s)
}

// numberEnd returns the end of the numeric literal at i (a digit, or '.'
// followed by a digit) and whether it is clean: false when identifier
// characters follow it (Postgres's "trailing junk" error).
func numberEnd[T text](s T, i int) (int, bool) {
	if s[i] == '0' && i+2 < len(s) {
		var ok func(byte) bool
		switch s[i+1] {
		case 'x', 'X':
			ok = isHex
		case 'o', 'O':
			ok = func(c byte) bool { return c >= '0' && c <= '7' }
		case 'b', 'B':
			ok = func(c byte) bool { return c == '0' || c == '1' }
		}
		if ok != nil && (ok(s[i+2]) || s[i+2] == '_') {
			j := i + 2
			for j < len(s) && (ok(s[j]) || s[j] == '_') {
				j++
			}
			return j, j >= len(s) || !isIdentCont(s[j])
		}
	}
	j := i
	for j < len(s) && (isDigit(s[j]) || s[j] == '_') {
		j++
	}
	if j < len(s) && s[j] == '.' && !(j+1 < len(s) && s[j+1] == '.') {
		j++
		for j < len(s) && (isDigit(s[j]) || s[j] == '_') {
			j++
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			j = k
			for j < len(s) && (isDigit(s[j]) || s[j] == '_') {
				j++
			}
		}
	}
	return j, j >= len(s) || !isIdentCont(s[j])
}

// literalEnd returns the end of the literal (number, possibly after a minus
// sign; string of any kind; dollar-quoted string) or parameter that starts
// at i, or -1 if no literal starts there.
func literalEnd[T text](s T, i int) int {
	if i < 0 || i >= len(s) {
		return -1
	}
	c := s[i]
	switch {
	case c == '-' || c == '+':
		j := skipBlank(s, i+1)
		if j < len(s) && (isDigit(s[j]) || s[j] == '.' && j+1 < len(s) && isDigit(s[j+1])) {
			e, _ := numberEnd(s, j)
			return e
		}
	case isDigit(c) || c == '.' && i+1 < len(s) && isDigit(s[i+1]):
		e, _ := numberEnd(s, i)
		return e
	case c == '\'':
		return stringEnd(s, i, false)
	case c == '$':
		if n := dollarTagLen(s, i); n > 0 {
			return dollarEnd(s, i, n)
		}
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j > i+1 {
			return j
		}
	case (c == 'e' || c == 'E') && i+1 < len(s) && s[i+1] == '\'':
		return stringEnd(s, i+1, true)
	case (c == 'b' || c == 'B' || c == 'x' || c == 'X' || c == 'n' || c == 'N') && i+1 < len(s) && s[i+1] == '\'':
		return stringEnd(s, i+1, false)
	case (c == 'u' || c == 'U') && i+2 < len(s) && s[i+1] == '&' && s[i+2] == '\'':
		return stringEnd(s, i+2, false)
	}
	return -1
}

// nameTokenEnd returns the end of the name (identifier, "quoted" or
// U&"quoted") at i, or -1.
func nameTokenEnd[T text](s T, i int) int {
	if i >= len(s) {
		return -1
	}
	switch c := s[i]; {
	case c == '"':
		return quotedEnd(s, i, '"', false)
	case (c == 'u' || c == 'U') && i+2 < len(s) && s[i+1] == '&' && s[i+2] == '"':
		return quotedEnd(s, i+2, '"', false)
	case isIdentStart(c):
		return identEnd(s, i)
	}
	return -1
}

// keywordAt reports whether the keyword kw (lower case) is at i, returning
// the position after it.
func keywordAt[T text](s T, i int, kw string) (int, bool) {
	if i >= len(s) || !isIdentStart(s[i]) {
		return i, false
	}
	e := identEnd(s, i)
	if e-i != len(kw) {
		return i, false
	}
	for k := 0; k < len(kw); k++ {
		if lower(s[i+k]) != kw[k] {
			return i, false
		}
	}
	return e, true
}

// tokenEnd returns the end of the token at i: a name, a literal, or else one
// byte (an operator or punctuation character).
func tokenEnd[T text](s T, i int) int {
	if e := nameTokenEnd(s, i); e > i {
		return e
	}
	if e := literalEnd(s, i); e > i {
		return e
	}
	return i + 1
}

// foldName is the name token t as Postgres reads it: unquoted, ASCII letters
// lower-cased; quoted, without its quotes and with "" undoubled. A U&"..."
// name is returned as written (it matches no folded name).
func foldName[T text](t T) string {
	if len(t) >= 2 && t[0] == '"' {
		return strings.ReplaceAll(string(t[1:len(t)-1]), `""`, `"`)
	}
	b := []byte(string(t))
	for i, c := range b {
		b[i] = lower(c)
	}
	return string(b)
}
