//go:build !linux

package netns

import "errors"

// Do runs f in node's namespace: Linux only.
func (nd *Node) Do(f func() error) error {
	return errors.New("netns: network namespaces are Linux only")
}
