// Copyright (c) 2021 The Gnet Authors. All rights reserved.
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

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package netpoll

import "time"

// PollEventHandler is the callback for I/O events notified by the poller.
type PollEventHandler func(int, IOEvent, IOFlags) error

// PollAttachment is the user data which is about to be stored in "void *ptr" of epoll_data or "void *udata" of kevent.
type PollAttachment struct {
	FD       int
	Callback PollEventHandler
}

// YieldInterval is how long an event loop may run without passing through
// the Go scheduler (belay's patch, third_party/gnet/BELAY_PATCH.md): the
// poller blocks in epoll_wait when there is nothing to do and, once this
// long has passed since it last yielded, calls runtime.Gosched after a batch
// of events. Below the runtime's forced preemption (10 ms), so that sysmon
// does not preempt a busy loop with signals; long enough that the yield (a
// futex wake of an idle P's thread) is rare: 1, 2 and 5 ms gave 0.29, 0.16
// and 0.08 futex calls per pgbench transaction. Set it before the engine
// starts.
var YieldInterval = 5 * time.Millisecond
