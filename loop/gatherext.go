package loop

import (
	"bytes"
	"encoding/binary"
	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/router"
	"github.com/belaydb/belay/shard"
	"slices"
)

// Reads of several shards in the extended protocol (issue J). A unit of
// work that is one execution of a read of several shards, outside a
// transaction — [Parse of the unnamed statement] Bind of the unnamed
// portal [Describe of it] Execute (all rows) Sync, its statement the
// Parse's or one the client prepared before — is a gather as spread.go
// runs a simple Query's: on each shard's primary belay runs the same
// statement (planner.PlanGather's rewrite when the rows merge) with the
// client's parameters, through its own unnamed statement and portal, and
// answers the unit: ParseComplete, BindComplete, the RowDescription if the
// client asked it, the rows, SELECT n, ReadyForQuery. Rows that need no
// merge come in the formats the client asked; merged rows are computed in
// text and sent in binary where the client asked (shard.EncodeBinary, 0A000
// for a type it does not encode). A unit that executes nothing (a Parse
// and a Describe of the statement, as pgx prepares one) runs on the
// client's current shard: any shard describes it.
//
// Who owns what: as spread.go's gathers, on the session's loop.

// extGather is the client's unit of a read of several shards in the
// extended protocol.
type extGather struct {
	bind      codec.Bind   // the client's (a copy)
	parse     bool         // the unit has a Parse: its ParseComplete comes first
	named     *codec.Parse // that Parse, of a named statement: adopted by the session once gathered
	describe  bool         // it asks the portal's RowDescription
	paramOIDs []byte
	numParams int
	params    []byte  // the Bind's parameter formats and values
	formats   []int16 // the result formats the client asked
}

// gatherableExt says whether the unit starting with data is a read of
// several shards in the extended protocol that spread gathers, with its
// statement's text; the error is the refusal of one belay cannot merge.
func (s *session) gatherableExt(set *shardSet, data []byte) (*extGather, []byte, error) {
	if s.t.pinned || len(set.clusters) < 2 {
		return nil, nil, nil
	}
	g, sql := s.extUnit(data)
	if g == nil {
		return nil, nil, nil
	}
	plan := s.plan(sql)
	if len(plan.Stmts) != 1 || plan.Class != planner.ClassRead || plan.Stmts[0].Copy != 0 {
		return nil, nil, nil
	}
	if shardedAside(set, &plan.Stmts[0]) {
		return nil, nil, errShardedAside
	}
	if !plan.Stmts[0].Concat {
		if _, err := s.p.gathers.plan(sql); err != nil {
			return nil, nil, err
		}
	}
	return g, sql, nil
}

// extUnit reads the unit starting with data as one execution of one
// statement in the extended protocol — [Parse] Bind of the unnamed portal
// [Describe of it] Execute (all rows) Sync — and returns it with the
// statement's text (the Parse's, or that of the statement prepared before
// that it binds); nil if it is anything else, or if its Parse names a
// statement the client has already (the server answers 42P05). What it
// returns is copied
// out of data (a view of the client's input buffer).
func (s *session) extUnit(data []byte) (*extGather, []byte) {
	var g extGather
	var sql []byte
	var bind *codec.Bind
	execs, synced := 0, false
	for typ, m := range unitMessages(data) {
		body := m[5:]
		switch typ {
		case codec.MsgParse:
			p, err := codec.ParseParse(body)
			if err != nil || g.parse || bind != nil {
				return nil, nil
			}
			g.parse, sql, g.paramOIDs, g.numParams = true, p.Query, p.ParamOIDs, p.NumParams
			if len(p.Name) != 0 {
				g.named = &p
			}
		case codec.MsgBind:
			b, err := codec.ParseBind(body)
			if err != nil || bind != nil || len(b.Portal) != 0 || g.parse && string(b.Statement) != string(parsedName(g.named)) {
				return nil, nil
			}
			bind = &b
			if !g.parse {
				p, ok := s.preparedParse(b.Statement)
				if !ok {
					return nil, nil
				}
				sql, g.paramOIDs, g.numParams = p.Query, p.ParamOIDs, p.NumParams
			}
		case codec.MsgDescribe:
			kind, name, err := codec.ParseDescribe(body)
			if err != nil || kind != 'P' || len(name) != 0 || bind == nil {
				return nil, nil
			}
			g.describe = true
		case codec.MsgExecute:
			portal, maxRows, err := codec.ParseExecute(body)
			if err != nil || len(portal) != 0 || maxRows != 0 || bind == nil {
				return nil, nil
			}
			execs++
		case codec.MsgSync:
			synced = true
		default:
			return nil, nil
		}
	}
	if bind == nil || execs != 1 || !synced {
		return nil, nil
	}
	if g.named != nil && s.ps != nil && s.ps.named[string(g.named.Name)] != nil {
		return nil, nil // a name in use: the server says so (42P05)
	}
	if g.named != nil {
		named := *g.named
		named.Name, named.Query, named.ParamOIDs = bytes.Clone(named.Name), bytes.Clone(named.Query), bytes.Clone(named.ParamOIDs)
		g.named = &named
	}
	g.bind = codec.Bind{Rest: bytes.Clone(bind.Rest)}
	params, formats := g.bind.ResultFormats()
	g.params, g.formats, g.paramOIDs = params, formats, bytes.Clone(g.paramOIDs)
	return &g, bytes.Clone(sql)
}

// splitBind is the Bind of part's statement: the client's parameters it
// takes, in its order, each with its format; rows (returning: its
// RETURNING rows) in the client's formats.
func (g *extGather) splitBind(part planner.SplitPart) []byte {
	rest := binary.BigEndian.AppendUint16(nil, uint16(len(part.Params)))
	var vals []byte
	vals = binary.BigEndian.AppendUint16(vals, uint16(len(part.Params)))
	for _, n := range part.Params {
		v, format, null, _ := g.bind.Param(n - 1)
		rest = binary.BigEndian.AppendUint16(rest, uint16(format))
		if null {
			vals = binary.BigEndian.AppendUint32(vals, 0xFFFFFFFF)
			continue
		}
		vals = binary.BigEndian.AppendUint32(vals, uint32(len(v)))
		vals = append(vals, v...)
	}
	rest = append(rest, vals...)
	rest = binary.BigEndian.AppendUint16(rest, uint16(len(g.formats)))
	for _, f := range g.formats {
		rest = binary.BigEndian.AppendUint16(rest, uint16(f))
	}
	return codec.AppendBind(nil, codec.Bind{Rest: rest})
}

// splitParse is the Parse of part's statement, its parameters typed as the
// client typed them (0: unspecified).
func (g *extGather) splitParse(part planner.SplitPart) []byte {
	oids := make([]byte, 0, 4*len(part.Params))
	for _, n := range part.Params {
		if n <= g.numParams {
			oids = append(oids, g.paramOIDs[4*(n-1):4*n]...)
		} else {
			oids = binary.BigEndian.AppendUint32(oids, 0)
		}
	}
	return codec.AppendParse(nil, codec.Parse{Query: []byte(part.SQL), ParamOIDs: oids, NumParams: len(part.Params)})
}

// splitMsgs is what a leg runs for its part of a split INSERT (or the
// whole statement) in the extended protocol: BEGIN, the part, PREPARE
// TRANSACTION gid (three ReadyForQuery); in the client's transaction
// (gid ""), the part alone (one). A write with RETURNING (returning) has
// its rows described.
func (g *extGather) splitMsgs(part planner.SplitPart, gid string, returning bool) (msgs []byte, rfqs int) {
	var b []byte
	if gid != "" {
		b = codec.AppendQuery(b, "BEGIN")
	}
	b = append(b, g.splitParse(part)...)
	b = append(b, g.splitBind(part)...)
	if returning {
		b = codec.AppendDescribe(b, 'P', nil)
	}
	b = codec.AppendExecute(b, nil, 0)
	b = codec.AppendSync(b)
	if gid == "" {
		return b, 1
	}
	return codec.AppendQuery(b, "PREPARE TRANSACTION '"+gid+"'"), 3
}

// splittableExt is splittable for an INSERT in the extended protocol.
func (s *session) splittableExt(data []byte, t router.ShardTarget) (*spreadOn, error) {
	g, sql := s.extUnit(data)
	if g == nil || len(s.plan(sql).Stmts) != 1 {
		return nil, nil
	}
	split, err := planner.SplitInsert(string(sql), t.RowShards)
	if err != nil {
		return nil, err
	}
	return &spreadOn{shards: t.Shards, ext: g, extSQL: sql, extParts: split, rowShards: t.RowShards}, nil
}

// spreadableExt is spreadable for a statement executed in the extended
// protocol: the same statement, with all the client's parameters, on each
// of t's shards (every shard when it names none), as a split INSERT's
// parts run.
func (s *session) spreadableExt(set *shardSet, data []byte, t router.ShardTarget) (*spreadOn, error) {
	if s.p.cfg.RecordDecision == nil || s.t.pinned {
		return nil, nil
	}
	g, sql := s.extUnit(data)
	if g == nil {
		return nil, nil
	}
	if ok, err := s.spreadableSQL(set, sql, true); !ok || err != nil {
		return nil, err
	}
	all := planner.SplitPart{SQL: string(sql)}
	for i := 1; ; i++ {
		if _, _, _, ok := g.bind.Param(i - 1); !ok {
			break
		}
		all.Params = append(all.Params, i)
	}
	shards := t.Shards
	if len(shards) == 0 || len(shards) >= len(set.clusters) {
		shards = nil
	}
	parts := map[int]planner.SplitPart{}
	for k := range set.clusters {
		if shards == nil || slices.Contains(shards, k) {
			parts[k] = all
		}
	}
	return &spreadOn{shards: shards, ext: g, extSQL: sql, extParts: parts}, nil
}

// answer appends the answer to a write's unit: ParseComplete and
// BindComplete, NoData if it asked for a description, the tag.
func (g *extGather) answer(b []byte, tag string) []byte {
	b = g.prefix(b)
	if g.describe {
		b = append(b, codec.MsgNoData, 0, 0, 0, 4)
	}
	return codec.AppendFrame(b, codec.MsgCommandComplete, append([]byte(tag), 0))
}

// parsedName is the name p prepares ("" for none or the unnamed).
func parsedName(p *codec.Parse) []byte {
	if p == nil {
		return nil
	}
	return p.Name
}

// preparedParse is the Parse of the client's statement name (unnamed:
// "") that it prepared before, in the protocol.
func (s *session) preparedParse(name []byte) (codec.Parse, bool) {
	if s.ps == nil {
		return codec.Parse{}, false
	}
	var msg []byte
	if len(name) == 0 {
		if s.ps.hasUnnamed {
			msg = s.ps.unnamed
		}
	} else if st := s.ps.named[string(name)]; st != nil {
		msg = st.parse
	}
	if len(msg) < 5 {
		return codec.Parse{}, false
	}
	p, err := codec.ParseParse(msg[5:])
	return p, err == nil
}

// executes says whether the unit starting with data executes a statement
// (a Query, an Execute or a FunctionCall), as opposed to only preparing or
// describing one.
func executes(data []byte) bool {
	for typ := range unitMessages(data) {
		if typ == codec.MsgQuery || typ == codec.MsgExecute || typ == codec.MsgFunctionCall {
			return true
		}
	}
	return false
}

// extMsgs are the messages a leg sends for an extended gather: sql (the
// client's statement, or its rewrite for a merge) with the client's
// parameters, rows in the client's formats or, merged, in text.
func (g *extGather) extMsgs(sql string, merge bool) []byte {
	b := codec.AppendParse(nil, codec.Parse{Query: []byte(sql), ParamOIDs: g.paramOIDs, NumParams: g.numParams})
	rest := append([]byte(nil), g.params...)
	if merge {
		rest = append(rest, 0, 0) // every column in text
	} else {
		rest = binary.BigEndian.AppendUint16(rest, uint16(len(g.formats)))
		for _, f := range g.formats {
			rest = binary.BigEndian.AppendUint16(rest, uint16(f))
		}
	}
	b = codec.AppendBind(b, codec.Bind{Rest: rest})
	b = codec.AppendDescribe(b, 'P', nil)
	b = codec.AppendExecute(b, nil, 0)
	return codec.AppendSync(b)
}

// prefix is what the answer to the client's unit starts with:
// ParseComplete if it had a Parse, then BindComplete.
func (g *extGather) prefix(b []byte) []byte {
	if g.parse {
		b = append(b, codec.MsgParseComplete, 0, 0, 0, 4)
	}
	return append(b, codec.MsgBindComplete, 0, 0, 0, 4)
}

// format is the format the client asked for column i of n.
func (g *extGather) format(i int) int16 {
	switch {
	case len(g.formats) == 1:
		return g.formats[0]
	case i < len(g.formats):
		return g.formats[i]
	}
	return 0
}

// encode puts a merged row's text values in the formats the client asked.
func (g *extGather) encode(fields []codec.Field, row [][]byte) error {
	for i, v := range row {
		if v == nil || g.format(i) == 0 {
			continue
		}
		b, err := shard.EncodeBinary(fields[i].TypeOID, v)
		if err != nil {
			return err
		}
		row[i] = b
	}
	return nil
}

// errExtFormats: result format codes that do not match a merged read's
// columns.
var errExtFormats = &shard.Error{Code: sqlstate.ProtocolViolation, Message: "bind message has result format codes that do not match the number of columns"}
