package loop

// TEMPORARY until branch restart lands: its Shutdown replaces this.
type ShutdownMode int

const (
	ShutdownImmediate ShutdownMode = iota
	ShutdownWaitForServers
	ShutdownWaitForClients
)

func (p *Proxy) Shutdown(mode ShutdownMode) {}
func (p *Proxy) ShuttingDown() bool         { return false }
