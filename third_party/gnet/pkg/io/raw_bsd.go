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

//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package io

import "golang.org/x/sys/unix"

// On the BSDs belay's patch keeps the ordinary calls (it is measured on
// Linux only): RawRecv, RawSend and RawWritev are unix.Read, unix.Write and
// Writev.

// RawRecv reads from a non-blocking socket.
func RawRecv(fd int, p []byte) (int, error) { return unix.Read(fd, p) }

// RawSend writes to a non-blocking socket.
func RawSend(fd int, p []byte) (int, error) { return unix.Write(fd, p) }

// RawWritev is writev(2) on a non-blocking descriptor.
func RawWritev(fd int, bs [][]byte) (int, error) { return Writev(fd, bs) }
