package planner

// SessionEffects scans sql, which may hold several statements, and returns the
// union of their effects as the legacy bits EffectSession and EffectReset. It
// allocates nothing. It is the fallback scanner: Parse maps its result onto
// the Eff bits when pg_query cannot parse the text. It is deleted once the loop
// has switched to Parse/Cache.
func SessionEffects(sql []byte) Effect {
	var eff Effect
	s := scanner{src: sql}
	for {
		w0, ok := s.word()
		if !ok {
			if !s.skipToStatementEnd() {
				return eff
			}
			continue
		}
		w1, _ := s.word()
		switch {
		case eq(w0, "set"):
			// SET LOCAL and SET TRANSACTION/CONSTRAINTS last one transaction.
			if !eq(w1, "local") && !eq(w1, "transaction") && !eq(w1, "constraints") {
				eff |= EffectSession
			}
		case eq(w0, "reset"), eq(w0, "prepare"), eq(w0, "deallocate"), eq(w0, "listen"), eq(w0, "load"):
			eff |= EffectSession
		case eq(w0, "discard"):
			eff |= EffectSession | EffectReset
		}
		// Anywhere in the statement: temp objects (CREATE TEMP, SELECT INTO
		// TEMP, pg_temp.x), held cursors, session locks, set_config.
		eff |= s.restOfStatement(w1)
	}
}

func (s *scanner) restOfStatement(first []byte) Effect {
	var eff Effect
	check := func(w []byte) {
		switch {
		case eq(w, "temp"), eq(w, "temporary"), eq(w, "hold"), hasFold(w, "pg_temp"),
			hasFold(w, "advisory_lock"), hasFold(w, "set_config"):
			eff |= EffectSession
		}
	}
	check(first)
	for {
		w, ok := s.word()
		if !ok {
			s.skipToStatementEnd()
			return eff
		}
		check(w)
	}
}

type scanner struct {
	src []byte
	pos int
}

// word returns the next identifier-like token of the current statement,
// skipping white space, comments, literals and punctuation. ok is false at a
// ';' or at the end.
func (s *scanner) word() (w []byte, ok bool) {
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case c == ';':
			return nil, false
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			s.pos++
		case c == '-' && s.peek(1) == '-':
			for s.pos < len(s.src) && s.src[s.pos] != '\n' {
				s.pos++
			}
		case c == '/' && s.peek(1) == '*':
			s.skipBlockComment()
		case c == '\'':
			s.skipQuoted('\'', s.pos > 0 && (s.src[s.pos-1] == 'e' || s.src[s.pos-1] == 'E'))
		case c == '"':
			s.skipQuoted('"', false)
		case c == '$' && s.dollarTag() > 0:
			s.skipDollar()
		case isIdentStart(c):
			start := s.pos
			for s.pos < len(s.src) && isIdentCont(s.src[s.pos]) {
				s.pos++
			}
			// E'...': let the quote see its prefix.
			if s.pos-start == 1 && s.pos < len(s.src) && s.src[s.pos] == '\'' {
				continue
			}
			return s.src[start:s.pos], true
		default:
			s.pos++
		}
	}
	return nil, false
}

// skipToStatementEnd moves past the next ';'; false at the end of input.
func (s *scanner) skipToStatementEnd() bool {
	for {
		if _, ok := s.word(); ok {
			continue
		}
		if s.pos >= len(s.src) {
			return false
		}
		s.pos++ // the ';'
		return true
	}
}

func (s *scanner) peek(n int) byte {
	if s.pos+n < len(s.src) {
		return s.src[s.pos+n]
	}
	return 0
}

func (s *scanner) skipBlockComment() {
	depth := 0
	for s.pos < len(s.src) {
		switch {
		case s.src[s.pos] == '/' && s.peek(1) == '*':
			depth++
			s.pos += 2
		case s.src[s.pos] == '*' && s.peek(1) == '/':
			depth--
			s.pos += 2
			if depth == 0 {
				return
			}
		default:
			s.pos++
		}
	}
}

func (s *scanner) skipQuoted(q byte, backslash bool) {
	s.pos++
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case backslash && c == '\\':
			s.pos += 2
		case c == q && s.peek(1) == q:
			s.pos += 2
		case c == q:
			s.pos++
			return
		default:
			s.pos++
		}
	}
}

// dollarTag returns the length of a dollar-quote opener ($$ or $tag$) at pos.
func (s *scanner) dollarTag() int {
	i := s.pos + 1
	for i < len(s.src) && isIdentCont(s.src[i]) && s.src[i] != '$' {
		if i == s.pos+1 && s.src[i] >= '0' && s.src[i] <= '9' {
			return 0 // $1 is a parameter
		}
		i++
	}
	if i < len(s.src) && s.src[i] == '$' {
		return i + 1 - s.pos
	}
	return 0
}

func (s *scanner) skipDollar() {
	n := s.dollarTag()
	tag := s.src[s.pos : s.pos+n]
	s.pos += n
	for s.pos+n <= len(s.src) {
		if s.src[s.pos] == '$' && string(s.src[s.pos:s.pos+n]) == string(tag) {
			s.pos += n
			return
		}
		s.pos++
	}
	s.pos = len(s.src)
}

func isIdentStart(c byte) bool { return charClass[c]&clIdentStart != 0 }

func isIdentCont(c byte) bool { return charClass[c]&clIdentCont != 0 }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// eq compares an identifier with a lower-case keyword, ignoring case.
func eq(w []byte, kw string) bool {
	if len(w) != len(kw) {
		return false
	}
	for i := range w {
		if lower(w[i]) != kw[i] {
			return false
		}
	}
	return true
}

// hasFold reports whether w contains the lower-case sub, ignoring case.
func hasFold(w []byte, sub string) bool {
	for i := 0; i+len(sub) <= len(w); i++ {
		if eq(w[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
