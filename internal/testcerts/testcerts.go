// Package testcerts makes throw-away X.509 certificates at run time with
// crypto/x509, for tests across the repository and for cmd/kahuna-certs: a
// CA, and leaf certificates signed by it for server use, client use or both,
// written as PEM files.
//
// Keys are ECDSA P-256 (fast to make). Leaves carry the SANs 127.0.0.1, ::1
// and localhost plus any names given, unless Options.WrongHost replaces them.
//
// In a test:
//
//	s := testcerts.NewSet(t)                               // CA in t.TempDir()
//	srv := s.Leaf("server", testcerts.Options{})           // server+client usage
//	cli := s.Leaf("client", testcerts.Options{Usage: testcerts.Client})
//	old := s.Leaf("old", testcerts.Options{Expired: true})
//	evil := s.Leaf("evil", testcerts.Options{OtherCA: true}) // not trusted by s
//	// srv.Cert, srv.Key: PEM files; srv.CA: the CA file of s.
package testcerts

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/tlsconfig"
)

// Usage is what a leaf certificate may be used for (its extended key usage).
type Usage uint8

// Usages.
const (
	Server Usage             = 1 << iota // TLS server authentication
	Client                               // TLS client authentication
	Both   = Server | Client             // a cluster node: it listens and it dials
)

// WrongHostName is the only SAN of a certificate made with Options.WrongHost.
const WrongHostName = "wrong-host.invalid"

// Options shape a leaf certificate. The zero value is a certificate for both
// usages, valid from an hour ago for a day, for 127.0.0.1, ::1 and localhost.
type Options struct {
	Usage Usage    // zero: Both
	Names []string // more SANs: IP literals become IP SANs, the rest DNS SANs
	// WrongHost gives the certificate the single SAN WrongHostName instead
	// of the loopback names and Names.
	WrongHost bool
	// Expired makes it valid from two days ago until yesterday.
	Expired bool
	// NotYetValid makes it valid from tomorrow on.
	NotYetValid bool
	// OtherCA signs it with a fresh CA nobody trusts instead of this one
	// (Set.Leaf still reports this CA's file as Paths.CA).
	OtherCA bool
	// Validity is how long it is valid from now (zero: 24 hours); ignored
	// with Expired or NotYetValid.
	Validity time.Duration
}

// CA is a certificate authority that signs leaves.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a self-signed CA valid from three days ago for validity (zero:
// a week), so that it covers the validity of Expired and NotYetValid leaves
// and only theirs is wrong.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		validity = 7 * 24 * time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Kahuna throw-away CA"}},
		NotBefore:             now.Add(-72 * time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA reads a CA written by WriteCA (or any PEM CA certificate and its
// PKCS#8, SEC 1 or PKCS#1 key), with the same checks kahunad makes of its
// own certificates (pkg/tlsconfig).
func LoadCA(certFile, keyFile string) (*CA, error) {
	pair, err := tlsconfig.LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if !pair.Leaf.IsCA {
		return nil, fmt.Errorf("%s: not a CA certificate", certFile)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", keyFile, pair.PrivateKey)
	}
	return &CA{Cert: pair.Leaf, Key: signer}, nil
}

// CertPEM is the CA certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// WriteCA writes the CA certificate to certFile and, unless keyFile is empty,
// its key to keyFile (mode 0600).
func (ca *CA) WriteCA(certFile, keyFile string) error {
	if err := WriteFile(certFile, ca.CertPEM(), 0o644); err != nil {
		return err
	}
	if keyFile == "" {
		return nil
	}
	keyPEM, err := keyToPEM(ca.Key)
	if err != nil {
		return err
	}
	return WriteFile(keyFile, keyPEM, 0o600)
}

// Issue makes a leaf certificate with commonName and o, signed by ca (or by a
// fresh CA with o.OtherCA), and returns it and its PKCS#8 key in PEM.
func (ca *CA) Issue(commonName string, o Options) (certPEM, keyPEM []byte, err error) {
	signer := ca
	if o.OtherCA {
		if signer, err = NewCA("other CA", 0); err != nil {
			return nil, nil, err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	validity := o.Validity
	if validity <= 0 {
		validity = 24 * time.Hour
	}
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.Add(validity)
	switch {
	case o.Expired:
		notBefore, notAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	case o.NotYetValid:
		notBefore, notAfter = now.Add(24*time.Hour), now.Add(48*time.Hour)
	}
	usage := o.Usage
	if usage == 0 {
		usage = Both
	}
	var ext []x509.ExtKeyUsage
	if usage&Server != 0 {
		ext = append(ext, x509.ExtKeyUsageServerAuth)
	}
	if usage&Client != 0 {
		ext = append(ext, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  ext,
	}
	names := append([]string{"127.0.0.1", "::1", "localhost"}, o.Names...)
	if o.WrongHost {
		names = []string{WrongHostName}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer.Cert, key.Public(), signer.Key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = keyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// Paths are the PEM files of a leaf certificate and of the CA that a test
// trusts.
type Paths struct{ Cert, Key, CA string }

// IssueFiles issues a leaf (see Issue) and writes it to dir/name.crt and
// dir/name.key (mode 0600). Paths.CA is left empty.
func (ca *CA) IssueFiles(dir, name string, o Options) (Paths, error) {
	certPEM, keyPEM, err := ca.Issue(name, o)
	if err != nil {
		return Paths{}, err
	}
	p := Paths{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	if err := WriteFile(p.Cert, certPEM, 0o644); err != nil {
		return Paths{}, err
	}
	if err := WriteFile(p.Key, keyPEM, 0o600); err != nil {
		return Paths{}, err
	}
	return p, nil
}

// WriteFile writes data to path atomically (a temporary file in the same
// directory, then a rename), so that a process reloading the file never
// reads half of it.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Set is a CA with its certificate written to a test's temporary directory.
type Set struct {
	CA     *CA
	Dir    string // where Leaf writes files
	CAFile string // Dir/ca.crt
	t      testing.TB
}

// NewSet makes a CA and writes its certificate to ca.crt in t.TempDir(). It
// fails the test on error.
func NewSet(t testing.TB) *Set {
	t.Helper()
	ca, err := NewCA("kahuna test CA", 0)
	if err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	s := &Set{CA: ca, Dir: t.TempDir(), t: t}
	s.CAFile = filepath.Join(s.Dir, "ca.crt")
	if err := ca.WriteCA(s.CAFile, ""); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return s
}

// Leaf issues a certificate named name with o and writes name.crt and
// name.key into s.Dir (replacing earlier files of that name). Paths.CA is
// s.CAFile, also with o.OtherCA. It fails the test on error.
func (s *Set) Leaf(name string, o Options) Paths {
	s.t.Helper()
	p, err := s.CA.IssueFiles(s.Dir, name, o)
	if err != nil {
		s.t.Fatalf("testcerts: %v", err)
	}
	p.CA = s.CAFile
	return p
}

func keyToPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil // serials are positive
}
