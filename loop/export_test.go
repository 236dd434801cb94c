package loop

// cancelsFor reports whether pid is a registered client key.
func (p *Proxy) cancelsFor(pid uint32) bool {
	p.cancelMu.Lock()
	defer p.cancelMu.Unlock()
	return p.cancels[pid] != nil
}
