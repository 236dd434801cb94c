// Package auth holds the building blocks of client authentication as
// PostgreSQL and PgBouncer do it: classifying stored secrets (ParseSecret),
// computing them (NewVerifier, MD5Hash), checking MD5 and cleartext password
// responses (CheckMD5, CheckPassword), both sides of a SCRAM-SHA-256 exchange
// (ScramServer, ScramClient, including SCRAM passthrough: logging in to
// PostgreSQL with the ClientKey a client proved, NewScramClientFromKeys), and
// the two PgBouncer configuration files that decide who may log in and how:
// the auth_file (ParseUserlist) and the auth_hba_file (ParseHBA, LoadHBA,
// HBA.Method).
//
// It is pure: no sockets, no goroutines, no clock. Randomness (SCRAM nonces)
// comes only from the io.Reader the caller injects, so tests are
// deterministic and production passes crypto/rand.Reader. The only file
// system access is in LoadHBA and in ParseHBA's @file includes, which read
// the files the configuration names.
//
// Concurrency: the functions are safe for concurrent use. A ScramServer or a
// ScramClient is one exchange's state machine and is not safe for
// concurrent use; an *HBA is immutable after parsing and safe for concurrent
// use; the maps ParseUserlist returns belong to the caller.
//
// Security: secrets, proofs, nonces and signatures are compared in constant
// time (crypto/subtle); every length read from the peer is checked before
// anything is allocated for it; no input makes anything here panic (the
// parsers have FuzzX targets whose crashers stay under testdata/fuzz/). An
// unknown user is given a mock SCRAM exchange (NewMockScramServer) whose
// salt is derived from the user name and a secret, as Postgres's
// scram_mock_salt does, so that probing cannot tell an unknown user from a
// wrong password.
//
// Fidelity: the behaviour follows PostgreSQL 15 (the server belay is tested
// against) and PgBouncer, down to their quirks, because belay replaces the
// latter in front of the former:
//   - ParseSecret classifies as get_password_type does, with PG15's
//     strtok-based parse_scram_secret, strtol iteration count and
//     pg_b64_decode (PostgreSQL 16 switched to strsep; a few malformed
//     secrets, such as an empty salt, are classified differently there).
//   - NewVerifier and the SCRAM client apply pg_saslprep to the password,
//     falling back to the raw bytes when it fails, exactly as PostgreSQL
//     does: pure ASCII is passed through untouched; otherwise the input must
//     be valid UTF-8, is mapped (RFC 3454 C.1.2 to space, B.1 to nothing),
//     must not be empty, its mapped (not normalized — PostgreSQL's order)
//     characters are checked against the prohibited tables C.1.2–C.9, the
//     unassigned table A.1 and the bidi rules D.1/D.2, and the result is the
//     NFKC normalization. The RFC 3454 tables come from
//     github.com/xdg-go/stringprep, NFKC from golang.org/x/text/unicode/norm.
//     The one approximation: x/text implements a newer Unicode version than
//     PostgreSQL 15's normalization tables; as characters unassigned in
//     Unicode 3.2 are rejected before normalization (and then the raw bytes
//     are used), and decompositions of assigned characters are stable, the
//     results agree.
//   - The SCRAM server parses messages as auth-scram.c does and reports the
//     same SQLSTATEs and messages (Error.Message is errmsg, Error.Detail is
//     errdetail).
//   - ParseUserlist is PgBouncer's load_auth_file; ParseHBA is PgBouncer's
//     hba.c with the differences its doc comment lists.
//
// It never imports anything of belay except codec/sqlstate.
package auth
