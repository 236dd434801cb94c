package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// newLogger builds the slog logger of --log-format (text or json) at level,
// writing to w.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// metricsMux serves Prometheus metrics (written by writeMetrics) at
// /metrics, Go's profiles at /debug/pprof/, and health checks for a load
// balancer or Kubernetes: /live (200 while the process serves HTTP) and
// /ready (200 while ready says nil, else 503 with its reason), on a mux
// of its own: the
// pprof handlers are registered here explicitly, not through
// net/http/pprof's side effect on http.DefaultServeMux, which belay never
// serves.
func metricsMux(writeMetrics func(io.Writer), ready func() error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/live", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writeMetrics(w)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves the named profiles (heap, goroutine, ...)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveMetrics listens on addr and serves metricsMux there until stop is
// called.
func serveMetrics(addr string, writeMetrics func(io.Writer), ready func() error) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	// No WriteTimeout: /debug/pprof/profile and /trace stream for as long
	// as their ?seconds= asks.
	srv := &http.Server{Handler: metricsMux(writeMetrics, ready), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
