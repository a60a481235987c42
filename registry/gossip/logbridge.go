package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// slogWriter bridges memberlist's *log.Logger to slog. memberlist prefixes
// each line with "[LEVEL] "; DEBUG and INFO become slog Debug (they are
// routine protocol chatter such as "Suspect x has failed"), WARN and ERR
// become Warn (a failed probe of a crashed peer is recoverable trouble, not
// a shoal bug).
type slogWriter struct{ log *slog.Logger }

func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{log: l}, "", 0)
}

func (w slogWriter) Write(b []byte) (int, error) {
	line := bytes.TrimSpace(b)
	level := slog.LevelDebug
	for _, p := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG] ", slog.LevelDebug}, {"[INFO] ", slog.LevelDebug},
		{"[WARN] ", slog.LevelWarn}, {"[ERR] ", slog.LevelWarn}, {"[ERROR] ", slog.LevelWarn},
	} {
		if rest, ok := bytes.CutPrefix(line, []byte(p.prefix)); ok {
			line, level = rest, p.level
			break
		}
	}
	w.log.Log(context.Background(), level, string(line))
	return len(b), nil
}
