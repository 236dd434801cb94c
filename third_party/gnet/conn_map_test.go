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

//go:build (darwin || dragonfly || freebsd || linux || netbsd || openbsd) && !gc_opt

package gnet

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestConnMap checks the descriptor-indexed connMatrix of belay's patch:
// connections added at scattered descriptors are found by them, deleted ones
// and descriptors never seen (beyond the slice, negative) are not, the count
// follows, and iterate visits exactly the live ones.
func TestConnMap(t *testing.T) {
	var cm connMatrix
	cm.init()
	el := eventloop{engine: &engine{opts: &Options{}}}
	conns := map[int]*conn{}
	for _, fd := range []int{7, 3, 1000, 4, 64} {
		c := newStreamConn("tcp", fd, &el, &unix.SockaddrInet4{}, &net.TCPAddr{}, &net.TCPAddr{})
		cm.addConn(c, 0)
		conns[fd] = c
	}
	cm.delConn(conns[4])
	delete(conns, 4)
	for _, fd := range []int{-1, 0, 4, 5, 999, 1001, 1 << 20} {
		if c := cm.getConn(fd); c != nil {
			t.Errorf("getConn(%d) = fd %d, want nil", fd, c.fd)
		}
	}
	for fd, c := range conns {
		if got := cm.getConn(fd); got != c {
			t.Errorf("getConn(%d) = %p, want %p", fd, got, c)
		}
		if c.gfd.Fd() != fd {
			t.Errorf("conn %d has gfd of fd %d", fd, c.gfd.Fd())
		}
	}
	if n := cm.loadCount(); n != int32(len(conns)) {
		t.Errorf("loadCount() = %d, want %d", n, len(conns))
	}
	seen := map[int]bool{}
	cm.iterate(func(c *conn) bool {
		seen[c.fd] = true
		return true
	})
	if len(seen) != len(conns) {
		t.Errorf("iterate visited %v, want the fds of %d connections", seen, len(conns))
	}
	for fd := range conns {
		if !seen[fd] {
			t.Errorf("iterate missed fd %d", fd)
		}
	}
	visits := 0
	cm.iterate(func(*conn) bool { visits++; return false })
	if visits != 1 {
		t.Errorf("iterate went on after f returned false: %d visits", visits)
	}
}

func BenchmarkConnMapGet(b *testing.B) {
	var cm connMatrix
	cm.init()
	el := eventloop{engine: &engine{opts: &Options{}}}
	for fd := 10; fd < 60; fd++ {
		cm.addConn(newStreamConn("tcp", fd, &el, &unix.SockaddrInet4{}, &net.TCPAddr{}, &net.TCPAddr{}), 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var c *conn
	for i := 0; i < b.N; i++ {
		c = cm.getConn(10 + i%50)
	}
	_ = c
}
