package codec_test

// One fuzz target per decoder. Each checks, beyond not panicking, that views
// lie inside the input, that what it accepts re-encodes to the same bytes,
// and that it agrees with the reference implementation, pgproto3: whatever
// codec accepts, pgproto3 decodes to the same values, and whatever pgproto3
// decodes and re-encodes byte for byte (so nothing was ignored), codec
// accepts too, except where codec is deliberately stricter (noted).
//
// Seeds are real messages encoded with pgproto3.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/jackc/pgx/v5/pgproto3"
)

type encoder interface {
	Encode([]byte) ([]byte, error)
}

// addBodies adds the body of each encoded typed message as a seed.
func addBodies(f *testing.F, msgs ...encoder) {
	for _, m := range msgs {
		b, err := m.Encode(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[5:])
	}
}

// reencodes reports whether pgproto3 re-encodes m to exactly wire.
func reencodes(m encoder, wire []byte) bool {
	b, err := m.Encode(nil)
	return err == nil && bytes.Equal(b, wire)
}

var backendSeeds = []encoder{
	&pgproto3.AuthenticationOk{},
	&pgproto3.AuthenticationMD5Password{Salt: [4]byte{1, 2, 3, 4}},
	&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}},
	&pgproto3.AuthenticationSASLContinue{Data: []byte("r=abc,s=ZGVm,i=4096")},
	&pgproto3.ParameterStatus{Name: "server_version", Value: "15.18"},
	&pgproto3.BackendKeyData{ProcessID: 1234, SecretKey: []byte{1, 2, 3, 4}},
	&pgproto3.ReadyForQuery{TxStatus: 'I'},
	&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("aid"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}},
	&pgproto3.DataRow{Values: [][]byte{[]byte("1"), nil, []byte("abc")}},
	&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
	&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42P01", Message: "relation does not exist", Position: 15, File: "parse_relation.c", Line: 1392, Routine: "parserOpenTable"},
	&pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "hi", Detail: "d", Hint: "h", Where: "w"},
	&pgproto3.CopyInResponse{OverallFormat: 0, ColumnFormatCodes: []uint16{0, 0}},
	&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: []string{"_pq_.x"}},
}

var frontendSeeds = []encoder{
	&pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 4242;"},
	&pgproto3.Parse{Name: "s1", Query: "select $1", ParameterOIDs: []uint32{23}},
	&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s1", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 1}, nil}, ResultFormatCodes: []int16{1}},
	&pgproto3.Describe{ObjectType: 'S', Name: "s1"},
	&pgproto3.Execute{Portal: "p", MaxRows: 0},
	&pgproto3.Close{ObjectType: 'P', Name: "p"},
	&pgproto3.Sync{},
	&pgproto3.Terminate{},
	&pgproto3.CopyData{Data: []byte("1\tx\n")},
	&pgproto3.PasswordMessage{Password: "secret"},
}

func FuzzPeekHeader(f *testing.F) {
	for _, m := range append(append([]encoder{}, frontendSeeds...), backendSeeds...) {
		b, _ := m.Encode(nil)
		f.Add(b, 0)
		f.Add(b[:5], 3)
	}
	f.Add([]byte{'Q', 0xFF, 0xFF, 0xFF, 0xFF}, 0)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		typ, bodyLen, err := codec.PeekHeader(b, max)
		effMax := max
		if effMax <= 0 {
			effMax = codec.DefaultMaxMessageSize
		}
		switch {
		case len(b) < 5:
			if err != codec.ErrShortBuffer {
				t.Fatalf("len %d: err %v", len(b), err)
			}
			return
		}
		declared := int64(int32(binary.BigEndian.Uint32(b[1:5])))
		switch {
		case declared < 4:
			if err != codec.ErrInvalidLength {
				t.Fatalf("declared %d: err %v", declared, err)
			}
		case declared-4 > int64(effMax):
			if err != codec.ErrMessageTooLarge {
				t.Fatalf("declared %d max %d: err %v", declared, effMax, err)
			}
		default:
			if err != nil || typ != b[0] || int64(bodyLen) != declared-4 || bodyLen < 0 || bodyLen > effMax {
				t.Fatalf("declared %d: %q %d %v", declared, typ, bodyLen, err)
			}
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add(mustEncodeAll(&pgproto3.Query{String: "select 1"}, &pgproto3.Sync{}))
	f.Add(mustEncodeAll(&pgproto3.Parse{Query: "select $1"}, &pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}))
	f.Add(mustEncodeAll(&pgproto3.RowDescription{}, &pgproto3.DataRow{Values: [][]byte{[]byte("x")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'}))
	for _, m := range append(append([]encoder{}, frontendSeeds...), backendSeeds...) {
		b, _ := m.Encode(nil)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	const max = 1 << 16
	f.Fuzz(func(t *testing.T, in []byte) {
		b := in
		for len(b) > 0 {
			fr, n, err := codec.ReadFrame(b, max)
			if err != nil {
				if n != 0 {
					t.Fatalf("n = %d with %v", n, err)
				}
				if _, bodyLen, perr := codec.PeekHeader(b, max); perr != err && !(perr == nil && err == codec.ErrShortBuffer) {
					t.Fatalf("ReadFrame err %v, PeekHeader err %v", err, perr)
				} else if perr == nil && 5+bodyLen <= len(b) {
					t.Fatalf("ErrShortBuffer with a whole frame of %d in %d bytes", 5+bodyLen, len(b))
				}
				return
			}
			if n < 5 || n > len(b) || n != fr.WireLen() || len(fr.Body) > max || fr.Type != b[0] {
				t.Fatalf("n %d len %d wirelen %d", n, len(b), fr.WireLen())
			}
			within(t, "body", fr.Body, b[5:n])
			if got := codec.AppendFrame(nil, fr.Type, fr.Body); !bytes.Equal(got, b[:n]) {
				t.Fatalf("re-encoded %q, want %q", got, b[:n])
			}
			b = b[n:]
		}
	})
}

func FuzzReadStartupPacket(f *testing.F) {
	f.Add(mustEncodeAll(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice", "database": "db"}}))
	f.Add(mustEncodeAll(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32, Parameters: map[string]string{"user": "bob", "_pq_.x": "1"}}))
	f.Add(mustEncodeAll(&pgproto3.SSLRequest{}))
	f.Add(mustEncodeAll(&pgproto3.GSSEncRequest{}))
	f.Add(mustEncodeAll(&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}}))
	f.Add(mustEncodeAll(&pgproto3.CancelRequest{ProcessID: 1, SecretKey: bytes.Repeat([]byte{9}, 32)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, body, n, err := codec.ReadStartupPacket(b)
		if err != nil {
			if n != 0 || body != nil {
				t.Fatalf("n %d body %q with %v", n, body, err)
			}
			if len(b) >= 4 {
				declared := int64(binary.BigEndian.Uint32(b))
				valid := declared >= 8 && declared-4 <= codec.MaxStartupPacketLength
				if (err == codec.ErrInvalidLength) == valid || (err == codec.ErrShortBuffer && declared <= int64(len(b))) {
					t.Fatalf("declared %d, len %d: %v", declared, len(b), err)
				}
			} else if err != codec.ErrShortBuffer {
				t.Fatalf("len %d: %v", len(b), err)
			}
			return
		}
		if n > len(b) || n != 8+len(body) || n-4 > codec.MaxStartupPacketLength || code != binary.BigEndian.Uint32(b[4:]) {
			t.Fatalf("n %d len %d body %d", n, len(b), len(body))
		}
		within(t, "body", body, b[8:n])
		if code != pgproto3.ProtocolVersion30 && code != pgproto3.ProtocolVersion32 {
			return
		}
		params := map[string]string{}
		if codec.StartupParams(body, func(k, v []byte) { params[string(k)] = string(v) }) != nil || len(params) == 0 {
			return
		}
		var sm pgproto3.StartupMessage
		if err := sm.Decode(b[4:n]); err != nil || !reflect.DeepEqual(sm.Parameters, params) {
			t.Fatalf("pgproto3: %v %v, codec: %v", sm.Parameters, err, params)
		}
	})
}

func FuzzStartupParams(f *testing.F) {
	f.Add([]byte("user\x00alice\x00database\x00db\x00\x00"))
	f.Add([]byte("user\x00alice\x00options\x00-c geqo=off\x00application_name\x00\x00\x00"))
	f.Add([]byte("\x00"))
	f.Add([]byte("user\x00alice\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		var rebuilt []byte
		calls := 0
		err := codec.StartupParams(body, func(k, v []byte) {
			calls++
			within(t, "key", k, body)
			within(t, "value", v, body)
			if len(k) == 0 || bytes.IndexByte(k, 0) >= 0 || bytes.IndexByte(v, 0) >= 0 {
				t.Fatalf("bad pair %q=%q", k, v)
			}
			rebuilt = append(append(append(append(rebuilt, k...), 0), v...), 0)
		})
		if err != nil {
			if err != codec.ErrMalformed || calls != 0 {
				t.Fatalf("err %v after %d calls", err, calls)
			}
			return
		}
		if rebuilt = append(rebuilt, 0); !bytes.Equal(rebuilt, body) {
			t.Fatalf("rebuilt %q, want %q", rebuilt, body)
		}
	})
}

func FuzzParseCancelRequest(f *testing.F) {
	for _, key := range [][]byte{{1, 2, 3, 4}, bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{7}, 256)} {
		b := mustEncodeAll(&pgproto3.CancelRequest{ProcessID: 99, SecretKey: key})
		f.Add(b[8:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pid, key, err := codec.ParseCancelRequest(body)
		ok := len(body) >= 8 && len(body) <= 4+codec.MaxCancelKeyLength
		if (err == nil) != ok {
			t.Fatalf("len %d: err %v", len(body), err)
		}
		var cr pgproto3.CancelRequest
		perr := cr.Decode(append(binary.BigEndian.AppendUint32(nil, codec.CancelRequestCode), body...))
		if (perr == nil) != ok {
			t.Fatalf("len %d: pgproto3 err %v", len(body), perr)
		}
		if err != nil {
			return
		}
		within(t, "key", key, body)
		if pid != cr.ProcessID || !bytes.Equal(key, cr.SecretKey) {
			t.Fatalf("codec %d %x, pgproto3 %d %x", pid, key, cr.ProcessID, cr.SecretKey)
		}
		wire := codec.AppendCancelRequest(nil, pid, key)
		code, b2, n, err := codec.ReadStartupPacket(wire)
		if err != nil || n != len(wire) || code != codec.CancelRequestCode || !bytes.Equal(b2, body) {
			t.Fatalf("re-encoded %q: %v", wire, err)
		}
	})
}

func FuzzQueryText(f *testing.F) {
	addBodies(f, &pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 4242;"}, &pgproto3.Query{String: ""})
	f.Add([]byte("select 1"))
	f.Add([]byte("select\x001\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := codec.QueryText(body)
		var m pgproto3.Query
		perr := m.Decode(body)
		if (err == nil) != (perr == nil) {
			t.Fatalf("codec err %v, pgproto3 err %v", err, perr)
		}
		if err != nil {
			return
		}
		within(t, "query", q, body)
		if string(q) != m.String {
			t.Fatalf("codec %q, pgproto3 %q", q, m.String)
		}
		if got := codec.AppendQuery(nil, string(q)); !bytes.Equal(got, frame('Q', body)) {
			t.Fatalf("re-encoded %q", got)
		}
	})
}

func FuzzCommandTag(f *testing.F) {
	addBodies(f, &pgproto3.CommandComplete{CommandTag: []byte("INSERT 0 1")}, &pgproto3.CommandComplete{CommandTag: []byte("BEGIN")})
	f.Fuzz(func(t *testing.T, body []byte) {
		tag, err := codec.CommandTag(body)
		var m pgproto3.CommandComplete
		perr := m.Decode(body)
		if (err == nil) != (perr == nil) {
			t.Fatalf("codec err %v, pgproto3 err %v", err, perr)
		}
		if err != nil {
			return
		}
		within(t, "tag", tag, body)
		if !bytes.Equal(tag, m.CommandTag) {
			t.Fatalf("codec %q, pgproto3 %q", tag, m.CommandTag)
		}
	})
}

func FuzzParseParse(f *testing.F) {
	addBodies(f,
		&pgproto3.Parse{Name: "", Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"},
		&pgproto3.Parse{Name: "P0_1", Query: "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;", ParameterOIDs: []uint32{23, 23}},
		&pgproto3.Parse{Name: "s", Query: "select $1, $2, $3", ParameterOIDs: []uint32{0, 25, 1184}},
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := codec.ParseParse(body)
		var m pgproto3.Parse
		perr := m.Decode(body)
		if err != nil {
			if perr == nil && reencodes(&m, frame('P', body)) {
				t.Fatalf("codec rejects (%v) what pgproto3 round-trips: %+v", err, m)
			}
			return
		}
		within(t, "name", p.Name, body)
		within(t, "query", p.Query, body)
		within(t, "oids", p.ParamOIDs, body)
		if perr != nil || string(p.Name) != m.Name || string(p.Query) != m.Query || p.NumParams != len(m.ParameterOIDs) || len(p.ParamOIDs) != 4*p.NumParams {
			t.Fatalf("codec %+v, pgproto3 %+v %v", p, m, perr)
		}
		for i, oid := range m.ParameterOIDs {
			if binary.BigEndian.Uint32(p.ParamOIDs[4*i:]) != oid {
				t.Fatalf("oid %d", i)
			}
		}
		if got := codec.AppendParse(nil, p); !bytes.Equal(got, frame('P', body)) {
			t.Fatalf("re-encoded %q", got)
		}
	})
}

func FuzzParseBind(f *testing.F) {
	addBodies(f,
		&pgproto3.Bind{},
		&pgproto3.Bind{PreparedStatement: "P0_1", Parameters: [][]byte{[]byte("4242")}, ResultFormatCodes: []int16{1}},
		&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s", ParameterFormatCodes: []int16{0, 1}, Parameters: [][]byte{[]byte("x"), nil}, ResultFormatCodes: []int16{0, 1, 1}},
		&pgproto3.Bind{ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{}, {0, 0, 0, 1}, nil}},
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := codec.ParseBind(body)
		var m pgproto3.Bind
		perr := errBindTooShort
		// pgproto3 allocates for the counts before it checks them; skip it
		// where they cannot fit, as it would fail anyway, to keep the
		// fuzzer fast.
		if bindCountsFit(body) {
			perr = m.Decode(body)
		}
		wire := frame('B', body)
		if err != nil {
			if perr == nil && reencodes(&m, wire) {
				t.Fatalf("codec rejects (%v) what pgproto3 round-trips: %+v", err, m)
			}
			return
		}
		within(t, "portal", b.Portal, body)
		within(t, "statement", b.Statement, body)
		within(t, "rest", b.Rest, body)
		if perr != nil || string(b.Portal) != m.DestinationPortal || string(b.Statement) != m.PreparedStatement || !reencodes(&m, wire) {
			t.Fatalf("codec %+v, pgproto3 %+v %v", b, m, perr)
		}
		if got := codec.AppendBind(nil, b); !bytes.Equal(got, wire) {
			t.Fatalf("re-encoded %q", got)
		}
		// Param agrees with pgproto3 on every parameter and its format.
		for i, want := range m.Parameters {
			v, format, null, ok := b.Param(i)
			wantFormat := int16(0)
			switch {
			case len(m.ParameterFormatCodes) == 1:
				wantFormat = m.ParameterFormatCodes[0]
			case len(m.ParameterFormatCodes) > i:
				wantFormat = m.ParameterFormatCodes[i]
			}
			if !ok || null != (want == nil) || !bytes.Equal(v, want) || format != wantFormat {
				t.Fatalf("Param(%d) = %q %d %v %v, pgproto3 %q format %d", i, v, format, null, ok, want, wantFormat)
			}
		}
		if _, _, _, ok := b.Param(len(m.Parameters)); ok {
			t.Fatalf("Param(%d) of %d parameters", len(m.Parameters), len(m.Parameters))
		}
	})
}

var errBindTooShort = errors.New("bind counts exceed body")

// bindCountsFit reports whether the parameter and result format counts of a
// Bind body could fit in it.
func bindCountsFit(b []byte) bool {
	for range 2 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return false
		}
		b = b[i+1:]
	}
	if len(b) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+2*n+2 {
		return false
	}
	b = b[2+2*n:]
	n = int(binary.BigEndian.Uint16(b))
	if len(b)-2 < 4*n {
		return false
	}
	// The result format count comes after the parameters; bound it by what
	// is left after their length words.
	rest := b[2:]
	for range n {
		if len(rest) < 4 {
			return false
		}
		l := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if l > 0 && int(l) <= len(rest) {
			rest = rest[l:]
		}
	}
	if len(rest) >= 2 && 2*int(binary.BigEndian.Uint16(rest)) > len(rest)-2 {
		return false
	}
	return true
}

func fuzzKindAndName(f *testing.F, typ byte, parse func([]byte) (byte, []byte, error), appendFn func([]byte, byte, []byte) []byte, decode func([]byte) (byte, string, error)) {
	f.Fuzz(func(t *testing.T, body []byte) {
		kind, name, err := parse(body)
		pkind, pname, perr := decode(body)
		if err != nil {
			// codec is stricter about the kind.
			if perr == nil && (pkind == 'S' || pkind == 'P') {
				t.Fatalf("codec rejects (%v) what pgproto3 accepts: %q %q", err, pkind, pname)
			}
			return
		}
		within(t, "name", name, body)
		if perr != nil || kind != pkind || string(name) != pname {
			t.Fatalf("codec %q %q, pgproto3 %q %q %v", kind, name, pkind, pname, perr)
		}
		if got := appendFn(nil, kind, name); !bytes.Equal(got, frame(typ, body)) {
			t.Fatalf("re-encoded %q", got)
		}
	})
}

func FuzzParseDescribe(f *testing.F) {
	addBodies(f, &pgproto3.Describe{ObjectType: 'S', Name: "P0_1"}, &pgproto3.Describe{ObjectType: 'P'})
	fuzzKindAndName(f, 'D', codec.ParseDescribe, codec.AppendDescribe, func(b []byte) (byte, string, error) {
		var m pgproto3.Describe
		err := m.Decode(b)
		return m.ObjectType, m.Name, err
	})
}

func FuzzParseClose(f *testing.F) {
	addBodies(f, &pgproto3.Close{ObjectType: 'S', Name: "P0_1"}, &pgproto3.Close{ObjectType: 'P'})
	fuzzKindAndName(f, 'C', codec.ParseClose, codec.AppendClose, func(b []byte) (byte, string, error) {
		var m pgproto3.Close
		err := m.Decode(b)
		return m.ObjectType, m.Name, err
	})
}

func FuzzParseExecute(f *testing.F) {
	addBodies(f, &pgproto3.Execute{}, &pgproto3.Execute{Portal: "p1", MaxRows: 100})
	f.Fuzz(func(t *testing.T, body []byte) {
		portal, maxRows, err := codec.ParseExecute(body)
		var m pgproto3.Execute
		perr := m.Decode(body)
		if err != nil {
			if perr == nil && reencodes(&m, frame('E', body)) {
				t.Fatalf("codec rejects (%v) what pgproto3 round-trips: %+v", err, m)
			}
			return
		}
		within(t, "portal", portal, body)
		if perr != nil || string(portal) != m.Portal || maxRows != m.MaxRows {
			t.Fatalf("codec %q %d, pgproto3 %+v %v", portal, maxRows, m, perr)
		}
		if got := codec.AppendExecute(nil, portal, maxRows); !bytes.Equal(got, frame('E', body)) {
			t.Fatalf("re-encoded %q", got)
		}
	})
}

func FuzzReadyForQueryStatus(f *testing.F) {
	addBodies(f, &pgproto3.ReadyForQuery{TxStatus: 'I'}, &pgproto3.ReadyForQuery{TxStatus: 'T'}, &pgproto3.ReadyForQuery{TxStatus: 'E'})
	f.Add([]byte("X"))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := codec.ReadyForQueryStatus(body)
		ok := len(body) == 1 && bytes.IndexByte([]byte("ITE"), body[0]) >= 0
		if (err == nil) != ok {
			t.Fatalf("%q: %v", body, err)
		}
		if err != nil {
			return
		}
		var m pgproto3.ReadyForQuery
		if perr := m.Decode(body); perr != nil || m.TxStatus != s {
			t.Fatalf("codec %q, pgproto3 %q %v", s, m.TxStatus, perr)
		}
		if got := codec.AppendReadyForQuery(nil, s); !bytes.Equal(got, frame('Z', body)) {
			t.Fatalf("re-encoded %q", got)
		}
	})
}

// appendErrorFields encodes all known fields of e, in a fixed order.
func appendErrorFields(e codec.ErrorFields) []byte {
	var b []byte
	for _, fv := range []struct {
		t byte
		v []byte
	}{
		{'S', e.Severity}, {'V', e.SeverityNonLocalized}, {'C', e.Code}, {'M', e.Message}, {'D', e.Detail}, {'H', e.Hint},
		{'P', e.Position}, {'p', e.InternalPosition}, {'q', e.InternalQuery}, {'W', e.Where}, {'s', e.SchemaName},
		{'t', e.TableName}, {'c', e.ColumnName}, {'d', e.DataTypeName}, {'n', e.ConstraintName}, {'F', e.File},
		{'L', e.Line}, {'R', e.Routine},
	} {
		if fv.v != nil {
			b = append(append(append(b, fv.t), fv.v...), 0)
		}
	}
	return append(b, 0)
}

func errorFieldStrings(e codec.ErrorFields) []string {
	return []string{string(e.Severity), string(e.SeverityNonLocalized), string(e.Code), string(e.Message), string(e.Detail),
		string(e.Hint), string(e.InternalQuery), string(e.Where), string(e.SchemaName), string(e.TableName),
		string(e.ColumnName), string(e.DataTypeName), string(e.ConstraintName), string(e.File), string(e.Routine)}
}

func FuzzParseErrorFields(f *testing.F) {
	addBodies(f,
		&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42P01", Message: `relation "x" does not exist`, Position: 15, File: "parse_relation.c", Line: 1392, Routine: "parserOpenTable"},
		&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"},
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "23505", Message: "dup", Detail: "d", Hint: "h", InternalPosition: 3, InternalQuery: "q", Where: "w",
			SchemaName: "s", TableName: "t", ColumnName: "c", DataTypeName: "dt", ConstraintName: "n", UnknownFields: map[byte]string{'Z': "z"}},
		&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: "hi"},
	)
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := codec.ParseErrorFields(body)
		if err != nil {
			if err != codec.ErrMalformed {
				t.Fatal(err)
			}
			return
		}
		v := reflect.ValueOf(e)
		for i := range v.NumField() {
			fb := v.Field(i).Bytes()
			within(t, v.Type().Field(i).Name, fb, body)
			if bytes.IndexByte(fb, 0) >= 0 {
				t.Fatalf("NUL in %s", v.Type().Field(i).Name)
			}
		}
		// Re-encoding the known fields parses back to the same fields.
		e2, err := codec.ParseErrorFields(appendErrorFields(e))
		if err != nil || !reflect.DeepEqual(errorFieldStrings(e2), errorFieldStrings(e)) ||
			!bytes.Equal(e2.Position, e.Position) || !bytes.Equal(e2.Line, e.Line) || !bytes.Equal(e2.InternalPosition, e.InternalPosition) {
			t.Fatalf("round trip: %+v vs %+v %v", e2, e, err)
		}
		// pgproto3 agrees on every string field.
		var m pgproto3.ErrorResponse
		if perr := m.Decode(body); perr != nil {
			t.Fatalf("pgproto3 rejects: %v", perr)
		}
		want := []string{m.Severity, m.SeverityUnlocalized, m.Code, m.Message, m.Detail, m.Hint, m.InternalQuery, m.Where,
			m.SchemaName, m.TableName, m.ColumnName, m.DataTypeName, m.ConstraintName, m.File, m.Routine}
		if got := errorFieldStrings(e); !reflect.DeepEqual(got, want) {
			t.Fatalf("codec %q, pgproto3 %q", got, want)
		}
		// AppendErrorResponse writes what ParseErrorFields reads.
		er := codec.ErrorResponse{Severity: string(e.Severity), Code: sqlstate.Code(e.Code), Message: string(e.Message), Detail: string(e.Detail), Hint: string(e.Hint)}
		for _, tc := range []struct {
			typ byte
			fn  func([]byte, codec.ErrorResponse) []byte
			def string
		}{{'E', codec.AppendErrorResponse, "ERROR"}, {'N', codec.AppendNoticeResponse, "NOTICE"}} {
			wire := tc.fn(nil, er)
			fr, n, err := codec.ReadFrame(wire, 0)
			if err != nil || n != len(wire) || fr.Type != tc.typ {
				t.Fatalf("appended %q: %v", wire, err)
			}
			e3, err := codec.ParseErrorFields(fr.Body)
			sev := er.Severity
			if sev == "" {
				sev = tc.def
			}
			if err != nil || string(e3.Severity) != sev || string(e3.SeverityNonLocalized) != sev || string(e3.Code) != string(er.Code) ||
				string(e3.Message) != er.Message || string(e3.Detail) != er.Detail || string(e3.Hint) != er.Hint {
				t.Fatalf("appended %+v, parsed %+v %v", er, e3, err)
			}
		}
	})
}

func FuzzParseParameterStatus(f *testing.F) {
	addBodies(f, &pgproto3.ParameterStatus{Name: "TimeZone", Value: "UTC"}, &pgproto3.ParameterStatus{Name: "application_name", Value: ""})
	f.Fuzz(func(t *testing.T, body []byte) {
		name, value, err := codec.ParseParameterStatus(body)
		var m pgproto3.ParameterStatus
		perr := m.Decode(body)
		if err != nil {
			if perr == nil && reencodes(&m, frame('S', body)) {
				t.Fatalf("codec rejects (%v) what pgproto3 round-trips: %+v", err, m)
			}
			return
		}
		within(t, "name", name, body)
		within(t, "value", value, body)
		if perr != nil || string(name) != m.Name || string(value) != m.Value {
			t.Fatalf("codec %q %q, pgproto3 %+v %v", name, value, m, perr)
		}
		if got := codec.AppendParameterStatus(nil, string(name), string(value)); !bytes.Equal(got, frame('S', body)) {
			t.Fatalf("re-encoded %q", got)
		}
	})
}

func FuzzParseDataRow(f *testing.F) {
	addBodies(f, &pgproto3.DataRow{Values: [][]byte{[]byte("search_path"), nil, {}}}, &pgproto3.DataRow{})
	f.Fuzz(func(t *testing.T, body []byte) {
		cols, err := codec.ParseDataRow(body, nil)
		var m pgproto3.DataRow
		perr := m.Decode(body)
		if err != nil {
			if perr == nil && reencodes(&m, frame('D', body)) {
				t.Fatalf("codec rejects (%v) what pgproto3 round-trips: %+v", err, m)
			}
			return
		}
		if perr != nil || len(cols) != len(m.Values) {
			t.Fatalf("codec %q, pgproto3 %+v %v", cols, m, perr)
		}
		for i, c := range cols {
			within(t, "column", c, body)
			if (c == nil) != (m.Values[i] == nil) || !bytes.Equal(c, m.Values[i]) {
				t.Fatalf("column %d: codec %q, pgproto3 %q", i, c, m.Values[i])
			}
		}
		if !reencodes(&m, frame('D', body)) {
			t.Fatalf("pgproto3 does not re-encode what codec accepts: %q", body)
		}
	})
}

func FuzzParseBackendKeyData(f *testing.F) {
	addBodies(f, &pgproto3.BackendKeyData{ProcessID: 1234, SecretKey: []byte{1, 2, 3, 4}}, &pgproto3.BackendKeyData{ProcessID: 1, SecretKey: bytes.Repeat([]byte{3}, 32)})
	f.Fuzz(func(t *testing.T, body []byte) {
		pid, key, err := codec.ParseBackendKeyData(body)
		var m pgproto3.BackendKeyData
		perr := m.Decode(body)
		if err != nil {
			// codec also bounds the key at MaxCancelKeyLength.
			if perr == nil && len(body) <= 4+codec.MaxCancelKeyLength {
				t.Fatalf("codec rejects (%v) what pgproto3 accepts: %+v", err, m)
			}
			return
		}
		within(t, "key", key, body)
		if perr != nil || pid != m.ProcessID || !bytes.Equal(key, m.SecretKey) {
			t.Fatalf("codec %d %x, pgproto3 %+v %v", pid, key, m, perr)
		}
		if len(key) == 4 {
			if got := codec.AppendBackendKeyData(nil, pid, binary.BigEndian.Uint32(key)); !bytes.Equal(got, frame('K', body)) {
				t.Fatalf("re-encoded %q", got)
			}
		}
	})
}

func FuzzParseCopyResponse(f *testing.F) {
	addBodies(f, &pgproto3.CopyInResponse{OverallFormat: 0, ColumnFormatCodes: []uint16{0, 0}},
		&pgproto3.CopyOutResponse{OverallFormat: 1, ColumnFormatCodes: []uint16{1}}, &pgproto3.CopyBothResponse{})
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := codec.ParseCopyResponse(body)
		var m pgproto3.CopyOutResponse
		perr := m.Decode(body)
		if (err == nil) != (perr == nil) {
			t.Fatalf("codec err %v, pgproto3 err %v", err, perr)
		}
		if err != nil {
			return
		}
		within(t, "formats", c.ColumnFormats, body)
		if c.Format != m.OverallFormat || c.NumColumns != len(m.ColumnFormatCodes) || len(c.ColumnFormats) != 2*c.NumColumns {
			t.Fatalf("codec %+v, pgproto3 %+v", c, m)
		}
		for i, fc := range m.ColumnFormatCodes {
			if binary.BigEndian.Uint16(c.ColumnFormats[2*i:]) != fc {
				t.Fatalf("column %d", i)
			}
		}
	})
}

func FuzzParseAuthentication(f *testing.F) {
	addBodies(f,
		&pgproto3.AuthenticationOk{}, &pgproto3.AuthenticationCleartextPassword{}, &pgproto3.AuthenticationMD5Password{Salt: [4]byte{1, 2, 3, 4}},
		&pgproto3.AuthenticationGSS{}, &pgproto3.AuthenticationGSSContinue{Data: []byte("tok")},
		&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}},
		&pgproto3.AuthenticationSASLContinue{Data: []byte("r=abc,s=ZGVm,i=4096")}, &pgproto3.AuthenticationSASLFinal{Data: []byte("v=xyz")},
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		kind, data, err := codec.ParseAuthentication(body)
		if err != nil {
			if err != codec.ErrMalformed {
				t.Fatal(err)
			}
			return
		}
		within(t, "data", data, body)
		if len(body) < 4 || kind != binary.BigEndian.Uint32(body) || !bytes.Equal(data, body[4:]) {
			t.Fatalf("%d %q", kind, data)
		}
		var perr error
		switch kind {
		case codec.AuthOk:
			perr = new(pgproto3.AuthenticationOk).Decode(body)
		case codec.AuthCleartextPassword:
			perr = new(pgproto3.AuthenticationCleartextPassword).Decode(body)
		case codec.AuthMD5Password:
			var m pgproto3.AuthenticationMD5Password
			if perr = m.Decode(body); perr == nil && !bytes.Equal(m.Salt[:], data) {
				t.Fatalf("salt %x vs %x", m.Salt, data)
			}
		case codec.AuthGSS:
			perr = new(pgproto3.AuthenticationGSS).Decode(body)
		case codec.AuthGSSContinue:
			var m pgproto3.AuthenticationGSSContinue
			if perr = m.Decode(body); perr == nil && !bytes.Equal(m.Data, data) {
				t.Fatal("data differs")
			}
		case codec.AuthSASL:
			var m pgproto3.AuthenticationSASL
			var mechs []string
			if err := codec.SASLMechanisms(data, func(b []byte) { mechs = append(mechs, string(b)) }); err != nil {
				t.Fatalf("ParseAuthentication accepted a SASL list SASLMechanisms rejects: %v", err)
			}
			if perr = m.Decode(body); perr == nil && !reflect.DeepEqual(m.AuthMechanisms, mechs) && !(len(mechs) == 0 && len(m.AuthMechanisms) == 0) {
				t.Fatalf("mechanisms %q vs %q", mechs, m.AuthMechanisms)
			}
		case codec.AuthSASLContinue:
			var m pgproto3.AuthenticationSASLContinue
			if perr = m.Decode(body); perr == nil && !bytes.Equal(m.Data, data) {
				t.Fatal("data differs")
			}
		case codec.AuthSASLFinal:
			var m pgproto3.AuthenticationSASLFinal
			if perr = m.Decode(body); perr == nil && !bytes.Equal(m.Data, data) {
				t.Fatal("data differs")
			}
		}
		if perr != nil {
			t.Fatalf("kind %d: pgproto3 rejects: %v", kind, perr)
		}
	})
}

func FuzzSASLMechanisms(f *testing.F) {
	f.Add([]byte("SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00"))
	f.Add([]byte("SCRAM-SHA-256\x00\x00"))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rebuilt []byte
		calls := 0
		err := codec.SASLMechanisms(data, func(m []byte) {
			calls++
			within(t, "mech", m, data)
			if len(m) == 0 || bytes.IndexByte(m, 0) >= 0 {
				t.Fatalf("bad mechanism %q", m)
			}
			rebuilt = append(append(rebuilt, m...), 0)
		})
		if err != nil {
			if err != codec.ErrMalformed || calls != 0 {
				t.Fatalf("err %v after %d calls", err, calls)
			}
			return
		}
		if rebuilt = append(rebuilt, 0); !bytes.Equal(rebuilt, data) {
			t.Fatalf("rebuilt %q, want %q", rebuilt, data)
		}
	})
}

func FuzzParseNegotiateProtocolVersion(f *testing.F) {
	addBodies(f, &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: []string{"_pq_.a", "_pq_.b"}},
		&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 2})
	f.Add(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0), math.MaxUint32))
	f.Fuzz(func(t *testing.T, body []byte) {
		minor, opts, err := codec.ParseNegotiateProtocolVersion(body)
		var m pgproto3.NegotiateProtocolVersion
		perr := m.Decode(body)
		if err != nil {
			if perr == nil && reencodes(&m, frame('v', body)) {
				t.Fatalf("codec rejects (%v) what pgproto3 round-trips: %+v", err, m)
			}
			return
		}
		if perr != nil || minor != m.NewestMinorProtocol || len(opts) != len(m.UnrecognizedOptions) {
			t.Fatalf("codec %d %q, pgproto3 %+v %v", minor, opts, m, perr)
		}
		strs := make([]string, len(opts))
		for i, o := range opts {
			within(t, "option", o, body)
			if string(o) != m.UnrecognizedOptions[i] {
				t.Fatalf("option %d: %q vs %q", i, o, m.UnrecognizedOptions[i])
			}
			strs[i] = string(o)
		}
		if got := codec.AppendNegotiateProtocolVersion(nil, minor, strs); !bytes.Equal(got, frame('v', body)) {
			t.Fatalf("re-encoded %q", got)
		}
	})
}

// rejectedAlike checks a decoder's error against pgproto3's verdict on the
// same body of a typ message: codec may refuse only what pgproto3 refuses or
// cannot re-encode byte for byte. It reports whether codec refused.
func rejectedAlike(t *testing.T, err error, m interface {
	encoder
	Decode([]byte) error
}, typ byte, body []byte) bool {
	if err == nil {
		return false
	}
	if err != codec.ErrMalformed {
		t.Fatal(err)
	}
	if m.Decode(body) == nil && reencodes(m, codec.AppendFrame(nil, typ, body)) {
		t.Fatalf("pgproto3 accepts %q", body)
	}
	return true
}

func FuzzPasswordText(f *testing.F) {
	addBodies(f, &pgproto3.PasswordMessage{Password: "md5" + "0123456789abcdef0123456789abcdef"}, &pgproto3.PasswordMessage{Password: ""})
	f.Fuzz(func(t *testing.T, body []byte) {
		pw, err := codec.PasswordText(body)
		var m pgproto3.PasswordMessage
		if rejectedAlike(t, err, &m, 'p', body) {
			return
		}
		within(t, "password", pw, body)
		if perr := m.Decode(body); perr != nil || m.Password != string(pw) {
			t.Fatalf("%q vs pgproto3 %q (%v)", pw, m.Password, perr)
		}
	})
}

func FuzzParseSASLInitialResponse(f *testing.F) {
	addBodies(f,
		&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=rOprNGfwEbeRWgbNEkqO")},
		&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: nil},
	)
	f.Add([]byte("SCRAM-SHA-256\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, body []byte) {
		mech, data, err := codec.ParseSASLInitialResponse(body)
		var m pgproto3.SASLInitialResponse
		if rejectedAlike(t, err, &m, 'p', body) {
			return
		}
		within(t, "mechanism", mech, body)
		within(t, "data", data, body)
		if perr := m.Decode(body); perr != nil || m.AuthMechanism != string(mech) || !bytes.Equal(m.Data, data) {
			t.Fatalf("%q %q vs pgproto3 %q %q (%v)", mech, data, m.AuthMechanism, m.Data, perr)
		}
	})
}

func FuzzParseRowDescription(f *testing.F) {
	addBodies(f, &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("aid"), TableOID: 16384, TableAttributeNumber: 1, DataTypeOID: 20, DataTypeSize: 8, TypeModifier: -1},
		{Name: []byte("?column?"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1, Format: 1}}}, &pgproto3.RowDescription{})
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, err := codec.ParseRowDescription(body, nil)
		var m pgproto3.RowDescription
		perr := m.Decode(body)
		if err != nil {
			if perr == nil && reencodes(&m, frame('T', body)) {
				t.Fatalf("codec rejects (%v) what pgproto3 round-trips: %+v", err, m)
			}
			return
		}
		if perr != nil || len(fields) != len(m.Fields) {
			t.Fatalf("codec %+v, pgproto3 %+v %v", fields, m, perr)
		}
		for i, fd := range fields {
			within(t, "name", fd.Name, body)
			g := m.Fields[i]
			if !bytes.Equal(fd.Name, g.Name) || fd.TableOID != g.TableOID || uint16(fd.Column) != g.TableAttributeNumber ||
				fd.TypeOID != g.DataTypeOID || fd.TypeSize != g.DataTypeSize || fd.TypeModifier != g.TypeModifier || fd.Format != g.Format {
				t.Fatalf("field %d: codec %+v, pgproto3 %+v", i, fd, g)
			}
		}
	})
}

func FuzzAppendDataRow(f *testing.F) {
	f.Add([]byte("a"), []byte(""), true)
	f.Fuzz(func(t *testing.T, a, b []byte, null bool) {
		cols := [][]byte{a, b}
		if null {
			cols[1] = nil
		}
		msg := codec.AppendDataRow(nil, cols)
		var m pgproto3.DataRow
		if err := m.Decode(msg[5:]); err != nil || len(m.Values) != 2 || !bytes.Equal(m.Values[0], a) || (m.Values[1] == nil) != null {
			t.Fatalf("pgproto3 reads %+v %v from %q", m, err, msg)
		}
		got, err := codec.ParseDataRow(msg[5:], nil)
		if err != nil || !bytes.Equal(got[0], a) || (got[1] == nil) != null {
			t.Fatalf("ParseDataRow: %q %v", got, err)
		}
	})
}
