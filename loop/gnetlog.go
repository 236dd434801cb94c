package loop

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// gnetLogger routes gnet's own log lines (its engine starting, its errors)
// through belay's logger, so that they follow --log-format and --logfile
// like every other line, tagged component=gnet. gnet keeps one logger per
// process (WithLogger replaces its default): with several proxies in one
// process (tests), the last one started gets gnet's lines. Safe for
// concurrent use.
type gnetLogger struct{ log *slog.Logger }

var _ logging.Logger = gnetLogger{}

func (g gnetLogger) Debugf(format string, args ...any) { g.at(slog.LevelDebug, format, args) }
func (g gnetLogger) Infof(format string, args ...any)  { g.at(slog.LevelInfo, format, args) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.at(slog.LevelWarn, format, args) }
func (g gnetLogger) Errorf(format string, args ...any) { g.at(slog.LevelError, format, args) }

// Fatalf is what gnet calls when it cannot go on (creating its poller's
// wake-up pipe on BSD): as its own logger does, it exits.
func (g gnetLogger) Fatalf(format string, args ...any) {
	g.at(slog.LevelError, format, args)
	os.Exit(1)
}

func (g gnetLogger) at(level slog.Level, format string, args []any) {
	if g.log.Enabled(context.Background(), level) {
		g.log.Log(context.Background(), level, fmt.Sprintf(format, args...), "component", "gnet")
	}
}
