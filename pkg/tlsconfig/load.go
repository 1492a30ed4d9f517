package tlsconfig

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Errors a loader wraps (test with errors.Is); the message of the *FileError
// around them names the file.
var (
	ErrNotPEM         = errors.New("not PEM")
	ErrNoCertificates = errors.New("no certificates")
	ErrKeyMismatch    = errors.New("private key does not match the certificate")
	ErrEncryptedKey   = errors.New("encrypted private keys are not supported")
	ErrExpired        = errors.New("certificate has expired")
	ErrIncomplete     = errors.New("incomplete TLS settings")
)

// FileError is a problem with one file: what the file is for, its path and
// what is wrong with it.
type FileError struct {
	Role string // "certificate file", "key file" or "CA file"
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("TLS %s %s: %v", e.Role, e.Path, e.Err) }

func (e *FileError) Unwrap() error { return e.Err }

const (
	roleCert = "certificate file"
	roleKey  = "key file"
	roleCA   = "CA file"
)

// Files names the PEM files of one TLS identity: the certificate (chain) and
// its private key, and the CA bundle that the other side is verified with.
// Cert and Key go together; CA may be empty where nothing is verified or
// the system roots do.
type Files struct{ Cert, Key, CA string }

// now is time.Now, replaceable by tests.
var now = time.Now

// LoadKeyPair reads a PEM certificate (the leaf first, then any
// intermediates) and its PEM private key (PKCS#8, SEC 1 "EC PRIVATE KEY" or
// PKCS#1 "RSA PRIVATE KEY"). It refuses a missing or empty file, a file that
// is not PEM, swapped files, an encrypted key, a key that does not belong to
// the certificate and a certificate that has already expired; the error is a
// *FileError naming the file. The result's Leaf is set.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := readPEMFile(roleCert, certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readPEMFile(roleKey, keyFile)
	if err != nil {
		return nil, err
	}
	return parseKeyPair(certFile, certPEM, keyFile, keyPEM)
}

// LoadCAPool reads a PEM bundle of CA certificates. Other PEM blocks are
// ignored; a file with no certificate, or with one that does not parse, is
// refused with a *FileError naming the file.
func LoadCAPool(caFile string) (*x509.CertPool, error) {
	data, err := readPEMFile(roleCA, caFile)
	if err != nil {
		return nil, err
	}
	pool, _, err := parseCAPool(caFile, data)
	return pool, err
}

func readPEMFile(role, path string) ([]byte, error) {
	if path == "" {
		return nil, &FileError{Role: role, Path: `""`, Err: errors.New("no file name given")}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the FileError already
		}
		return nil, &FileError{Role: role, Path: path, Err: err}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &FileError{Role: role, Path: path, Err: fmt.Errorf("%w: the file is empty", ErrNotPEM)}
	}
	return data, nil
}

// blocks splits PEM data into its blocks.
func blocks(data []byte) []*pem.Block {
	var out []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		out = append(out, b)
	}
}

func isKeyBlock(b *pem.Block) bool {
	return b.Type == "PRIVATE KEY" || b.Type == "EC PRIVATE KEY" || b.Type == "RSA PRIVATE KEY" ||
		b.Type == "ENCRYPTED PRIVATE KEY"
}

func parseKeyPair(certFile string, certPEM []byte, keyFile string, keyPEM []byte) (*tls.Certificate, error) {
	certErr := func(err error) error { return &FileError{Role: roleCert, Path: certFile, Err: err} }
	keyErr := func(err error) error { return &FileError{Role: roleKey, Path: keyFile, Err: err} }

	var chain [][]byte
	sawKey := false
	for _, b := range blocks(certPEM) {
		switch {
		case b.Type == "CERTIFICATE":
			chain = append(chain, b.Bytes)
		case isKeyBlock(b):
			sawKey = true
		}
	}
	if len(chain) == 0 {
		if sawKey {
			return nil, certErr(fmt.Errorf("%w: it holds a private key (are the certificate and key files swapped?)", ErrNoCertificates))
		}
		return nil, certErr(fmt.Errorf("%w: no -----BEGIN CERTIFICATE----- block", ErrNotPEM))
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, certErr(fmt.Errorf("certificate 1: %w", err))
	}
	for i, der := range chain[1:] {
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, certErr(fmt.Errorf("certificate %d: %w", i+2, err))
		}
	}
	if t := now(); t.After(leaf.NotAfter) {
		return nil, certErr(fmt.Errorf("%w: %q was valid until %s (now %s)", ErrExpired,
			leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339)))
	}

	var kb *pem.Block
	sawCert := false
	for _, b := range blocks(keyPEM) {
		if isKeyBlock(b) {
			kb = b
			break
		}
		sawCert = sawCert || b.Type == "CERTIFICATE"
	}
	if kb == nil {
		if sawCert {
			return nil, keyErr(fmt.Errorf("%w: it holds a certificate, not a private key (are the certificate and key files swapped?)", ErrNotPEM))
		}
		return nil, keyErr(fmt.Errorf("%w: no -----BEGIN PRIVATE KEY----- block", ErrNotPEM))
	}
	if kb.Type == "ENCRYPTED PRIVATE KEY" || kb.Headers["Proc-Type"] != "" {
		return nil, keyErr(ErrEncryptedKey)
	}
	var key any
	switch kb.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	if err != nil {
		return nil, keyErr(fmt.Errorf("%s block: %w", kb.Type, err))
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, keyErr(fmt.Errorf("a %T key cannot sign", key))
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, keyErr(fmt.Errorf("%w in %s", ErrKeyMismatch, certFile))
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: signer, Leaf: leaf}, nil
}

func parseCAPool(caFile string, data []byte) (*x509.CertPool, []*x509.Certificate, error) {
	pool := x509.NewCertPool()
	var certs []*x509.Certificate
	for _, b := range blocks(data) {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, &FileError{Role: roleCA, Path: caFile, Err: fmt.Errorf("certificate %d: %w", len(certs)+1, err)}
		}
		pool.AddCert(c)
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, nil, &FileError{Role: roleCA, Path: caFile,
			Err: fmt.Errorf("%w: no -----BEGIN CERTIFICATE----- block", ErrNoCertificates)}
	}
	return pool, certs, nil
}
