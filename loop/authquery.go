package loop

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/belaydb/belay/auth"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultAuthQuery is PgBouncer's auth_query default (1.21 and later): the
// stored secret of a role that may log in, NULL once it has expired.
const DefaultAuthQuery = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname = $1 AND rolcanlogin"

// authQuerier looks up the secrets of users absent from the auth file by
// running the auth query as the auth user, as PgBouncer does. It keeps one
// connection per database and runs one query at a time on each. It runs off
// the loops, on the goroutines of the logins that need it; it is safe for
// concurrent use.
type authQuerier struct {
	server, user, password, passfile, database, query string
	timeout                                           time.Duration

	mu    sync.Mutex // guards conns
	conns map[string]*authConn
}

type authConn struct {
	mu sync.Mutex // one query at a time; guards c
	c  *pgconn.PgConn
}

// lookup returns the secret stored for user, or Secret{} (Kind SecretNone)
// when there is no such role, it cannot log in or its password expired:
// the client then goes through a mock exchange and fails like any wrong
// password.
func (q *authQuerier) lookup(database, user string) (auth.Secret, error) {
	db := q.database
	if db == "" {
		db = database
	}
	q.mu.Lock()
	ac := q.conns[db]
	if ac == nil {
		ac = &authConn{}
		q.conns[db] = ac
	}
	q.mu.Unlock()

	ac.mu.Lock()
	defer ac.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		if ac.c == nil || ac.c.IsClosed() {
			c, err := q.connect(ctx, db)
			if err != nil {
				return auth.Secret{}, err
			}
			ac.c = c
		}
		rr := ac.c.ExecParams(ctx, q.query, [][]byte{[]byte(user)}, nil, nil, nil).Read()
		if rr.Err != nil {
			if _, isPg := rr.Err.(*pgconn.PgError); !isPg && attempt == 0 {
				_ = ac.c.Close(ctx) // a connection that broke while idle: once more
				ac.c = nil
				continue
			}
			return auth.Secret{}, fmt.Errorf("auth_query: %w", rr.Err)
		}
		if len(rr.Rows) == 0 || len(rr.Rows[0]) < 2 || rr.Rows[0][1] == nil {
			return auth.Secret{}, nil
		}
		return auth.ParseSecret(string(rr.Rows[0][1])), nil
	}
}

func (q *authQuerier) connect(ctx context.Context, db string) (*pgconn.PgConn, error) {
	host, port, err := net.SplitHostPort(q.server)
	if err != nil {
		return nil, err
	}
	dsn := fmt.Sprintf("host=%s port=%s user=%s sslmode=disable", quoteDSN(host), port, quoteDSN(q.user))
	if q.passfile != "" {
		dsn += " passfile=" + quoteDSN(q.passfile)
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.Database = db
	if q.password != "" {
		cfg.Password = q.password
	}
	cfg.Fallbacks = nil
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("auth_user %q: %w", q.user, err)
	}
	return c, nil
}

// close ends the lookup connections.
func (q *authQuerier) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, ac := range q.conns {
		ac.mu.Lock()
		if ac.c != nil {
			_ = ac.c.Close(context.Background())
		}
		ac.mu.Unlock()
	}
}

// quoteDSN quotes a libpq connection-string value.
func quoteDSN(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
