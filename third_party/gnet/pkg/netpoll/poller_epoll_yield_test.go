// Copyright (c) 2025 The Gnet Authors. All rights reserved.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//go:build linux && !poll_opt

package netpoll

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	errorx "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/panjf2000/gnet/v2/pkg/queue"
)

// countYields replaces gosched with a counter for the test.
func countYields(t *testing.T, interval time.Duration) *int {
	t.Helper()
	n := new(int)
	oldGosched, oldInterval := gosched, YieldInterval
	t.Cleanup(func() { gosched, YieldInterval = oldGosched, oldInterval })
	gosched = func() { *n++; runtime.Gosched() }
	YieldInterval = interval
	return n
}

// TestPollingYieldsWhenBusy keeps a poller busy with a pipe it never reads
// (level-triggered, so every epoll_wait has an event) and checks that it
// still passes through the scheduler about once per YieldInterval (belay's
// patch; gnet as released yields only when epoll_wait comes back empty, so
// never here).
func TestPollingYieldsWhenBusy(t *testing.T) {
	const interval, busyFor = 2 * time.Millisecond, 100 * time.Millisecond
	yields := countYields(t, interval)
	p, err := OpenPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close() //nolint:errcheck
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0]) //nolint:errcheck
	defer unix.Close(fds[1]) //nolint:errcheck
	if _, err := unix.Write(fds[1], []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := p.AddRead(&PollAttachment{FD: fds[0]}, false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	events := 0
	err = p.Polling(func(int, IOEvent, IOFlags) error {
		events++
		if time.Since(start) > busyFor {
			return errorx.ErrEngineShutdown
		}
		return nil
	})
	if err != errorx.ErrEngineShutdown {
		t.Fatalf("Polling: %v", err)
	}
	// About 50 yields; a loaded machine runs fewer batches, never more.
	if max := int(time.Since(start)/interval) + 1; *yields < 5 || *yields > max {
		t.Errorf("%d events in %v and %d yields; want from 5 to %d (one per %v)", events, busyFor, *yields, max, interval)
	}
}

// TestPollingBlocksWithoutYield wakes an idle poller again and again (a task
// each time, from another goroutine) and checks that it does not yield on
// the way back to epoll_wait: gnet as released polls with a zero timeout
// after each batch and calls runtime.Gosched when that comes back empty,
// which costs an epoll_wait, a futex wake of another thread and a context
// switch each time.
func TestPollingBlocksWithoutYield(t *testing.T) {
	yields := countYields(t, time.Hour)
	p, err := OpenPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close() //nolint:errcheck
	const wakes = 100
	ran := make(chan struct{})
	go func() {
		for i := 0; i < wakes; i++ {
			time.Sleep(100 * time.Microsecond) // the poller goes back to sleep
			last := i == wakes-1
			_ = p.Trigger(queue.HighPriority, func(any) error {
				ran <- struct{}{}
				if last {
					return errorx.ErrEngineShutdown
				}
				return nil
			}, nil)
			<-ran
		}
	}()
	if err := p.Polling(func(int, IOEvent, IOFlags) error { return nil }); err != errorx.ErrEngineShutdown {
		t.Fatalf("Polling: %v", err)
	}
	if *yields != 0 {
		t.Errorf("%d yields for %d wake-ups; want none within YieldInterval", *yields, wakes)
	}
}
