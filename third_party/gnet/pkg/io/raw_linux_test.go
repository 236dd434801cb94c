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

package io

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRawRecvSend checks the raw calls against what unix.Read, unix.Write
// and Writev return: bytes through a non-blocking socket pair, EAGAIN
// with n == -1 when there is nothing to read, 0 at EOF, EPIPE for a closed
// peer, and writev of more buffers than RawWritev keeps on its stack, empty
// ones among them.
func TestRawRecvSend(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0]) //nolint:errcheck
	buf := make([]byte, 64)
	if n, err := RawRecv(fds[0], buf); n != -1 || err != unix.EAGAIN {
		t.Fatalf("RawRecv of an empty socket: %d, %v; want -1, EAGAIN", n, err)
	}
	if n, err := RawSend(fds[1], nil); n != 0 || err != nil {
		t.Fatalf("RawSend(nil): %d, %v", n, err)
	}
	if n, err := RawSend(fds[1], []byte("hello")); n != 5 || err != nil {
		t.Fatalf("RawSend: %d, %v", n, err)
	}
	var bs [][]byte
	var want bytes.Buffer
	want.WriteString("hello")
	for i := 0; i < 11; i++ {
		b := bytes.Repeat([]byte{'a' + byte(i)}, i%3) // i%3 == 0: empty
		bs = append(bs, b)
		want.Write(b)
	}
	if n, err := RawWritev(fds[1], bs); n != want.Len()-5 || err != nil {
		t.Fatalf("RawWritev: %d, %v; want %d", n, err, want.Len()-5)
	}
	if n, err := RawWritev(fds[1], nil); n != 0 || err != nil {
		t.Fatalf("RawWritev(nil): %d, %v", n, err)
	}
	n, err := RawRecv(fds[0], buf)
	if err != nil || !bytes.Equal(buf[:n], want.Bytes()) {
		t.Fatalf("RawRecv: %q, %v; want %q", buf[:n], err, want.Bytes())
	}
	if err := unix.Close(fds[1]); err != nil {
		t.Fatal(err)
	}
	if n, err := RawRecv(fds[0], buf); n != 0 || err != nil {
		t.Fatalf("RawRecv at EOF: %d, %v; want 0, nil", n, err)
	}
	if n, err := RawSend(fds[0], []byte("x")); n != -1 || err != unix.EPIPE {
		t.Fatalf("RawSend to a closed peer: %d, %v; want -1, EPIPE", n, err)
	}
}

func BenchmarkRawSendRecv(b *testing.B) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fds[0]) //nolint:errcheck
	defer unix.Close(fds[1]) //nolint:errcheck
	msg, buf := []byte("Q\x00\x00\x00\x0dSELECT 1\x00"), make([]byte, 64)
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, _ = RawSend(fds[1], msg)
			_, _ = RawRecv(fds[0], buf)
		}
	})
	b.Run("unix", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_, _ = unix.Write(fds[1], msg)
			_, _ = unix.Read(fds[0], buf)
		}
	})
}
