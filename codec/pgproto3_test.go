package codec_test

import (
	"bytes"
	"io"
	"reflect"
	"strconv"
	"testing"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/jackc/pgx/v5/pgproto3"
)

// readOne frames an encoded typed message with codec and checks its type.
func readOne(t *testing.T, wire []byte, typ byte) []byte {
	t.Helper()
	f, n, err := codec.ReadFrame(wire, 0)
	if err != nil || n != len(wire) || f.Type != typ {
		t.Fatalf("ReadFrame(%q) = %q n=%d err=%v, want type %q n=%d", wire, f.Type, n, err, typ, len(wire))
	}
	return f.Body
}

// TestDecodePgproto3 encodes each message kind with pgproto3 and decodes it
// with codec.
func TestDecodePgproto3(t *testing.T) {
	t.Run("Query", func(t *testing.T) {
		q, err := codec.QueryText(readOne(t, encode(t, &pgproto3.Query{String: "select * from t where a = 'x'"}), codec.MsgQuery))
		if err != nil || string(q) != "select * from t where a = 'x'" {
			t.Fatalf("%q %v", q, err)
		}
	})
	t.Run("Parse", func(t *testing.T) {
		p, err := codec.ParseParse(readOne(t, encode(t, &pgproto3.Parse{Name: "s1", Query: "select $1::int, $2", ParameterOIDs: []uint32{23, 0}}), codec.MsgParse))
		if err != nil || string(p.Name) != "s1" || string(p.Query) != "select $1::int, $2" || p.NumParams != 2 ||
			!bytes.Equal(p.ParamOIDs, cat(u32(23), u32(0))) {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("Bind", func(t *testing.T) {
		m := &pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s1", ParameterFormatCodes: []int16{0, 1},
			Parameters: [][]byte{[]byte("42"), nil}, ResultFormatCodes: []int16{1}}
		wire := encode(t, m)
		b, err := codec.ParseBind(readOne(t, wire, codec.MsgBind))
		if err != nil || string(b.Portal) != "p" || string(b.Statement) != "s1" {
			t.Fatalf("%+v %v", b, err)
		}
		if got := codec.AppendBind(nil, b); !bytes.Equal(got, wire) {
			t.Fatalf("re-encoded %q, want %q", got, wire)
		}
	})
	for _, kind := range []byte{'S', 'P'} {
		t.Run("Describe"+string(kind), func(t *testing.T) {
			k, n, err := codec.ParseDescribe(readOne(t, encode(t, &pgproto3.Describe{ObjectType: kind, Name: "x1"}), codec.MsgDescribe))
			if err != nil || k != kind || string(n) != "x1" {
				t.Fatalf("%q %q %v", k, n, err)
			}
		})
		t.Run("Close"+string(kind), func(t *testing.T) {
			k, n, err := codec.ParseClose(readOne(t, encode(t, &pgproto3.Close{ObjectType: kind, Name: "x1"}), codec.MsgClose))
			if err != nil || k != kind || string(n) != "x1" {
				t.Fatalf("%q %q %v", k, n, err)
			}
		})
	}
	t.Run("Execute", func(t *testing.T) {
		p, max, err := codec.ParseExecute(readOne(t, encode(t, &pgproto3.Execute{Portal: "p", MaxRows: 10}), codec.MsgExecute))
		if err != nil || string(p) != "p" || max != 10 {
			t.Fatalf("%q %d %v", p, max, err)
		}
	})
	for name, tc := range map[string]struct {
		m   interface{ Encode([]byte) ([]byte, error) }
		typ byte
	}{
		"Sync":      {&pgproto3.Sync{}, codec.MsgSync},
		"Flush":     {&pgproto3.Flush{}, codec.MsgFlush},
		"Terminate": {&pgproto3.Terminate{}, codec.MsgTerminate},
		"CopyDone":  {&pgproto3.CopyDone{}, codec.MsgCopyDone},
	} {
		t.Run(name, func(t *testing.T) {
			if b := readOne(t, encode(t, tc.m), tc.typ); len(b) != 0 {
				t.Fatalf("body %q", b)
			}
		})
	}
	t.Run("CopyData", func(t *testing.T) {
		if b := readOne(t, encode(t, &pgproto3.CopyData{Data: []byte("1\tx\n")}), codec.MsgCopyData); string(b) != "1\tx\n" {
			t.Fatalf("%q", b)
		}
	})
	t.Run("CopyFail", func(t *testing.T) {
		b := readOne(t, encode(t, &pgproto3.CopyFail{Message: "no"}), codec.MsgCopyFail)
		if !bytes.Equal(codec.AppendCopyFail(nil, "no"), frame('f', b)) {
			t.Fatalf("%q", b)
		}
	})
	t.Run("StartupMessage", func(t *testing.T) {
		for _, v := range []uint32{pgproto3.ProtocolVersion30, pgproto3.ProtocolVersion32} {
			want := map[string]string{"user": "alice", "database": "db", "application_name": "", "options": "-c x=1"}
			wire := encode(t, &pgproto3.StartupMessage{ProtocolVersion: v, Parameters: want})
			code, body, n, err := codec.ReadStartupPacket(wire)
			if err != nil || n != len(wire) || code != v {
				t.Fatalf("%d %d %v", code, n, err)
			}
			got := map[string]string{}
			if err := codec.StartupParams(body, func(k, v []byte) { got[string(k)] = string(v) }); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("%v %v", got, err)
			}
		}
	})
	t.Run("SSLRequest", func(t *testing.T) {
		code, body, n, err := codec.ReadStartupPacket(encode(t, &pgproto3.SSLRequest{}))
		if err != nil || code != codec.SSLRequestCode || len(body) != 0 || n != 8 {
			t.Fatalf("%d %q %d %v", code, body, n, err)
		}
	})
	t.Run("GSSEncRequest", func(t *testing.T) {
		code, body, n, err := codec.ReadStartupPacket(encode(t, &pgproto3.GSSEncRequest{}))
		if err != nil || code != codec.GSSENCRequestCode || len(body) != 0 || n != 8 {
			t.Fatalf("%d %q %d %v", code, body, n, err)
		}
	})
	for _, key := range [][]byte{u32(0xCAFEBABE), bytes.Repeat([]byte{0xAB}, 32), bytes.Repeat([]byte{1}, 256)} {
		t.Run("CancelRequest/"+strconv.Itoa(len(key)), func(t *testing.T) {
			code, body, _, err := codec.ReadStartupPacket(encode(t, &pgproto3.CancelRequest{ProcessID: 77, SecretKey: key}))
			if err != nil || code != codec.CancelRequestCode {
				t.Fatalf("%d %v", code, err)
			}
			pid, k, err := codec.ParseCancelRequest(body)
			if err != nil || pid != 77 || !bytes.Equal(k, key) {
				t.Fatalf("%d %x %v", pid, k, err)
			}
		})
		t.Run("BackendKeyData/"+strconv.Itoa(len(key)), func(t *testing.T) {
			pid, k, err := codec.ParseBackendKeyData(readOne(t, encode(t, &pgproto3.BackendKeyData{ProcessID: 77, SecretKey: key}), codec.MsgBackendKeyData))
			if err != nil || pid != 77 || !bytes.Equal(k, key) {
				t.Fatalf("%d %x %v", pid, k, err)
			}
		})
	}
	for _, s := range []byte{'I', 'T', 'E'} {
		t.Run("ReadyForQuery"+string(s), func(t *testing.T) {
			got, err := codec.ReadyForQueryStatus(readOne(t, encode(t, &pgproto3.ReadyForQuery{TxStatus: s}), codec.MsgReadyForQuery))
			if err != nil || got != s {
				t.Fatalf("%q %v", got, err)
			}
		})
	}
	full := pgproto3.ErrorResponse{
		Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "23505", Message: "duplicate key", Detail: "Key (id)=(1) already exists.",
		Hint: "h", Position: 12, InternalPosition: 3, InternalQuery: "iq", Where: "w", SchemaName: "public", TableName: "t",
		ColumnName: "c", DataTypeName: "dt", ConstraintName: "t_pkey", File: "nbtinsert.c", Line: 666, Routine: "_bt_check_unique",
		UnknownFields: map[byte]string{'Z': "future"},
	}
	checkFields := func(t *testing.T, e codec.ErrorFields, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{
			"S": string(e.Severity), "V": string(e.SeverityNonLocalized), "C": string(e.Code), "M": string(e.Message),
			"D": string(e.Detail), "H": string(e.Hint), "P": string(e.Position), "p": string(e.InternalPosition),
			"q": string(e.InternalQuery), "W": string(e.Where), "s": string(e.SchemaName), "t": string(e.TableName),
			"c": string(e.ColumnName), "d": string(e.DataTypeName), "n": string(e.ConstraintName), "F": string(e.File),
			"L": string(e.Line), "R": string(e.Routine),
		}
		want := map[string]string{
			"S": "ERROR", "V": "ERROR", "C": "23505", "M": "duplicate key", "D": "Key (id)=(1) already exists.", "H": "h",
			"P": "12", "p": "3", "q": "iq", "W": "w", "s": "public", "t": "t", "c": "c", "d": "dt", "n": "t_pkey",
			"F": "nbtinsert.c", "L": "666", "R": "_bt_check_unique",
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v\nwant %v", got, want)
		}
	}
	t.Run("ErrorResponse", func(t *testing.T) {
		m := full
		e, err := codec.ParseErrorFields(readOne(t, encode(t, &m), codec.MsgErrorResponse))
		checkFields(t, e, err)
	})
	t.Run("NoticeResponse", func(t *testing.T) {
		m := pgproto3.NoticeResponse(full)
		e, err := codec.ParseErrorFields(readOne(t, encode(t, &m), codec.MsgNoticeResponse))
		checkFields(t, e, err)
	})
	t.Run("ParameterStatus", func(t *testing.T) {
		n, v, err := codec.ParseParameterStatus(readOne(t, encode(t, &pgproto3.ParameterStatus{Name: "server_version", Value: "15.18"}), codec.MsgParameterStatus))
		if err != nil || string(n) != "server_version" || string(v) != "15.18" {
			t.Fatalf("%q %q %v", n, v, err)
		}
	})
	t.Run("CommandComplete", func(t *testing.T) {
		tag, err := codec.CommandTag(readOne(t, encode(t, &pgproto3.CommandComplete{CommandTag: []byte("INSERT 0 1")}), codec.MsgCommandComplete))
		if err != nil || string(tag) != "INSERT 0 1" {
			t.Fatalf("%q %v", tag, err)
		}
	})
	for name, tc := range map[string]struct {
		m   interface{ Encode([]byte) ([]byte, error) }
		typ byte
	}{
		"CopyInResponse":   {&pgproto3.CopyInResponse{OverallFormat: 1, ColumnFormatCodes: []uint16{1, 1, 1}}, codec.MsgCopyInResponse},
		"CopyOutResponse":  {&pgproto3.CopyOutResponse{OverallFormat: 1, ColumnFormatCodes: []uint16{1, 1, 1}}, codec.MsgCopyOutResponse},
		"CopyBothResponse": {&pgproto3.CopyBothResponse{OverallFormat: 1, ColumnFormatCodes: []uint16{1, 1, 1}}, codec.MsgCopyBothResponse},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := codec.ParseCopyResponse(readOne(t, encode(t, tc.m), tc.typ))
			if err != nil || c.Format != 1 || c.NumColumns != 3 || !bytes.Equal(c.ColumnFormats, cat(u16(1), u16(1), u16(1))) {
				t.Fatalf("%+v %v", c, err)
			}
		})
	}
	for name, tc := range map[string]struct {
		m    interface{ Encode([]byte) ([]byte, error) }
		kind uint32
		data []byte
	}{
		"AuthenticationOk":                {&pgproto3.AuthenticationOk{}, codec.AuthOk, nil},
		"AuthenticationCleartextPassword": {&pgproto3.AuthenticationCleartextPassword{}, codec.AuthCleartextPassword, nil},
		"AuthenticationMD5Password":       {&pgproto3.AuthenticationMD5Password{Salt: [4]byte{1, 2, 3, 4}}, codec.AuthMD5Password, []byte{1, 2, 3, 4}},
		"AuthenticationGSS":               {&pgproto3.AuthenticationGSS{}, codec.AuthGSS, nil},
		"AuthenticationGSSContinue":       {&pgproto3.AuthenticationGSSContinue{Data: []byte("tok")}, codec.AuthGSSContinue, []byte("tok")},
		"AuthenticationSASL":              {&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}}, codec.AuthSASL, []byte("SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00")},
		"AuthenticationSASLContinue":      {&pgproto3.AuthenticationSASLContinue{Data: []byte("r=1,s=2,i=4096")}, codec.AuthSASLContinue, []byte("r=1,s=2,i=4096")},
		"AuthenticationSASLFinal":         {&pgproto3.AuthenticationSASLFinal{Data: []byte("v=abc")}, codec.AuthSASLFinal, []byte("v=abc")},
	} {
		t.Run(name, func(t *testing.T) {
			kind, data, err := codec.ParseAuthentication(readOne(t, encode(t, tc.m), codec.MsgAuthentication))
			if err != nil || kind != tc.kind || !bytes.Equal(data, tc.data) {
				t.Fatalf("%d %q %v", kind, data, err)
			}
		})
	}
	t.Run("NegotiateProtocolVersion", func(t *testing.T) {
		minor, opts, err := codec.ParseNegotiateProtocolVersion(readOne(t,
			encode(t, &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 2, UnrecognizedOptions: []string{"_pq_.a", "_pq_.b"}}), codec.MsgNegotiateProtocolVersion))
		if err != nil || minor != 2 || len(opts) != 2 || string(opts[0]) != "_pq_.a" || string(opts[1]) != "_pq_.b" {
			t.Fatalf("%d %q %v", minor, opts, err)
		}
	})
	t.Run("DataRow", func(t *testing.T) {
		wire := encode(t, &pgproto3.DataRow{Values: [][]byte{[]byte("1"), nil, []byte("abc")}})
		if b := readOne(t, wire, codec.MsgDataRow); !bytes.Equal(codec.AppendFrame(nil, codec.MsgDataRow, b), wire) {
			t.Fatal("DataRow does not re-frame")
		}
	})
}

// TestEncodeForPgproto3 writes frontend and backend message streams with
// codec's appenders and reads them with pgproto3.
func TestEncodeForPgproto3(t *testing.T) {
	t.Run("frontend", func(t *testing.T) {
		var w []byte
		w = codec.AppendStartupMessage(w, codec.ProtocolVersion30, "user", "alice", "database", "db")
		w = codec.AppendQuery(w, "select 1")
		w = codec.AppendParse(w, codec.Parse{Name: []byte("s1"), Query: []byte("select $1"), ParamOIDs: u32(23), NumParams: 1})
		bindBody := body(t, &pgproto3.Bind{PreparedStatement: "x", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 1}, nil}, ResultFormatCodes: []int16{0}})
		b, err := codec.ParseBind(bindBody)
		if err != nil {
			t.Fatal(err)
		}
		b.Portal, b.Statement = []byte("p1"), []byte("s1")
		w = codec.AppendBind(w, b)
		w = codec.AppendDescribe(w, 'P', []byte("p1"))
		w = codec.AppendExecute(w, []byte("p1"), 5)
		w = codec.AppendClose(w, 'S', []byte("s1"))
		w = codec.AppendFlush(w)
		w = codec.AppendSync(w)
		w = codec.AppendCopyFail(w, "stop")
		w = codec.AppendFrame(w, codec.MsgCopyData, []byte("data"))
		w = codec.AppendFrame(w, codec.MsgCopyDone, nil)
		w = codec.AppendTerminate(w)

		be := pgproto3.NewBackend(bytes.NewReader(w), io.Discard)
		sm, err := be.ReceiveStartupMessage()
		if err != nil {
			t.Fatal(err)
		}
		if got := sm.(*pgproto3.StartupMessage); got.ProtocolVersion != pgproto3.ProtocolVersion30 ||
			!reflect.DeepEqual(got.Parameters, map[string]string{"user": "alice", "database": "db"}) {
			t.Fatalf("startup %+v", got)
		}
		want := []pgproto3.FrontendMessage{
			&pgproto3.Query{String: "select 1"},
			&pgproto3.Parse{Name: "s1", Query: "select $1", ParameterOIDs: []uint32{23}},
			&pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 1}, nil}, ResultFormatCodes: []int16{0}},
			&pgproto3.Describe{ObjectType: 'P', Name: "p1"},
			&pgproto3.Execute{Portal: "p1", MaxRows: 5},
			&pgproto3.Close{ObjectType: 'S', Name: "s1"},
			&pgproto3.Flush{},
			&pgproto3.Sync{},
			&pgproto3.CopyFail{Message: "stop"},
			&pgproto3.CopyData{Data: []byte("data")},
			&pgproto3.CopyDone{},
			&pgproto3.Terminate{},
		}
		for i, wm := range want {
			m, err := be.Receive()
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if !reflect.DeepEqual(m, wm) {
				t.Fatalf("message %d: got %#v, want %#v", i, m, wm)
			}
		}
	})
	t.Run("cancel", func(t *testing.T) {
		for _, key := range [][]byte{u32(99), bytes.Repeat([]byte{5}, 32)} {
			be := pgproto3.NewBackend(bytes.NewReader(codec.AppendCancelRequest(nil, 7, key)), io.Discard)
			m, err := be.ReceiveStartupMessage()
			if err != nil {
				t.Fatal(err)
			}
			if cr := m.(*pgproto3.CancelRequest); cr.ProcessID != 7 || !bytes.Equal(cr.SecretKey, key) {
				t.Fatalf("%+v", cr)
			}
		}
		be := pgproto3.NewBackend(bytes.NewReader(codec.AppendSSLRequest(nil)), io.Discard)
		if m, err := be.ReceiveStartupMessage(); err != nil {
			t.Fatal(err)
		} else if _, ok := m.(*pgproto3.SSLRequest); !ok {
			t.Fatalf("%T", m)
		}
	})
	t.Run("backend", func(t *testing.T) {
		var w []byte
		w = codec.AppendAuthenticationOk(w)
		w = codec.AppendParameterStatus(w, "server_version", "15.18")
		w = codec.AppendBackendKeyData(w, 42, 0x01020304)
		w = codec.AppendNegotiateProtocolVersion(w, 0, []string{"_pq_.x"})
		w = codec.AppendNoticeResponse(w, codec.ErrorResponse{Severity: "WARNING", Code: sqlstate.Warning, Message: "careful"})
		w = codec.AppendErrorResponse(w, codec.ErrorResponse{Severity: "FATAL", Code: sqlstate.AdminShutdown, Message: "bye", Detail: "d", Hint: "h"})
		w = codec.AppendReadyForQuery(w, codec.TxFailed)

		fe := pgproto3.NewFrontend(bytes.NewReader(w), io.Discard)
		want := []pgproto3.BackendMessage{
			&pgproto3.AuthenticationOk{},
			&pgproto3.ParameterStatus{Name: "server_version", Value: "15.18"},
			&pgproto3.BackendKeyData{ProcessID: 42, SecretKey: []byte{1, 2, 3, 4}},
			&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: []string{"_pq_.x"}},
			&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "01000", Message: "careful"},
			&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01", Message: "bye", Detail: "d", Hint: "h"},
			&pgproto3.ReadyForQuery{TxStatus: 'E'},
		}
		for i, wm := range want {
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if !reflect.DeepEqual(m, wm) {
				t.Fatalf("message %d: got %#v, want %#v", i, m, wm)
			}
		}
	})
}
