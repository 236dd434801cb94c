package planner

import "strconv"

// maxParams is the most parameters a statement may have (the extended
// protocol's Bind counts them in an int16). Normalize leaves a text alone
// rather than number past it.
const maxParams = 65535

// Normalize appends sql to dst with each literal replaced by $k, numbering
// after the largest $n already in sql, so that `WHERE aid = 42` and
// `WHERE aid = 43` normalize alike. Literals are numbers, strings ('x',
// E'x', B'1', X'f', N'x') and dollar-quoted strings used as values. It returns
// how many literals it replaced. It allocates nothing when dst has room.
//
// It keeps the text parseable where the original parsed, and so leaves
// alone, by design:
//
//   - statements that never take parameters: only statements starting with
//     SELECT, INSERT, UPDATE, DELETE, MERGE, WITH, VALUES, TABLE, EXPLAIN,
//     PREPARE, EXECUTE, DECLARE, CALL or '(' are normalized; SET, RESET,
//     SHOW, CREATE, ALTER, COPY, VACUUM, DO, NOTIFY, FETCH, ... are copied;
//
//   - a string after an identifier or keyword that is not one of a few value
//     keywords (SELECT WHERE AND OR NOT LIKE THEN ...), or after ')' or ']':
//     it is a typed literal (interval '1 day', date '...', foo.bar '...',
//     varchar(3) 'abc');
//
//   - literals inside the parentheses after a type name that takes integer
//     modifiers (varchar(10), numeric(10,2), timestamp(3), ...), after
//     CURRENT_TIME, CURRENT_TIMESTAMP, LOCALTIME, LOCALTIMESTAMP, EXTRACT
//     (EXTRACT('year' FROM x)) or EXPLAIN (its options);
//
//   - U&'...' strings, numbers with trailing junk (1abc), and everything
//     when numbering would pass $65535.
//
//   - a signed number after FIRST, NEXT or OFFSET (FETCH FIRST -5 ROWS
//     ONLY, OFFSET -5 ROWS need a signed constant there).
//
// No text known to parse fails to parse normalized; should one turn up,
// Cache.Plan falls back to planning the original.
// Like pg_query it assumes standard_conforming_strings = on.
// Normalizing a normalized text changes nothing.
func Normalize(dst, sql []byte) (out []byte, literals int) {
	// One pass numbering from $1; a second one only when sql already has
	// parameters to number after (rare: texts mix them seldom).
	start := len(dst)
	out, n, maxN := normalize(dst, sql, 0, nil)
	if n == 0 || maxN == 0 {
		return out, n
	}
	if maxN+n > maxParams {
		return append(out[:start], sql...), 0
	}
	out, n, _ = normalize(out[:start], sql, maxN, nil)
	return out, n
}

// Literals returns where, in sql, the literals are that Normalize replaces,
// in the order it numbers them, and the number it numbers after: the k-th
// span (from 0) became $(base+k+1). It returns no spans where Normalize
// leaves sql alone. A plan of the normalized text names literals only by
// those numbers; a proxy that needs their values (a sharding key) reads
// them here, with LiteralValue.
func Literals(sql []byte, dst []Span) (spans []Span, base int) {
	var scratch [256]byte
	dst = dst[:0]
	_, n, maxN := normalize(scratch[:0], sql, 0, &dst)
	if n == 0 || maxN+n > maxParams {
		return dst[:0], 0
	}
	return dst, maxN
}

type tokKind uint8

const (
	tkNone   tokKind = iota // start of a statement
	tkIdent                 // unquoted identifier or keyword
	tkQuoted                // "quoted identifier"
	tkValue                 // literal or $n
	tkClose                 // ) or ]
	tkPunct                 // anything else: ( , = operators ...
)

// normalize is one pass of Normalize, numbering from base+1. It returns the
// number of literals replaced and the largest $n of s; with spans, it also
// appends each replaced literal's span to it.
func normalize(dst, s []byte, base int, spans *[]Span) (out []byte, n, maxN int) {
	var (
		prev         = tkNone
		ps, pe       int    // the previous identifier
		first        = true // waiting for a statement's first token
		on           bool   // this statement is normalized
		depth, keepD int    // paren depth; depth of a typmod group (0: none)
		last         int    // s[last:] not yet copied
		sign         bool   // the last token is a sign after FIRST, NEXT or OFFSET
		inType       bool   // after :: or AS, where a type name may follow
		bounds       int    // depth of array bounds of such a type ('int[3]': a constant)
	)
	replace := func(i, e int) {
		n++
		if spans != nil {
			*spans = append(*spans, Span{int32(i), int32(e - i)})
		}
		dst = append(dst, s[last:i]...)
		if i > 0 && isIdentCont(s[i-1]) {
			dst = append(dst, ' ')
		}
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(base+n), 10)
		if e < len(s) && isIdentCont(s[e]) {
			dst = append(dst, ' ')
		}
		last = e
	}
	// valueStringOK: may a string at this point be replaced?
	valueStringOK := func() bool {
		switch prev {
		case tkPunct:
			return true
		case tkIdent:
			return valueKeyword(s[ps:pe])
		}
		return false
	}
	i := 0
	for i < len(s) {
		c := s[i]
		cl := charClass[c]
		if cl&clSpace != 0 {
			i++
			continue
		}
		// Fast path: an identifier or keyword (not a string prefix: E'', U&'').
		if cl&clIdentStart != 0 && !first && !(i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '&')) {
			j := i + 1
			for j < len(s) && charClass[s[j]]&clIdentCont != 0 {
				j++
			}
			ps, pe, i, prev = i, j, j, tkIdent
			if j-ps == 2 && (s[ps]|0x20) == 'a' && (s[ps+1]|0x20) == 's' {
				inType = true
			}
			continue
		}
		switch {
		case c == '-' && i+1 < len(s) && s[i+1] == '-', c == '/' && i+1 < len(s) && s[i+1] == '*':
			i = skipBlank(s, i)
			continue
		case c == ';' && depth <= 0:
			i++
			prev, first, on, depth, keepD = tkNone, true, false, 0, 0
			continue
		}
		signed := sign // this token follows FIRST/NEXT/OFFSET and a sign
		sign = false
		if first {
			first = false
			on = c == '('
			if isIdentStart(c) {
				on = normalizedStatement(s[i:identEnd(s, i)])
			}
		}
		switch {
		case c == '\'' || c == '$' && dollarTagLen(s, i) > 0 ||
			(c == 'e' || c == 'E' || c == 'b' || c == 'B' || c == 'x' || c == 'X' || c == 'n' || c == 'N') && i+1 < len(s) && s[i+1] == '\'':
			e := literalEnd(s, i)
			if on && keepD == 0 && valueStringOK() {
				replace(i, e)
			}
			i, prev = e, tkValue
		case (c == 'u' || c == 'U') && i+2 < len(s) && s[i+1] == '&' && (s[i+2] == '\'' || s[i+2] == '"'):
			if s[i+2] == '\'' {
				i, prev = stringEnd(s, i+2, false), tkValue
			} else {
				i, prev = quotedEnd(s, i+2, '"', false), tkQuoted
			}
		case c == '"':
			i, prev = quotedEnd(s, i, '"', false), tkQuoted
		case c == '$':
			j := i + 1
			v := 0
			for j < len(s) && isDigit(s[j]) {
				if v < 1<<20 {
					v = v*10 + int(s[j]-'0')
				}
				j++
			}
			if v > maxN {
				maxN = v
			}
			i, prev = j, tkValue
		case isDigit(c) || c == '.' && i+1 < len(s) && isDigit(s[i+1]):
			e, clean := numberEnd(s, i)
			if !clean {
				e = identEnd(s, e)
			} else if on && keepD == 0 && bounds == 0 && !signed {
				replace(i, e)
			}
			i, prev = e, tkValue
		case isIdentStart(c):
			ps, pe = i, identEnd(s, i)
			i, prev = pe, tkIdent
		case c == '(':
			depth++
			if keepD == 0 && prev == tkIdent && typmodKeyword(s[ps:pe]) {
				keepD = depth
			}
			i, prev = i+1, tkPunct
		case c == ')':
			if depth == keepD {
				keepD = 0
			}
			depth--
			i, prev = i+1, tkClose
		case c == ':' && i+1 < len(s) && s[i+1] == ':':
			inType = true
			i, prev = i+2, tkPunct
			continue
		case c == '[':
			if inType || bounds > 0 {
				bounds++ // array bounds of a type name take constants
			}
			i, prev = i+1, tkPunct
			continue
		case c == ']':
			if bounds > 0 {
				bounds--
			}
			i, prev = i+1, tkClose
			continue
		default:
			// FETCH FIRST/NEXT and OFFSET ... ROWS take a signed constant,
			// not -$k.
			sign = (c == '-' || c == '+') && prev == tkIdent && signedConstKeyword(s[ps:pe])
			i, prev = i+1, tkPunct
		}
		// A type name goes on through identifiers, quoted names, dots and a
		// typmod's parentheses; anything else ends it.
		if keepD == 0 && (prev == tkValue || prev == tkPunct && c != '(' && c != '.') {
			inType = false
		}
	}
	dst = append(dst, s[last:]...)
	return dst, n, maxN
}

// normalizedStatement: does a statement starting with this keyword take
// parameters (and so get normalized)?
func normalizedStatement(w []byte) bool {
	switch len(w) {
	case 4:
		return eq(w, "with") || eq(w, "call")
	case 5:
		return eq(w, "merge") || eq(w, "table")
	case 6:
		return eq(w, "select") || eq(w, "insert") || eq(w, "update") || eq(w, "delete") || eq(w, "values")
	case 7:
		return eq(w, "explain") || eq(w, "prepare") || eq(w, "execute") || eq(w, "declare")
	}
	return false
}

// valueKeyword: after this keyword a string is a value, not a typed literal.
func valueKeyword(w []byte) bool {
	switch len(w) {
	case 2:
		return eq(w, "or") || eq(w, "is") || eq(w, "in") || eq(w, "by") || eq(w, "to") || eq(w, "on")
	case 3:
		return eq(w, "and") || eq(w, "not") || eq(w, "key") || eq(w, "all")
	case 4:
		return eq(w, "like") || eq(w, "then") || eq(w, "else") || eq(w, "when") || eq(w, "case") ||
			eq(w, "from") || eq(w, "both")
	case 5:
		return eq(w, "where") || eq(w, "ilike") || eq(w, "limit") || eq(w, "value")
	case 6:
		return eq(w, "select") || eq(w, "values") || eq(w, "offset") || eq(w, "having") || eq(w, "escape") ||
			eq(w, "return")
	case 7:
		return eq(w, "between") || eq(w, "similar") || eq(w, "leading") || eq(w, "placing")
	case 8:
		return eq(w, "distinct") || eq(w, "trailing")
	case 9:
		return eq(w, "returning")
	}
	return false
}

// signedConstKeyword: a sign after this keyword may have to be followed by a
// constant (FETCH FIRST -1 ROWS ONLY, OFFSET -1 ROWS).
func signedConstKeyword(w []byte) bool {
	return eq(w, "first") || eq(w, "next") || eq(w, "offset")
}

// typmodKeyword: literals in the parentheses after this word must stay
// constants (built-in types whose modifiers the grammar takes as Iconst,
// CURRENT_TIME(3) and the like, EXTRACT('field' FROM ...), EXPLAIN's
// options).
func typmodKeyword(w []byte) bool {
	switch len(w) {
	case 12:
		return eq(w, "current_time")
	case 14:
		return eq(w, "localtimestamp")
	case 17:
		return eq(w, "current_timestamp")
	case 3:
		return eq(w, "bit") || eq(w, "dec")
	case 4:
		return eq(w, "char") || eq(w, "time")
	case 5:
		return eq(w, "float") || eq(w, "nchar")
	case 6:
		return eq(w, "varbit") || eq(w, "second") || eq(w, "timetz")
	case 7:
		return eq(w, "varchar") || eq(w, "numeric") || eq(w, "decimal") || eq(w, "varying") || eq(w, "explain") ||
			eq(w, "extract")
	case 8:
		return eq(w, "interval")
	case 9:
		return eq(w, "character") || eq(w, "timestamp") || eq(w, "localtime")
	case 11:
		return eq(w, "timestamptz")
	}
	return false
}
