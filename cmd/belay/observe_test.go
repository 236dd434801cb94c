package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/loop"
	"github.com/jackc/pgx/v5"
)

func TestLogFormat(t *testing.T) {
	var buf bytes.Buffer
	l, err := newLogger(&buf, "json", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Info("belay proxy listening", "listen", "127.0.0.1:6432")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	if line["msg"] != "belay proxy listening" || line["listen"] != "127.0.0.1:6432" || line["level"] != "INFO" {
		t.Errorf("JSON line %v", line)
	}
	buf.Reset()
	if l, err = newLogger(&buf, "text", slog.LevelInfo); err != nil {
		t.Fatal(err)
	}
	l.Info("hello", "k", "v")
	if !strings.Contains(buf.String(), "msg=hello k=v") {
		t.Errorf("text line %q", buf.String())
	}
	if _, err := newLogger(&buf, "xml", slog.LevelInfo); err == nil {
		t.Error("--log-format xml accepted")
	}
	// The ini key of [belay] sets the flag.
	fs, o := proxyFlagSet()
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	ini := t.TempDir() + "/belay.ini"
	if err := os.WriteFile(ini, []byte("[databases]\n* = host=127.0.0.1 port=5432\n[belay]\nlog_format = json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := applyIni(fs, ini); err != nil {
		t.Fatal(err)
	}
	if *o.logFormat != "json" {
		t.Errorf("log_format = json gave --log-format %q", *o.logFormat)
	}
}

// TestMetricsListener: the metrics listener serves the proxy's metrics,
// the per-pool ones included, and Go's profiles under /debug/pprof/.
func TestMetricsListener(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postgres")
	}
	pg := pgtest.New(t, pginstance.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := loop.Start(loop.Config{Listen: []string{addr}, Server: pg.Addr(), PoolSize: 2,
		AuthType: "trust", EventLoops: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
	host, port, _ := strings.Cut(p.Addr(), ":")
	ctx := context.Background()
	c, err := pgx.Connect(ctx, "host="+host+" port="+port+" user=postgres dbname=postgres sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Exec(ctx, "SELECT "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Close(ctx)

	srv := httptest.NewServer(metricsMux(p.Metrics().WritePrometheus, p.Ready))
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return string(body)
	}
	if body := get("/debug/pprof/"); !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ lists no goroutine profile:\n%s", body)
	}
	get("/debug/pprof/heap?debug=1")
	if body := get("/ready"); body != "ready\n" {
		t.Errorf("/ready: %q", body)
	}
	get("/live")
	body := get("/metrics")
	for _, series := range []string{
		`belay_pool_queries_total{database="postgres",user="postgres"}`,
		`belay_pool_transactions_total{database="postgres",user="postgres"}`,
		`belay_pool_received_bytes_total{database="postgres",user="postgres"}`,
		`belay_pool_sent_bytes_total{database="postgres",user="postgres"}`,
		`belay_pool_clients{database="postgres",user="postgres",state="active"}`,
		`belay_pool_pinned_clients{database="postgres",user="postgres"}`,
		`belay_pool_query_duration_seconds_bucket{database="postgres",user="postgres",le="0.001"}`,
		`belay_pool_transaction_duration_seconds_count{database="postgres",user="postgres"}`,
		`belay_pool_wait_duration_seconds_sum{database="postgres",user="postgres"}`,
		"belay_plan_cache_hits_total",
	} {
		if !strings.Contains(body, series+" ") {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}
