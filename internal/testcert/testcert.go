// Package testcert makes a throwaway certificate authority and certificates
// signed by it, for tests of TLS between clients, belay and PostgreSQL.
// Keys are ECDSA P-256; everything is valid from an hour ago for a day.
//
// Concurrency: a CA is safe for concurrent use once made.
//
// It imports nothing of belay.
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
	key := newKey(t)
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
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Cert: cert, Key: key, dir: t.TempDir()}
	ca.CertFile = writePEM(t, ca.dir, "ca.crt", "CERTIFICATE", der)
	return ca
}

// Pool is a cert pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server issues a server certificate for the given DNS names and IP addresses.
func (ca *CA) Server(t testing.TB, name string, hosts ...string) Pair {
	return ca.issue(t, name, hosts, x509.ExtKeyUsageServerAuth)
}

// Client issues a client certificate whose common name is cn (Postgres's
// cert authentication compares it with the user name).
func (ca *CA) Client(t testing.TB, cn string) Pair {
	return ca.issue(t, cn, nil, x509.ExtKeyUsageClientAuth)
}

func (ca *CA) issue(t testing.TB, cn string, hosts []string, usage x509.ExtKeyUsage) Pair {
	t.Helper()
	key := newKey(t)
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
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	base := cn + "-" + big.NewInt(serial.Add(1)).String()
	p := Pair{
		CertFile: writePEM(t, ca.dir, base+".crt", "CERTIFICATE", der),
		KeyFile:  writePEM(t, ca.dir, base+".key", "EC PRIVATE KEY", kder),
	}
	p.TLS, err = tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// writePEM writes a PEM file. Postgres
// (running as another user) reads them, so the directory is made 0755 and
// the files 0644, except keys, which Postgres wants 0600 and owned by itself
// (Chown is the caller's business when it runs Postgres as another user).
func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	_ = os.Chmod(dir, 0o755)
	p := filepath.Join(dir, name)
	mode := os.FileMode(0o644)
	if typ != "CERTIFICATE" {
		mode = 0o600
	}
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
	return p
}
