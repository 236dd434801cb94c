package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

// logWriter is where the log goes: stderr, and with logfile also that file
// (appended, as PgBouncer's logfile).
func logWriter(logfile string) (io.Writer, func(), error) {
	if logfile == "" {
		return os.Stderr, func() {}, nil
	}
	f, err := os.OpenFile(logfile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("logfile: %w", err)
	}
	return io.MultiWriter(os.Stderr, f), func() { _ = f.Close() }, nil
}

// writePIDFile writes the process ID to path; the returned func removes the
// file if it still holds this process's ID (a newer process of a rolling
// restart may have written its own meanwhile).
func writePIDFile(path string) (func(), error) {
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := os.WriteFile(path, pid, 0o644); err != nil {
		return nil, fmt.Errorf("pidfile: %w", err)
	}
	return func() {
		if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, pid) {
			_ = os.Remove(path)
		}
	}, nil
}
