// Package cli holds what the commands share: logging setup.
package cli

import (
	"log"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Logger builds the process logger: console text on a terminal-friendly
// writer, or JSON lines.
func Logger(level string, jsonLines bool) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	var l zerolog.Logger
	if jsonLines {
		l = zerolog.New(os.Stderr)
	} else {
		l = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"})
	}
	l = l.Level(lvl).With().Timestamp().Logger()
	// Libraries that print with the standard logger (gopcua's server
	// announces every node set it imports) go to this logger at debug level.
	log.SetFlags(0)
	log.SetOutput(stdlogWriter{l})
	return l
}

type stdlogWriter struct{ l zerolog.Logger }

func (w stdlogWriter) Write(p []byte) (int, error) {
	w.l.Debug().Str("component", "stdlog").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
