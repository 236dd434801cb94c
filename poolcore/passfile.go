package poolcore

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgpassfile"
)

// lookupPassFile finds the password for k in a libpq .pgpass file: path, else
// $PGPASSFILE, else ~/.pgpass. "" when there is none (trust servers). For a
// Unix socket directory the line may name the directory or, as libpq (for
// its default directory) and pgx write it, localhost.
func lookupPassFile(path, host, port string, k Key) string {
	if path == "" {
		path = os.Getenv("PGPASSFILE")
	}
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		path = filepath.Join(home, ".pgpass")
	}
	pf, err := pgpassfile.ReadPassfile(path)
	if err != nil {
		return ""
	}
	pw := pf.FindPassword(host, port, k.Database, k.User)
	if pw == "" && strings.HasPrefix(host, "/") {
		pw = pf.FindPassword("localhost", port, k.Database, k.User)
	}
	return pw
}
