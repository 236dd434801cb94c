package auth

import (
	"unicode/utf8"

	"github.com/xdg-go/stringprep"
	"golang.org/x/text/unicode/norm"
)

// maxPrepRunes bounds the work saslprep does; PostgreSQL passwords are far
// shorter (a PasswordMessage is at most 1000 bytes, a rolpassword far less
// than this).
const maxPrepRunes = 1 << 16

// saslprep is PostgreSQL's pg_saslprep (src/common/saslprep.c); ok=false is
// any of its failures (invalid UTF-8, prohibited output, empty result),
// after which PostgreSQL uses the raw password instead.
func saslprep(s string) (string, bool) {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s, true // "An ASCII string requires no further processing."
	}
	if !utf8.ValidString(s) || len(s) > 4*maxPrepRunes {
		return "", false
	}
	// 1) Map: C.1.2 (non-ASCII space) to SPACE, B.1 to nothing. PostgreSQL
	// tests the space table first.
	mapped := make([]rune, 0, utf8.RuneCountInString(s))
	for _, r := range s {
		if stringprep.TableC1_2.Contains(r) {
			mapped = append(mapped, ' ')
		} else if _, ok := stringprep.TableB1.Map(r); ok {
			continue
		} else {
			mapped = append(mapped, r)
		}
	}
	if len(mapped) == 0 {
		return "", false // "don't allow empty password"
	}
	// 3) Prohibit and 4) bidi: PostgreSQL checks the mapped characters, before
	// normalization.
	randAL := false
	for _, r := range mapped {
		if prohibitedOutput(r) || stringprep.TableA1.Contains(r) {
			return "", false
		}
		if stringprep.TableD1.Contains(r) {
			randAL = true
		}
	}
	if randAL {
		for _, r := range mapped {
			if stringprep.TableD2.Contains(r) {
				return "", false
			}
		}
		if !stringprep.TableD1.Contains(mapped[0]) || !stringprep.TableD1.Contains(mapped[len(mapped)-1]) {
			return "", false
		}
	}
	// 2) Normalize: NFKC.
	return norm.NFKC.String(string(mapped)), true
}

func prohibitedOutput(r rune) bool {
	for _, t := range [...]stringprep.Set{
		stringprep.TableC1_2, stringprep.TableC2_1, stringprep.TableC2_2,
		stringprep.TableC3, stringprep.TableC4, stringprep.TableC5, stringprep.TableC6,
		stringprep.TableC7, stringprep.TableC8, stringprep.TableC9,
	} {
		if t.Contains(r) {
			return true
		}
	}
	return false
}
