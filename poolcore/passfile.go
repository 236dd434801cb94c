package poolcore

import (
	"os"
	"path/filepath"

	"github.com/jackc/pgpassfile"
)

// lookupPassFile finds the password for k in a libpq .pgpass file: path, else
// $PGPASSFILE, else ~/.pgpass. "" when there is none (trust servers).
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
	return pf.FindPassword(host, port, k.Database, k.User)
}
