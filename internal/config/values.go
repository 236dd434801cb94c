package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseConnString parses a libpq key=value connection string, as the values
// of [databases] and [users] are: pairs separated by spaces, a value
// single-quoted when it has spaces, with \' and \\ inside quotes.
func ParseConnString(s string) (map[string]string, error) {
	out := map[string]string{}
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) || s[i] != '=' || key == "" {
			return nil, fmt.Errorf("connection string %q: want key=value at %q", s, s[start:])
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for {
				if i == len(s) {
					return nil, fmt.Errorf("connection string %q: unterminated quoted value of %s", s, key)
				}
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					v.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					break
				}
				v.WriteByte(c)
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
				i++
			}
		}
		out[key] = v.String()
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// Int reads an integer value.
func Int(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", v)
	}
	return n, nil
}

// Bool reads a boolean as PgBouncer does: 1/0, on/off, true/false, yes/no.
func Bool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "on", "true", "yes":
		return true, nil
	case "0", "off", "false", "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (1/0, on/off, true/false, yes/no)", v)
}

// Seconds reads a time as PgBouncer's settings give it: a number of
// seconds (fractions allowed), or a number with a unit (us, ms, s, min, h,
// d), as Postgres's settings do.
func Seconds(v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	n, err := strconv.ParseFloat(s[:i], 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a time (seconds, or a number with us, ms, s, min, h or d)", v)
	}
	units := map[string]time.Duration{"": time.Second, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	u, ok := units[strings.TrimSpace(s[i:])]
	if !ok {
		return 0, fmt.Errorf("%q: unknown time unit %q", v, s[i:])
	}
	d := n * float64(u)
	if d > math.MaxInt64 {
		return 0, fmt.Errorf("%q is too long a time", v)
	}
	return time.Duration(d), nil
}

// List splits a comma-separated value, dropping empty items.
func List(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Unquote reads the double-quoted word s begins with, "" standing for a
// quote, as Postgres, pg_hba.conf and PgBouncer write quoted names. n is
// the bytes read, quotes included; ok is false when the quote is not
// closed, or a NUL comes first.
func Unquote(s string) (word string, n int, ok bool) {
	if !strings.HasPrefix(s, `"`) {
		return "", 0, false
	}
	var b strings.Builder
	for i := 1; i < len(s) && s[i] != 0; i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), i + 1, true
	}
	return "", 0, false
}
