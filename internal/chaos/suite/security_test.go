package suite

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/kahuna-go/kahuna/internal/testcerts"
)

// security is every protection kahunad has, for a process cluster: HTTPS
// on the API, mutual TLS on the internal port, an encrypted gossip ring,
// and tokens. The harness and the workload speak to it with the test CA
// and an admin token (the workload force-unlocks too).
type security struct {
	certs     *testcerts.Set
	gossipKey string
	authFile  string
	token     string
}

func newSecurity(t *testing.T) *security {
	s := &security{certs: testcerts.NewSet(t)}
	dir := t.TempDir()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s.gossipKey = filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(s.gossipKey, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.token = rand.Text()
	s.authFile = filepath.Join(dir, "auth.json")
	body := `{"tokens":[{"name":"chaos","token":"` + s.token + `","role":"admin"}]}`
	if err := os.WriteFile(s.authFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// args are node id's security flags; its certificate names ip, where
// its API and internal port listen, beside the loopback names.
func (s *security) args(id, ip string) []string {
	var names []string
	if ip != "" {
		names = append(names, ip)
	}
	p := s.certs.Leaf(id, testcerts.Options{Names: names})
	return []string{
		"--tls-cert-file", p.Cert, "--tls-key-file", p.Key,
		"--peer-tls-cert-file", p.Cert, "--peer-tls-key-file", p.Key, "--peer-tls-ca-file", p.CA,
		"--gossip-key-file", s.gossipKey, "--auth-file", s.authFile,
	}
}

// web is how the harness reaches the secured APIs.
func (s *security) web(t *testing.T) web {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.certs.CA.CertPEM()) {
		t.Fatal("the test CA's certificate does not parse")
	}
	return newWeb(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, s.token)
}
