package ha

import "time"

// Lag is how far a replica's replay is behind its primary: in bytes of WAL,
// and in time, as how long ago the primary's position was the one the
// replica has now replayed (0 once it caught up with the primary's last
// known position). Unlike now() - pg_last_xact_replay_timestamp(), it does
// not grow on an idle cluster.
type Lag struct {
	Bytes uint64
	Time  time.Duration
}

// positions remembers where a primary was when: the samples of its WAL
// position, oldest first, for at most keep. Pure; not safe for concurrent
// use (one checker owns it).
type positions struct {
	keep time.Duration
	at   []time.Time
	lsn  []LSN
}

// add records the primary at lsn at t (t never goes back).
func (p *positions) add(t time.Time, lsn LSN) {
	if n := len(p.lsn); n > 0 && p.lsn[n-1] == lsn {
		return // the time it first reached lsn is what counts
	}
	p.at = append(p.at, t)
	p.lsn = append(p.lsn, lsn)
	drop := 0
	for drop < len(p.at)-1 && t.Sub(p.at[drop+1]) > p.keep {
		drop++
	}
	if drop > 0 {
		p.at = append(p.at[:0], p.at[drop:]...)
		p.lsn = append(p.lsn[:0], p.lsn[drop:]...)
	}
}

// lag of a replica that replayed up to replay, at now.
func (p *positions) lag(replay LSN, now time.Time) Lag {
	n := len(p.lsn)
	if n == 0 || replay >= p.lsn[n-1] {
		return Lag{}
	}
	l := Lag{Bytes: uint64(p.lsn[n-1] - replay)}
	// The first time the primary was past replay: the replica has been
	// missing what came then since.
	for i := range p.lsn {
		if p.lsn[i] > replay {
			l.Time = now.Sub(p.at[i])
			break
		}
	}
	return l
}
