package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority; CertFile is its certificate as PEM on disk.
type CA struct {
	Cert     *x509.Certificate
	Key      *ecdsa.PrivateKey
	CertFile string
	dir      string
}

// Pair is a certificate and key signed by a CA, as PEM files and as a
// tls.Certificate.
type Pair struct {
	CertFile, KeyFile string
	TLS               tls.Certificate
}

var serial atomic.Int64

// New makes a CA whose files live in t.TempDir().
func New(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// NewCA makes a CA whose files live in dir.
func NewCA(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: "belay test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: cert, Key: key, dir: dir}
	ca.CertFile, err = writePEM(dir, "ca.crt", "CERTIFICATE", der)
	return ca, err
}

// Pool is a cert pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server issues a server certificate for the given DNS names and IP addresses.
func (ca *CA) Server(t testing.TB, name string, hosts ...string) Pair {
	t.Helper()
	return must(t)(ca.IssueServer(name, hosts...))
}

// Client issues a client certificate whose common name is cn (Postgres's
// cert authentication compares it with the user name).
func (ca *CA) Client(t testing.TB, cn string) Pair {
	t.Helper()
	return must(t)(ca.IssueClient(cn))
}

func must(t testing.TB) func(Pair, error) Pair {
	return func(p Pair, err error) Pair {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// IssueServer is Server without a testing.TB.
func (ca *CA) IssueServer(name string, hosts ...string) (Pair, error) {
	return ca.issue(name, hosts, x509.ExtKeyUsageServerAuth)
}

// IssueClient is Client without a testing.TB.
func (ca *CA) IssueClient(cn string) (Pair, error) {
	return ca.issue(cn, nil, x509.ExtKeyUsageClientAuth)
}

func (ca *CA) issue(cn string, hosts []string, usage x509.ExtKeyUsage) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Pair{}, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	base := cn + "-" + big.NewInt(serial.Add(1)).String()
	var p Pair
	if p.CertFile, err = writePEM(ca.dir, base+".crt", "CERTIFICATE", der); err != nil {
		return p, err
	}
	if p.KeyFile, err = writePEM(ca.dir, base+".key", "EC PRIVATE KEY", kder); err != nil {
		return p, err
	}
	p.TLS, err = tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	return p, err
}

// writePEM writes a PEM file: certificates 0644, keys 0600 (Postgres and
// PgBouncer refuse group- or world-readable keys). The directory is made
// 0755 so that a server running as another user can reach the files once
// the caller has chowned them.
func writePEM(dir, name, typ string, der []byte) (string, error) {
	_ = os.Chmod(dir, 0o755)
	p := filepath.Join(dir, name)
	mode := os.FileMode(0o644)
	if typ != "CERTIFICATE" {
		mode = 0o600
	}
	return p, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
