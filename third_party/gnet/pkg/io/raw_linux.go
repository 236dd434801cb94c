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
	"unsafe"

	"golang.org/x/sys/unix"
)

// belay's patch (third_party/gnet/BELAY_PATCH.md): recv(2), send(2) and
// writev(2) through unix.RawSyscall, without the Go scheduler's
// entersyscall/exitsyscall around them. Only for non-blocking descriptors:
// the call never sleeps, so the P has no reason to be handed off while it
// runs, and a raw call that did block would stall the P with it. recv and
// send (recvfrom and sendto without an address) rather than read and write:
// they skip the VFS layer (vfs_read, vfs_write, fdget_pos), and send's
// MSG_NOSIGNAL makes a write to a closed peer EPIPE without a SIGPIPE.

// RawRecv is recv(2) on a non-blocking socket.
func RawRecv(fd int, p []byte) (int, error) {
	var p0 unsafe.Pointer
	if len(p) > 0 {
		p0 = unsafe.Pointer(&p[0])
	} else {
		p0 = unsafe.Pointer(&_zero)
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(p0), uintptr(len(p)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(n), nil
	}
}

// RawSend is send(2) with MSG_NOSIGNAL on a non-blocking socket.
func RawSend(fd int, p []byte) (int, error) {
	var p0 unsafe.Pointer
	if len(p) > 0 {
		p0 = unsafe.Pointer(&p[0])
	} else {
		p0 = unsafe.Pointer(&_zero)
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(p0), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(n), nil
	}
}

// RawWritev is writev(2) on a non-blocking descriptor.
func RawWritev(fd int, bs [][]byte) (int, error) {
	if len(bs) == 0 {
		return 0, nil
	}
	var stack [8]unix.Iovec
	iov := stack[:0]
	if len(bs) > len(stack) {
		iov = make([]unix.Iovec, 0, len(bs))
	}
	for _, b := range bs {
		v := unix.Iovec{Base: (*byte)(unsafe.Pointer(&_zero))}
		if len(b) > 0 {
			v.Base = &b[0]
		}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	for {
		n, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(n), nil
	}
}

var _zero uintptr
